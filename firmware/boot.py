# boot.py: runs first on every reset (hard or soft, friendly or raw REPL), before main.py.
# Keep it tiny and infallible: an error here happens on every boot. The app starts in main.py.
import gc

gc.collect()
