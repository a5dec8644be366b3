"""Node driver: the MQTT client alone against a broker (argv host port): ping, keepalive,
QoS 1 round trip through the broker to itself, refusal of a bad connection."""

import sys
import time

from tsnode.uplink.mqtt import MQTTClient, MQTTError

host, port = sys.argv[1], int(sys.argv[2])
got = []
c = MQTTClient(host, port, "mp-check", keepalive=2, timeout_ms=3000)
c.on_message = lambda t, p: got.append((t, p))
c.connect()
c.ping()
t0 = time.ticks_ms()
while c.pongs < 1 and time.ticks_diff(time.ticks_ms(), t0) < 3000:
    c.check(50)
print("pong", c.pongs)
c.subscribe("mp/check/#", 1)
pid = c.publish("mp/check/x", b"\x00\x01binary\xff" * 50, 1)
t0 = time.ticks_ms()
while (pid in c.pending or not got) and time.ticks_diff(time.ticks_ms(), t0) < 3000:
    c.check(50)
print("puback", pid not in c.pending, "echo", got == [("mp/check/x", b"\x00\x01binary\xff" * 50)])
# keepalive: stay idle for 4 s (2 x keepalive), pinging as the transport does
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 4000:
    c.check(100)
    if time.ticks_diff(time.ticks_ms(), c.last_tx) > 1000:
        c.ping()
c.publish("mp/check/y", b"still here", 0)
got.clear()
t0 = time.ticks_ms()
while not got and time.ticks_diff(time.ticks_ms(), t0) < 3000:
    c.check(50)
print("alive", got == [("mp/check/y", b"still here")])
c.disconnect()
bad = MQTTClient(host, port, "x" * 10, timeout_ms=2000)
bad.client_id = ""  # an empty id with clean=False must be refused (spec 3.1.3.1)
try:
    bad.connect(clean=False)
    print("refused False")
except MQTTError:
    print("refused True")
