# The virtual board's `os`: the unix port's built-in module, except that ilistdir gives
# 4-tuples (name, type, inode, size) like a board's littlefs/FAT does (the unix port's VfsPosix
# gives 3), so code that unpacks four fields runs here as on a board, and
# `mpremote fs ls` shows sizes. Imported once by _vboot.py, before "/" is replaced.
import sys

_path = sys.path
sys.path = ()
try:
    from os import *  # noqa: F403 (the built-in module of the same name)
    from os import ilistdir as _ilistdir
    from os import stat as _stat
finally:
    sys.path = _path
    del _path

_S_IFDIR = 0x4000


def ilistdir(*args):
    path = args[0] if args else ""
    sep = b"/" if isinstance(path, bytes) else "/"
    for entry in _ilistdir(*args):
        if len(entry) >= 4:
            yield entry
            continue
        size = 0
        if entry[1] != _S_IFDIR:
            full = entry[0] if not path else (path if path.endswith(sep) else path + sep) \
                + entry[0]
            try:
                size = _stat(full)[6]
            except OSError:
                pass
        yield (entry[0], entry[1], entry[2], size)
