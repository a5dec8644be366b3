"""Node driver for the power-cut test: argv root gateway_port mode(run|drain) [queue_max].

run: seal and send a frame in a loop forever (the test SIGKILLs it), printing each sealed
frame as "S <counter> <hex>". drain: flush until the queue is empty, print "DRAINED".
"""

import sys
import time

from tsnode.uplink.sender import Uplink

root, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
qmax = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
config = {"device_id": 0x00C0FFEE, "transport": "udp", "gateway": "127.0.0.1:%d" % port,
          "counter_block": 8, "queue_max": qmax, "window": 8, "retry_ms": 150}
with open(root + "/uplink_key.bin", "rb") as f:
    key = f.read()
up = Uplink(config, key, root)
if mode == "drain":
    deadline = time.ticks_add(time.ticks_ms(), 20000)
    while len(up.queue) and time.ticks_diff(deadline, time.ticks_ms()) > 0:
        up.flush(100)
    print("DRAINED", len(up.queue))
    sys.exit(0)


def sealed(ctr, frame):
    sys.stdout.write("S %d %s\n" % (ctr, bytes(frame).hex()))


up.on_sealed = sealed
i = 0
while True:
    i += 1
    up.send([{"type": "event", "code": 1, "t_ms": time.ticks_ms(), "value": i},
             {"type": "reading", "sensor": 2, "t_ms": time.ticks_ms(), "values": [i, -i]}],
            True, 15)
