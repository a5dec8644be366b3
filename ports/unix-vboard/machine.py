# The virtual board's `machine`: the unix port's built-in module plus what boards have and it
# lacks. Imported once by _vboot.py; MicroPython lets a .py file extend a built-in module.
import sys

_path = sys.path
sys.path = ()
try:
    from machine import *  # noqa: F403 (the built-in module of the same name)
finally:
    sys.path = _path
    del _path

_HARD_RESET_EXIT = 99  # the supervisor restarts the VM as after a power-on (friendly REPL)


def reset():
    sys.exit(_HARD_RESET_EXIT)


def unique_id():
    # 6 bytes like an ESP32's MAC, fixed per board directory (the supervisor derives them), so
    # two virtual boards are two different nodes.
    import binascii
    import os

    return binascii.unhexlify(os.getenv("TSVB_UID") or "7669727400ff")
