# Print "<path> <hex sha256>" (or "<path> -" when missing) for each path in _PATHS.
# Runs on the node; _ts_hash comes from hashfile.py, which script() prepends.
# ruff: noqa: F821 (helpers are deleted from the REPL's globals at the end; params are prepended)


def _tsh_main(paths):
    buf = bytearray(512)
    for p in paths:
        print(p, _ts_hash(p, buf))


_tsh_main(_PATHS)
del _ts_hash, _tsh_main, _PATHS
