# main.py: runs after boot.py on a hard reset or a soft reset at the friendly REPL (never in the
# raw REPL, so deploy and the host tools are not disturbed). Starts the app, tsnode.app.main(),
# unless the file /noapp exists (`tinysense` tools and `mpremote touch :/noapp` create it).
# Any failure is printed and the board falls through to the REPL, where the host can fix it.
import sys


def _tsnode_main():
    import os

    try:
        os.stat("/noapp")
        print("main.py: /noapp exists, not starting the app")
        return
    except OSError:
        pass
    try:
        import tsnode.app as app
    except ImportError as e:
        if "tsnode.app" in str(e) or "'app'" in str(e):
            print("main.py: no tsnode.app deployed; REPL")
            return
        sys.print_exception(e)
        print("main.py: tsnode.app failed to import; REPL")
        return
    try:
        app.main()
    except KeyboardInterrupt:
        print("main.py: app stopped (Ctrl-C); REPL")
    except Exception as e:  # noqa: BLE001 (a crashed app must still leave a usable REPL)
        sys.print_exception(e)
        print("main.py: app failed; REPL")


_tsnode_main()
del _tsnode_main
