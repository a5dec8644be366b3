"""Node driver: feed the ack frames in argv[2] (JSON list of [name, hex]) to an Uplink in
argv[1] that has queued frames 0..4; print "<name> <dropped> <queue>" for each."""

import json
import sys

from nonet import NoNet
from tsnode.uplink.sender import Uplink


root = sys.argv[1]
with open(root + "/uplink_key.bin", "rb") as f:
    key = f.read()
up = Uplink({"device_id": 0x0BADCAFE, "queue_max": 10}, key, root, NoNet())
for i in range(5):
    up.send([{"type": "event", "code": 0, "t_ms": i, "value": i}], False)
with open(sys.argv[2]) as f:
    cases = json.load(f)
for name, frame in cases:
    n = up.handle_ack(bytes.fromhex(frame))
    print(name, n, ",".join(str(c) for c in up.queue.counters))
print("bad_acks", up.stats["bad_acks"])
