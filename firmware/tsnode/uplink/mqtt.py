"""Minimal MQTT 3.1.1 client (written from the OASIS spec) and the MQTT uplink transport.

Client: CONNECT/CONNACK, PUBLISH QoS 0/1 with PUBACK, SUBSCRIBE/SUBACK, receiving PUBLISH
QoS 0/1 (answering PUBACK), PINGREQ/PINGRESP, DISCONNECT. Works on MicroPython sockets:
writes use the blocking socket with a timeout; reads happen only after select.poll says
bytes are there, so check() waits at most its timeout. Received bytes accumulate in one
buffer and are parsed when a whole packet is in.
"""

import select
import socket
import struct

from micropython import const

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_MAX_PACKET = const(4096)


class MQTTError(OSError):
    pass


def _str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack(">H", len(b)) + b


def _remaining_length(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


class MQTTClient:
    def __init__(self, host, port=1883, client_id="", keepalive=60, user=None,
                 password=None, timeout_ms=5000):
        self.addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
        self.client_id = client_id
        self.keepalive = keepalive
        self.user = user
        self.password = password
        self.timeout_ms = timeout_ms
        self.sock = None
        self.on_message = None  # callback(topic: str, payload: bytes)
        self.pending = set()  # QoS 1 packet ids not yet PUBACKed
        self._pid = 0
        self._rx = bytearray()
        self._poll = None
        self._suback = None
        self._connack = None
        self.last_tx = 0
        self.pongs = 0  # PINGRESPs received

    def _send(self, first, body):
        import time

        self.sock.write(bytes((first,)) + _remaining_length(len(body)) + body)
        self.last_tx = time.ticks_ms()

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def connect(self, clean=True):
        """Open the TCP connection and wait for CONNACK (raises MQTTError/OSError)."""
        self.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout_ms / 1000)
        try:
            s.connect(self.addr)
        except OSError:
            s.close()
            raise
        self.sock = s
        self._rx = bytearray()
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        flags = 0x02 if clean else 0
        payload = _str(self.client_id)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        body = _str("MQTT") + bytes((4, flags)) + struct.pack(">H", self.keepalive) + payload
        self._connack = None
        self._send(_CONNECT, body)
        self._wait(lambda: self._connack is not None)
        if self._connack != 0:
            code = self._connack
            self.close()
            raise MQTTError("MQTT broker refused the connection (CONNACK code %d)" % code)

    def _wait(self, done):
        import time

        start = time.ticks_ms()
        while not done():
            left = self.timeout_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                raise MQTTError("MQTT broker did not answer in time")
            self.check(left)

    def publish(self, topic, payload, qos=1, retain=False):
        """Send a PUBLISH; returns its packet id (0 for QoS 0). PUBACK arrives via check()."""
        body = _str(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            body += struct.pack(">H", pid)
            self.pending.add(pid)
        self._send(_PUBLISH | (qos << 1) | (1 if retain else 0), body + bytes(payload))
        return pid

    def subscribe(self, topic, qos=1):
        """SUBSCRIBE and wait for SUBACK; raises MQTTError when the broker refuses."""
        pid = self._next_pid()
        self._suback = None
        self._send(_SUBSCRIBE, struct.pack(">H", pid) + _str(topic) + bytes((qos,)))
        self._wait(lambda: self._suback is not None and self._suback[0] == pid)
        if self._suback[1] == 0x80:
            raise MQTTError("MQTT broker refused the subscription")

    def ping(self):
        self._send(_PINGREQ, b"")

    def check(self, timeout_ms=0):
        """Read what has arrived (waiting up to timeout_ms for the first byte) and handle
        every complete packet; returns how many were handled."""
        if self.sock is None:
            raise MQTTError("not connected")
        if self._poll.poll(timeout_ms):
            data = self.sock.recv(1024)
            if not data:
                self.close()
                raise MQTTError("MQTT broker closed the connection")
            self._rx += data
        handled = 0
        while self._one():
            handled += 1
        return handled

    def _one(self):
        rx = self._rx
        if len(rx) < 2:
            return False
        n = 0
        shift = 0
        i = 1
        while True:
            if i >= len(rx):
                return False
            if i > 4:
                raise MQTTError("bad MQTT remaining length")
            b = rx[i]
            n |= (b & 0x7F) << shift
            shift += 7
            i += 1
            if not b & 0x80:
                break
        if n > _MAX_PACKET:
            self.close()
            raise MQTTError("MQTT packet too large")
        if len(rx) < i + n:
            return False
        first = rx[0]
        body = bytes(rx[i:i + n])
        self._rx = rx[i + n:]
        self._handle(first, body)
        return True

    def _handle(self, first, body):
        kind = first & 0xF0
        if kind == _CONNACK:
            self._connack = body[1] if len(body) >= 2 else 255
        elif kind == _PUBACK:
            self.pending.discard(struct.unpack(">H", body)[0])
        elif kind == _SUBACK:
            self._suback = (struct.unpack(">H", body[:2])[0], body[2] if len(body) > 2 else 0x80)
        elif kind == _PUBLISH:
            qos = (first >> 1) & 3
            tlen = struct.unpack(">H", body[:2])[0]
            topic = body[2:2 + tlen].decode()
            pos = 2 + tlen
            if qos:
                pid = struct.unpack(">H", body[pos:pos + 2])[0]
                pos += 2
                self._send(_PUBACK, struct.pack(">H", pid))
            if self.on_message:
                self.on_message(topic, body[pos:])
        elif kind == _PINGRESP:
            self.pongs += 1

    def disconnect(self):
        if self.sock is not None:
            try:
                self._send(_DISCONNECT, b"")
            except OSError:
                pass
        self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


class MqttTransport:
    """Uplink over MQTT: frames to tinysense/<id>/up (QoS 1), acks from tinysense/<id>/ack."""

    acks = True
    name = "mqtt"

    def __init__(self, host, port, device_id, client_id=None, keepalive=60, timeout_ms=3000):
        dev = "%08x" % device_id
        self.up_topic = "tinysense/%s/up" % dev
        self.ack_topic = "tinysense/%s/ack" % dev
        self.client = MQTTClient(host, port, client_id or "ts-" + dev, keepalive,
                                 timeout_ms=timeout_ms)
        self.client.on_message = self._on_message
        self._inbox = []
        self._retry_at = None
        self._backoff = 1000

    def _on_message(self, topic, payload):
        if topic == self.ack_topic and len(self._inbox) < 16:
            self._inbox.append(payload)

    def connect(self):
        """Connect and subscribe unless connected; after a failure, wait (1 s doubling to
        60 s) before trying again so a missing broker does not stall every send."""
        import time

        if self.client.sock is not None:
            return True
        now = time.ticks_ms()
        if self._retry_at is not None and time.ticks_diff(self._retry_at, now) > 0:
            return False
        try:
            self.client.connect()
            self.client.subscribe(self.ack_topic, 1)
        except OSError:
            self.client.close()
            self._backoff = min(self._backoff * 2, 60000) if self._retry_at else 1000
            self._retry_at = time.ticks_add(now, self._backoff)
            return False
        self._retry_at = None
        return True

    def send(self, frame):
        if not self.connect():
            return False
        try:
            self.client.publish(self.up_topic, frame, 1)
            return True
        except OSError:
            self.client.close()
            return False

    def poll(self, timeout_ms):
        import time

        if not self._inbox and self.client.sock is not None:
            try:
                self.client.check(timeout_ms)
                idle = time.ticks_diff(time.ticks_ms(), self.client.last_tx)
                if idle > self.client.keepalive * 500:
                    self.client.ping()
            except OSError:
                self.client.close()
        return self._inbox.pop(0) if self._inbox else None

    def close(self):
        self.client.disconnect()
