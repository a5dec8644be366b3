# Start-up of the virtual board (MicroPython unix port), run at every (re)start by the
# supervisor (tinysense/targets/supervisor.py) with `micropython -i`. It makes the VM look like
# a board: the per-board flash directory becomes "/", a deployed ROMFS image is mounted at
# /rom, sys.path is a board's, then boot.py and (in friendly mode) main.py run, and -i drops
# into the REPL. This file runs on the node side, so it is MicroPython, not CPython.
# ruff: noqa: F821 (helpers are deleted from the REPL's globals at the end; params are prepended)


def _tsvb_setup():
    import os
    import sys
    import vfs

    import machine  # noqa: F401 (the shim beside this file, cached before "/" is replaced)

    flash = os.getenv("TSVB_FLASH")
    romfs = os.getenv("TSVB_ROMFS")
    image = None
    if romfs:
        # The unix port cannot map flash, so the image lives in the GC heap; the supervisor
        # enlarged the heap by the image size to keep the board's budget for the app.
        with open(romfs, "rb") as f:
            image = f.read()
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(flash), "/")
    os.chdir("/")
    path = ["", ".frozen"]
    if image is not None:
        try:
            vfs.mount(vfs.VfsRom(image), "/rom")
            path += ["/rom", "/rom/lib"]
        except Exception as e:
            print("virtual board: cannot mount ROMFS image:", repr(e))
    sys.path[:] = path + ["/lib"]
    return os.getenv("TSVB_MODE") == "raw"


def _tsvb_run(name):
    # As a board runs boot.py/main.py: in the REPL's globals, errors printed, then the REPL.
    import os
    import sys

    try:
        os.stat(name)
    except OSError:
        return
    try:
        with open(name) as f:
            src = f.read()
        exec(compile(src, name, "exec"), globals())
    except SystemExit:
        raise  # sys.exit() in boot.py/main.py is a soft reset, as on a board
    except BaseException as e:  # noqa: BLE001 (a board prints the traceback, then the REPL)
        sys.print_exception(e)


def _tsvb_boot():
    import sys

    raw = _tsvb_setup()
    sys.stdout.write("\x00\x00tsvb-up\x00\x00")  # the VM is up (start_board waits for it)
    try:
        _tsvb_run("boot.py")
        if not raw:
            _tsvb_run("main.py")
    except SystemExit as e:
        # A board resets here; `micropython -i` would enter its REPL instead. Ask the
        # supervisor to end this VM with the exit status (0: soft reset, 99: machine.reset()).
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        sys.stdout.write("\x00\x00tsvb-exit %d\x00\x00" % code)
        import time

        while True:
            time.sleep(1)
    sys.stdout.write("\x00\x00tsvb-booted\x00\x00")  # tells the supervisor boot is over


_tsvb_boot()
del _tsvb_setup, _tsvb_run, _tsvb_boot, __file__
