"""Node driver: feed the downlink frames in argv[2] (JSON list of [name, hex]) to an Uplink
in argv[1] whose on_update hands offers and chunks to a tsnode.ota Receiver (argv[3] as its
root); print "<name> <updates so far> <bad_acks so far>" for each, then the OTA events."""

import json
import sys

from tsnode.ota import Receiver
from nonet import NoNet
from tsnode.uplink.sender import Uplink


root = sys.argv[1]
with open(root + "/uplink_key.bin", "rb") as f:
    key = f.read()
up = Uplink({"device_id": 0x0BADCAFE}, key, root, NoNet())
rx = Receiver(sys.argv[3])
up.on_update = rx.handle
with open(sys.argv[2]) as f:
    cases = json.load(f)
for name, frame in cases:
    up.handle_ack(bytes.fromhex(frame))
    print(name, up.stats["updates"], up.stats["bad_acks"])
print("events", " ".join("%d:%d" % e for e in rx.events))
