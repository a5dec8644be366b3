"""Uplink(config): seal records with the next counter, queue on flash, send in order, ack.

send() returns once the frame is durably queued (then it tries to flush for at most
timeout_ms). flush() sends up to `window` oldest frames that are unsent or due for a
retry, and handles acks until the queue is empty or the time is up; frames stay queued
through any network failure. The key is read once into the codec; it is never printed.

Memory: the codec, CCM and batch buffers are preallocated (about 8 KB, measured 10.6 KB
of objects on the 64-bit unix port). Sealing allocates one small view per frame; the dict
path of send() allocates its dicts; queueing allocates a path string and a file object,
and resending reads the frame file into a new bytes object. None of that is per byte.
"""

import json
import time

from micropython import const

from tsnode.uplink.counter import CounterStore
from tsnode.uplink.frame import (DIR_DOWN, PTYPE_ACK, PTYPE_CHUNK, PTYPE_OFFER, PTYPE_RECORDS,
                                 Codec, FrameError)
from tsnode.uplink.fsutil import join
from tsnode.uplink.queue import FrameQueue
from tsnode.uplink.records import Batch, PayloadError, decode_ack

_POLL_SLICE_MS = const(20)
_PARK_AFTER = const(4)  # transmissions without an ack before a frame stops holding a slot


def load_config(root="/"):
    """The config dict from uplink.json under root."""
    with open(join(root, "uplink.json")) as f:
        return json.load(f)


def load_key(root="/"):
    """The 16 key bytes from uplink_key.bin under root (never printed)."""
    with open(join(root, "uplink_key.bin"), "rb") as f:
        key = f.read()
    if len(key) != 16:
        raise ValueError("uplink_key.bin must hold 16 bytes; re-provision the device")
    return key


def make_transport(config):
    """The transport named by config["transport"]: udp | mqtt | serial."""
    kind = config.get("transport", "udp")
    if kind == "serial":
        from tsnode.uplink.serial import SerialTransport

        return SerialTransport(acks=config.get("serial_acks", False))
    host, _, port = config["gateway"].rpartition(":")
    if kind == "udp":
        from tsnode.uplink.udp import UdpTransport

        # a receive buffer one byte larger than the largest frame this codec opens (an
        # oversize ack is then seen as such); 1100 B at the default max_payload
        return UdpTransport(host, int(port), config.get("max_payload", 1024) + 20)
    if kind == "mqtt":
        from tsnode.uplink.mqtt import MqttTransport

        return MqttTransport(host, int(port), config["device_id"], config.get("mqtt_client_id"))
    raise ValueError("uplink transport must be udp, mqtt or serial, not %r" % kind)


def network_up(timeout_ms=10000):
    """Ask the board seam to bring the network up (WiFi on a board); True if up."""
    try:
        from tsnode import board
    except ImportError:
        return True
    up = getattr(board, "network_up", None)
    return True if up is None else bool(up(timeout_ms))


class Uplink:
    def __init__(self, config=None, key=None, root="/", transport=None):
        if config is None:
            config = load_config(root)
        if key is None:
            key = load_key(root)
        self.config = config
        self.device_id = config["device_id"]
        self.codec = Codec(key, self.device_id, config.get("max_payload", 1024))
        self.counter = CounterStore(root, config.get("counter_block", 64)).open(key)
        key = None
        self.queue = FrameQueue(root, config.get("queue_max", 32))
        self.batch = Batch(self.codec.max_payload)
        self.window = config.get("window", 8)
        self.retry_ms = config.get("retry_ms", 1000)
        self._transport = transport
        self.park_ms = config.get("park_ms", 30000)
        self._sent = {}  # counter -> ticks_ms of its last transmission
        self._tries = {}  # counter -> transmissions so far
        self._last_ack = None  # ticks_ms of the last authentic ack
        self.on_sealed = None  # optional callback(counter, frame view), for tests/monitors
        # callback(ptype, payload view) for authentic update offers and chunks (tsnode.ota
        # Receiver.handle); None: they are counted as bad_acks
        self.on_update = None
        self.stats = {"sealed": 0, "sent": 0, "acked": 0, "bad_acks": 0, "updates": 0}

    @property
    def transport(self):
        if self._transport is None:
            kind = self.config.get("transport", "udp")
            if kind != "serial" and not network_up():
                return None
            self._transport = make_transport(self.config)
        return self._transport

    def new_batch(self, base_ms):
        """Reset and return self.batch for the allocation-light path (then send_batch())."""
        self.batch.reset(self.counter.boot, self.queue.dropped_total, base_ms)
        return self.batch

    def send_batch(self, flush=True, timeout_ms=200):
        """Seal self.batch with the next counter, queue it, try to flush; return counter."""
        ctr = self.counter.take()
        frame = self.codec.seal(ctr, PTYPE_RECORDS, self.batch.buf, self.batch.pos)
        self.stats["sealed"] += 1
        if self.on_sealed:
            self.on_sealed(ctr, frame)
        self.queue.put(ctr, frame)
        if flush:
            self.flush(timeout_ms)
        return ctr

    def send(self, records, flush=True, timeout_ms=200):
        """Encode record dicts (see docs/formats/uplink.md) as one frame; return counter."""
        from tsnode.uplink.recdict import encode_records  # the dict form: not the app's path

        encode_records(records, self.counter.boot, self.queue.dropped_total, self.batch)
        return self.send_batch(flush, timeout_ms)

    def flush(self, timeout_ms=200):
        """Send due frames in order and handle acks for up to timeout_ms; frames left."""
        t = self.transport
        if t is None or not self.queue.counters:
            return len(self.queue)
        if len(self._sent) > len(self.queue):  # forget frames dropped from the queue
            for ctr in [c for c in self._sent if c not in self.queue.counters]:
                del self._sent[ctr]
                self._tries.pop(ctr, None)
        start = time.ticks_ms()
        while self.queue.counters:
            self._send_due(t, time.ticks_ms())
            if not t.acks:
                break  # one pass: whatever was written is delivered, the rest waits
            left = timeout_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                break
            ack = t.poll(min(left, _POLL_SLICE_MS))
            if ack is not None:
                self.handle_ack(ack)
        return len(self.queue)

    def _send_due(self, t, now):
        # Oldest first, at most `window` frames in flight. A frame sent _PARK_AFTER times
        # without an ack is "parked": it stays queued (nothing is given up) but no longer
        # holds a window slot, and parked frames are retried one per call, each at most
        # every park_ms. So a frame the gateway will never ack (say it is rejected as too
        # old) cannot stall the frames behind it. When acks resume after a silence (a
        # gateway or network outage), handle_ack un-parks everything so the backlog goes
        # out in order again at full speed.
        in_flight = 0
        parked_sent = False
        for ctr in self.queue.counters:
            if in_flight >= self.window:
                break
            tries = self._tries.get(ctr, 0)
            parked = tries >= _PARK_AFTER
            if parked and parked_sent:
                continue
            if not parked:
                in_flight += 1
            last = self._sent.get(ctr)
            wait = self.park_ms if parked else self.retry_ms
            if last is not None and time.ticks_diff(now, last) < wait:
                continue
            frame = self.queue.read(ctr)
            if frame is None:
                self.queue.ack(ctr)
                continue
            if not t.send(frame):
                return
            self.stats["sent"] += 1
            if t.acks:
                self._sent[ctr] = now
                self._tries[ctr] = tries + 1
                parked_sent = parked_sent or parked
            else:
                self.queue.ack(ctr)  # serial without acks: written = delivered

    def handle_ack(self, frame):
        """Authenticate a downlink frame: an ack drops what it acknowledges (returns how
        many); an update offer or chunk goes to on_update (returns 0)."""
        try:
            d, dev, _ctr, ptype, payload = self.codec.open(frame)
            if d != DIR_DOWN or dev != self.device_id:
                raise FrameError("not_for_us")
            if (ptype == PTYPE_OFFER or ptype == PTYPE_CHUNK) and self.on_update is not None:
                self.stats["updates"] += 1
                self.on_update(ptype, payload)  # the view is valid until the next open
                return 0
            if ptype != PTYPE_ACK:
                raise FrameError("not_for_us")
            counters = decode_ack(payload)
        except (FrameError, PayloadError):
            self.stats["bad_acks"] += 1
            return 0
        now = time.ticks_ms()
        if self._last_ack is None or time.ticks_diff(now, self._last_ack) > self.park_ms:
            self._tries = {}  # acks resumed after a silence: un-park the backlog
        self._last_ack = now
        n = 0
        for c in counters:
            if self.queue.ack(c):
                self._sent.pop(c, None)
                self._tries.pop(c, None)
                n += 1
        self.stats["acked"] += n
        return n

    def close(self):
        if self._transport is not None:
            self._transport.close()
