# Keeps the app running: a crash in the app loop is logged to flash and the node soft-resets,
# which runs boot.py and main.py again, as a watchdog reset would but without losing the log.
# A crash loop (too many crashes in a row, each soon after start) stops in the REPL instead,
# so a broken app never locks the host out. Ctrl-C always stops the app and leaves the REPL.
# Hangs are a hardware watchdog's job (machine.WDT on a board, set up by the app).
import sys
import time

from micropython import const

_STATE = const("/crash.state")  # "<crashes in a row>" (tiny; written only when the app crashes)
_LOG = const("/crash.log")  # last crashes' tracebacks, newest at the end
_LOG_MAX = const(4096)  # bytes of crash log kept on flash
_MAX_IN_A_ROW = const(3)  # crashes, each within _HEALTHY_MS of start, before giving up
_HEALTHY_MS = const(60_000)  # an app that ran this long before crashing is not in a loop
_OVERRIDE = const("/app.txt")  # optional: names the app module to run instead of tsnode.app


def app_module(default="tsnode.app"):
    """The app module main.py runs: `default`, or the module named in /app.txt."""
    try:
        with open(_OVERRIDE) as f:
            name = f.read().strip()
    except OSError:
        return default
    return name or default


def crashes_in_a_row():
    try:
        with open(_STATE) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def _set_crashes(n):
    if n:
        with open(_STATE, "w") as f:
            f.write(str(n))
        return
    try:
        import os

        os.remove(_STATE)
    except OSError:
        pass


def _log(exc, n):
    import io

    buf = io.StringIO()
    buf.write("--- crash %d in a row, %d ms after boot\n" % (n, time.ticks_ms()))
    sys.print_exception(exc, buf)
    entry = buf.getvalue()
    old = ""
    try:
        with open(_LOG) as f:
            old = f.read()
    except OSError:
        pass
    keep = old[-(_LOG_MAX - len(entry)):] if len(entry) < _LOG_MAX else ""
    with open(_LOG, "w") as f:
        f.write(keep)
        f.write(entry[-_LOG_MAX:])


def _soft_reset():
    import machine

    machine.soft_reset()


def run(main, reset=_soft_reset):
    """Run `main()`; on a crash log it, then soft-reset (or stay in the REPL if looping).

    Returns only when the app returns, is stopped with Ctrl-C, or is crash-looping.
    """
    started = time.ticks_ms()
    try:
        main()
    except KeyboardInterrupt:
        print("supervise: app stopped (Ctrl-C); REPL")
        return
    except Exception as e:  # noqa: BLE001 (any app failure is what this module is for)
        ran = time.ticks_diff(time.ticks_ms(), started)
        n = 1 if ran >= _HEALTHY_MS else crashes_in_a_row() + 1
        sys.print_exception(e)
        try:
            _log(e, n)
        except OSError as err:  # a full or broken filesystem must not stop the recovery
            print("supervise: cannot write", _LOG, err)
        if n >= _MAX_IN_A_ROW:
            _set_crashes(0)  # the next hard reset tries again
            print("supervise: app crashed %d times in a row; staying in the REPL" % n)
            return
        _set_crashes(n)
        print("supervise: app crashed (%d in a row); soft reset" % n)
        reset()
        return
    _set_crashes(0)
