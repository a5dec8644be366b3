"""Node driver: Uplink set-up from files and its refusals (argv[1] = an empty dir)."""

import json
import sys

from tsnode.uplink.counter import CounterError, CounterStore
from tsnode.uplink.sender import Uplink

root = sys.argv[1]
with open(root + "/uplink.json", "w") as f:
    json.dump({"device_id": 7, "transport": "serial"}, f)
with open(root + "/uplink_key.bin", "wb") as f:
    f.write(b"short")
try:
    Uplink(root=root)
    print("short_key accepted")
except ValueError as e:
    print("short_key refused:", e)
key = bytes(range(16))
with open(root + "/uplink_key.bin", "wb") as f:
    f.write(key)
try:
    Uplink(root=root)
    print("no_counter accepted")
except CounterError as e:
    print("no_counter refused:", e)
CounterStore(root).create(key)
up = Uplink(root=root)
try:
    up.send([{"type": "reading", "sensor": 1, "t_ms": 0, "dtype": "f32",
              "values": [0.5] * 255}] * 2, False)
    print("oversize accepted")
except ValueError as e:
    print("oversize refused:", e)
b = up.new_batch(1000)
b.reading(3, 1000, (1, 2, 3))
b.inference(1, 1005, 2, 230)
print("first counter", up.send_batch(False), "queued", len(up.queue))
print("flush left", up.flush(50))
