# main.py: runs after boot.py on a hard reset or a soft reset at the friendly REPL (never in the
# raw REPL, so deploy and the host tools are not disturbed). Starts the app, tsnode.app.main(),
# unless the file /noapp exists (`tinysense` tools and `mpremote touch :/noapp` create it).
# A crashing app is restarted by a soft reset (tsnode.supervise); an app that cannot be
# imported, or keeps crashing, falls through to the REPL, where the host can fix it.
import sys


def _tsnode_main():
    import os

    try:
        os.stat("/noapp")
        print("main.py: /noapp exists, not starting the app")
        return
    except OSError:
        pass
    name = "tsnode.app"
    try:
        from tsnode import supervise

        name = supervise.app_module()  # tsnode.app, unless /app.txt names another module
        app = __import__(name, None, None, ("main",))
    except ImportError as e:
        if name in str(e) or "'app'" in str(e):
            print("main.py: no %s deployed; REPL" % name)
            return
        sys.print_exception(e)
        print("main.py: %s failed to import; REPL" % name)
        return
    # A crash in the app is logged to /crash.log and soft-resets the node (boot.py, main.py
    # again); a crash loop or Ctrl-C ends in the REPL (see tsnode/supervise.py).
    supervise.run(app.main)


_tsnode_main()
del _tsnode_main
