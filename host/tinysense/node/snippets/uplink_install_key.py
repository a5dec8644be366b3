# Install a staged uplink key on the node (run by tinysense.provision over the raw REPL).
# _STAGED: path of the staged 16-byte key; _CONFIG: the new /uplink.json text; _DISCARD:
# remove queued frames (sealed with the old key). Starts the frame counter for the new key
# before the key file is switched, so a power cut leaves either the old key (still with its
# own counter state) or the new one with its counter. Prints "OK <frames discarded>".
# Paths are relative to "/" (after chdir): the unix port's VfsPosix (the virtual board)
# fails os.rename when both paths are absolute (a shared path buffer), relative ones work;
# on a board, relative to "/" is the same file.
import os

from tsnode.uplink.counter import CounterStore
from tsnode.uplink.fsutil import write_atomic


def _tsp_main(staged, config, discard):
    os.chdir("/")
    staged = staged.lstrip("/")
    with open(staged, "rb") as f:
        key = f.read()
    if len(key) != 16:
        raise ValueError("staged uplink key is not 16 bytes")
    dropped = 0
    if discard:
        try:
            names = os.listdir("/uplink_q")
        except OSError:
            names = []
        for name in names:
            if name != "dropped":
                os.remove("/uplink_q/" + name)
                dropped += 1
    CounterStore("").create(key)
    try:
        os.rename(staged, "uplink_key.bin")
    except OSError:  # a filesystem whose rename will not replace an existing file (FAT)
        os.remove("uplink_key.bin")
        os.rename(staged, "uplink_key.bin")
    write_atomic("uplink.json", config)
    print("OK", dropped)


_tsp_main(_STAGED, _CONFIG, _DISCARD)  # noqa: F821 (prepended by tinysense.node.snippets.script)
del _tsp_main, _STAGED, _CONFIG, _DISCARD  # noqa: F821
