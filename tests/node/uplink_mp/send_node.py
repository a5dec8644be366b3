"""Node driver: argv root transport gateway first n queue_max [drain_ms [window retry park]].

Sends frames first..first+n-1 (records derived from the index, see expected_records in
uplink_helpers.py), then flushes for up to drain_ms; prints a JSON line of stats.
"""

import json
import sys
import time

from tsnode.uplink.fsutil import join
from tsnode.uplink.sender import Uplink

root, transport, gateway = sys.argv[1], sys.argv[2], sys.argv[3]
first, n, qmax = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
drain_ms = int(sys.argv[7]) if len(sys.argv) > 7 else 5000
if root.startswith("vfs:"):  # mount the dir at "/" as the virtual board does; root "/"
    import os
    import vfs

    import tsnode.uplink.mqtt  # noqa: F401 (imported before "/" stops holding MICROPYPATH)
    import tsnode.uplink.recdict  # noqa: F401 (send()'s dict form, imported on first use)
    import tsnode.uplink.serial  # noqa: F401
    import tsnode.uplink.udp  # noqa: F401

    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(root[4:]), "/")
    os.chdir("/")
    root = "/"
config = {"device_id": 0x0BADCAFE, "transport": transport.split("+")[0], "gateway": gateway,
          "queue_max": qmax, "retry_ms": 300, "serial_acks": transport == "serial+ack"}
if len(sys.argv) > 8:  # window retry_ms park_ms
    config.update(window=int(sys.argv[8]), retry_ms=int(sys.argv[9]), park_ms=int(sys.argv[10]))
with open(join(root, "uplink_key.bin"), "rb") as f:
    key = f.read()
up = Uplink(config, key, root)
for i in range(first, first + n):
    up.send([{"type": "event", "code": 1, "t_ms": 1000 + i, "value": i},
             {"type": "reading", "sensor": 2, "t_ms": 1000 + i, "dtype": "i16",
              "values": [i, -i, 3]},
             {"type": "inference", "model": 1, "t_ms": 1001 + i, "class": i % 4,
              "confidence": 200}], True, 20)
deadline = time.ticks_add(time.ticks_ms(), drain_ms)
while len(up.queue) and time.ticks_diff(deadline, time.ticks_ms()) > 0:
    up.flush(50)
up.close()
stats = dict(up.stats)
stats["queued"] = len(up.queue)
stats["dropped_total"] = up.queue.dropped_total
stats["boot"] = up.counter.boot
print("STATS " + json.dumps(stats))
