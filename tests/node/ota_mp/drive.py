# Drives tsnode.ota on a real MicroPython (unix port) for tests/node/test_ota.py.
#   micropython drive.py ROOT feed STREAM   feed (ptype, payload) records to a Receiver
#   micropython drive.py ROOT boot [N]      run ota.boot(crashes=N); run the active model once
#   micropython drive.py ROOT healthy       end a trial
# STREAM: records of ptype (1 byte), payload length (2 bytes, big-endian), payload.
# Prints one line per event ("EV <id> <step>") and what each mode found.
import json
import sys

from tsnode import ota

root, mode = sys.argv[1], sys.argv[2]
if mode == "feed":
    r = ota.Receiver(root)
    for uid, step in r.events:
        print("EV", uid, step)
    r.events = []
    with open(sys.argv[3], "rb") as f:
        while True:
            head = f.read(3)
            if len(head) < 3:
                break
            n = (head[1] << 8) | head[2]
            r.handle(head[0], f.read(n))
            for uid, step in r.events:
                print("EV", uid, step)
            r.events = []
    print("HAVE", r.have, json.dumps(r.stats))
elif mode == "boot":
    paths = ota.boot(root, crashes=int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    st = ota.read_state(root)
    print("BOOT", json.dumps({"paths": paths, "result": st["result"], "active": st["active"],
                              "trial": st["trial"]}))
    if paths:
        from tsnode.engine.model import open_streaming

        m = open_streaming(paths[0])
        m.run()
        print("RUN", len(m.output_bytes()))
elif mode == "healthy":
    print("HEALTHY", ota.healthy(root))
