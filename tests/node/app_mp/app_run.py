"""Node driver: run tsnode.app on the unix port with a real serial uplink (frames are
`TSF1 <base64>` lines on stdout, written = delivered). argv[1]: a JSON file {"root": a dir,
"app": app.json overrides, "key": hex key or null (no uplink), "device_id": n,
"crash_reads": [read numbers at which the source raises OSError], "fake_mpu": true to give
the board seam an I2C bus with tests/node/fake_mpu6050.py's MPU6050 on it}."""

import json
import sys
from binascii import unhexlify

import time

from tsnode import board, config
from tsnode.app import App

with open(sys.argv[1]) as f:
    args = json.load(f)
cfg = config.merge(args["app"])
if args.get("fake_mpu"):
    from fake_mpu6050 import FakeMPU6050Bus

    board.i2c = lambda freq=400000: FakeMPU6050Bus()
up = None
if args.get("key"):
    from tsnode.uplink.counter import CounterStore
    from tsnode.uplink.sender import Uplink

    key = unhexlify(args["key"])
    CounterStore(args["root"]).create(key)
    up = Uplink({"device_id": args["device_id"], "transport": "serial", "max_payload": 256},
                key, args["root"])
app = App(cfg, uplink=up)


class Faulty:
    """The app's source, raising OSError at the given read numbers (a flaky I2C bus)."""

    def __init__(self, src, at):
        self.src = src
        self.at = at
        self.n = 0

    def read(self, buf):
        self.n += 1
        if self.n in self.at:
            raise OSError("injected sensor fault at read %d" % self.n)
        return self.src.read(buf)

    def __getattr__(self, name):
        return getattr(self.src, name)


if args.get("crash_reads"):
    app.source = Faulty(app.source, args["crash_reads"])
t0 = time.ticks_ms()
app.run()
print("elapsed_ms", time.ticks_diff(time.ticks_ms(), t0))
