"""Uplink payloads v1 on the node: records batch writer (type 1) and ack decoder (type 2).

Spec: docs/formats/uplink.md (host twin: host/tinysense/formats/payload.py). The Batch
writer fills one preallocated buffer. The dict form (encode_records, decode_records,
encode_ack) is tsnode.uplink.recdict: tests and tools use it, the app never loads it (its
code and names would stay in a ~110 KB heap for nothing).
"""

import struct

from micropython import const

VERSION = const(1)
HEADER_LEN = const(14)
MAX_PAYLOAD = const(1024)
REC_READING_I16 = const(1)
REC_READING_F32 = const(2)
REC_INFERENCE = const(3)
REC_ANOMALY = const(4)
REC_EVENT = const(5)
_U32 = const(0xFFFFFFFF)


class PayloadError(ValueError):
    pass


class Batch:
    """Writes one records batch into a preallocated buffer.

    reset(boot, dropped_total, base_ms) first; every record's t_ms must be >= base_ms
    (use the batch's earliest time). add_*() raise ValueError when the batch would exceed
    the buffer (then send this batch and start a new one); room() says what is left.
    """

    def __init__(self, size=MAX_PAYLOAD):
        self.buf = bytearray(size)
        self.n = 0
        self.pos = HEADER_LEN
        self._base = 0

    def reset(self, boot=0, dropped_total=0, base_ms=0):
        struct.pack_into(">BBIII", self.buf, 0, VERSION, 0, boot, dropped_total, base_ms)
        self._base = base_ms
        self.n = 0
        self.pos = HEADER_LEN

    def room(self):
        return len(self.buf) - self.pos

    def _prefix(self, rtype, ident, t_ms, body):
        # Writes type, id, varint(t_ms - base); checks room for the whole record first.
        if self.n >= 255:
            raise ValueError("a batch holds at most 255 records")
        if ident < 0 or ident > 255:
            raise ValueError("record id must be 0..255")
        delta = t_ms - self._base
        if delta < 0 or delta > _U32:
            raise ValueError("t_ms before the batch base or beyond uint32")
        size = 1
        v = delta >> 7
        while v:
            size += 1
            v >>= 7
        if self.pos + 2 + size + body > len(self.buf):
            raise ValueError("batch full")
        b = self.buf
        p = self.pos
        b[p] = rtype
        b[p + 1] = ident
        p += 2
        while delta >= 0x80:
            b[p] = (delta & 0x7F) | 0x80
            delta >>= 7
            p += 1
        b[p] = delta
        self.pos = p + 1
        self.n += 1
        self.buf[1] = self.n

    def reading(self, sensor, t_ms, values, dtype=None):
        """values: a sequence of numbers; dtype 'i16' | 'f32' | None (auto, see spec)."""
        n = len(values)
        if n > 255:
            raise ValueError("a reading holds at most 255 values")
        if dtype is None or dtype == "i16":
            fits = True
            for v in values:
                if not isinstance(v, int) or v < -32768 or v > 32767:
                    fits = False
                    break
            if dtype is None:
                dtype = "i16" if fits else "f32"
            elif not fits:
                raise ValueError("i16 reading values must be ints in -32768..32767")
        if dtype == "i16":
            rtype, size, fmt = REC_READING_I16, 2, ">h"
        elif dtype == "f32":
            rtype, size, fmt = REC_READING_F32, 4, ">f"
        else:
            raise ValueError("dtype must be 'i16' or 'f32'")
        self._prefix(rtype, sensor, t_ms, 1 + n * size)
        p = self.pos
        self.buf[p] = n
        p += 1
        for v in values:
            struct.pack_into(fmt, self.buf, p, v)
            p += size
        self.pos = p

    def inference(self, model, t_ms, cls, confidence):
        if cls < 0 or cls > 255 or confidence < 0 or confidence > 255:
            raise ValueError("class and confidence are 0..255")
        self._prefix(REC_INFERENCE, model, t_ms, 2)
        self.buf[self.pos] = cls
        self.buf[self.pos + 1] = confidence
        self.pos += 2

    def anomaly(self, model, t_ms, score, anomalous):
        self._prefix(REC_ANOMALY, model, t_ms, 5)
        self.buf[self.pos] = 1 if anomalous else 0
        struct.pack_into(">f", self.buf, self.pos + 1, score)
        self.pos += 5

    def event(self, code, t_ms, value):
        if value < -0x80000000 or value > 0x7FFFFFFF:
            raise ValueError("event value must fit int32")
        self._prefix(REC_EVENT, code, t_ms, 4)
        struct.pack_into(">i", self.buf, self.pos, value)
        self.pos += 4


def decode_ack(buf):
    """The list of counters a type-2 payload acknowledges (strictly ascending)."""
    if len(buf) < 2 or buf[0] != VERSION:
        raise PayloadError("bad ack header")
    n = buf[1]
    if len(buf) != 2 + 4 * n:
        raise PayloadError("ack length")
    out = []
    prev = -1
    for i in range(n):
        c = struct.unpack_from(">I", buf, 2 + 4 * i)[0]
        if c <= prev:
            raise PayloadError("ack counters not ascending")
        out.append(c)
        prev = c
    return out
