# Deploy scan: print "mpy <sys.implementation._mpy>", "platform <sys.platform>", then
# "f <path> <hex sha256>" for every
# file under the directories in _DIRS and for each path in _FILES (hash "-" if missing).
# Runs on the node in one exec so a deploy costs one round trip before copying.
# _ts_hash comes from hashfile.py, which script() prepends.
# ruff: noqa: F821 (helpers are deleted from the REPL's globals at the end; params are prepended)
import sys
import os


def _tss_walk(d, buf):
    try:
        entries = list(os.ilistdir(d))
    except OSError:
        return
    for e in entries:
        p = d + "/" + e[0]
        if e[1] == 0x4000:
            print("d", p)
            _tss_walk(p, buf)
        else:
            print("f", p, _ts_hash(p, buf))


def _tss_main(dirs, files):
    print("mpy", getattr(sys.implementation, "_mpy", 0))
    print("platform", sys.platform)
    buf = bytearray(512)
    for d in dirs:
        _tss_walk(d, buf)
    for p in files:
        print("f", p, _ts_hash(p, buf))


_tss_main(_DIRS, _FILES)
del _ts_hash, _tss_walk, _tss_main, _DIRS, _FILES
