"""Uplink payloads in the host's dict form on the node: tests and tools, never the app.

encode_records / decode_records (type 1) and encode_ack (type 2), the same dicts as
host/tinysense/formats/payload.py (spec: docs/formats/uplink.md). The app writes frames with
tsnode.uplink.records.Batch and decodes acks with records.decode_ack; this module stays off
the node's heap unless something asks for the dict form (Uplink.send does, lazily).
"""

import struct

from micropython import const

from tsnode.uplink.records import (
    HEADER_LEN, REC_ANOMALY, REC_EVENT, REC_INFERENCE, REC_READING_F32, REC_READING_I16, VERSION,
    Batch, PayloadError,
)

_U32 = const(0xFFFFFFFF)


def _add(batch, rec):
    """Add one record given as a dict (the host's dict form) to `batch`."""
    kind = rec["type"]
    if kind == "reading":
        batch.reading(rec["sensor"], rec["t_ms"], rec["values"], rec.get("dtype"))
    elif kind == "inference":
        batch.inference(rec["model"], rec["t_ms"], rec["class"], rec["confidence"])
    elif kind == "anomaly":
        batch.anomaly(rec["model"], rec["t_ms"], rec["score"], rec["anomalous"])
    elif kind == "event":
        batch.event(rec["code"], rec["t_ms"], rec["value"])
    else:
        raise ValueError("unknown record type")


def encode_records(records, boot=0, dropped_total=0, batch=None):
    """Fill `batch` (or a new Batch) from record dicts; return the payload length."""
    if batch is None:
        batch = Batch()
    base = min(r["t_ms"] for r in records) if records else 0
    batch.reset(boot, dropped_total, base)
    for rec in records:
        _add(batch, rec)
    return batch.pos


def _varint(buf, pos):
    value = 0
    for i in range(5):
        if pos >= len(buf):
            raise PayloadError("truncated")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if i and b == 0:
                raise PayloadError("overlong varint")
            if value > _U32:
                raise PayloadError("varint beyond uint32")
            return value, pos
    raise PayloadError("varint longer than 5 bytes")


def _need(buf, pos, n):
    if pos + n > len(buf):
        raise PayloadError("truncated")


def decode_records(buf):
    """(boot, dropped_total, [record dicts]) of a type-1 payload; strict like the host."""
    if len(buf) < HEADER_LEN:
        raise PayloadError("short batch")
    version, count, boot, dropped, base = struct.unpack_from(">BBIII", buf, 0)
    if version != VERSION:
        raise PayloadError("records version")
    pos = HEADER_LEN
    out = []
    for _ in range(count):
        _need(buf, pos, 2)
        rtype, ident = buf[pos], buf[pos + 1]
        delta, pos = _varint(buf, pos + 2)
        t = base + delta
        if t > _U32:
            raise PayloadError("time beyond uint32")
        if rtype == REC_READING_I16 or rtype == REC_READING_F32:
            _need(buf, pos, 1)
            n = buf[pos]
            size, fmt = (2, ">h") if rtype == REC_READING_I16 else (4, ">f")
            _need(buf, pos + 1, n * size)
            vals = [struct.unpack_from(fmt, buf, pos + 1 + i * size)[0] for i in range(n)]
            pos += 1 + n * size
            out.append({"type": "reading", "sensor": ident, "t_ms": t, "values": vals,
                        "dtype": "i16" if size == 2 else "f32"})
        elif rtype == REC_INFERENCE:
            _need(buf, pos, 2)
            out.append({"type": "inference", "model": ident, "t_ms": t, "class": buf[pos],
                        "confidence": buf[pos + 1]})
            pos += 2
        elif rtype == REC_ANOMALY:
            _need(buf, pos, 5)
            if buf[pos] > 1:
                raise PayloadError("anomaly flag")
            out.append({"type": "anomaly", "model": ident, "t_ms": t,
                        "score": struct.unpack_from(">f", buf, pos + 1)[0],
                        "anomalous": buf[pos] == 1})
            pos += 5
        elif rtype == REC_EVENT:
            _need(buf, pos, 4)
            out.append({"type": "event", "code": ident, "t_ms": t,
                        "value": struct.unpack_from(">i", buf, pos)[0]})
            pos += 4
        else:
            raise PayloadError("unknown record type")
    if pos != len(buf):
        raise PayloadError("trailing bytes")
    return boot, dropped, out


def encode_ack(counters):
    """Type-2 payload bytes for these uplink counters (sorted, de-duplicated)."""
    cs = sorted(set(counters))
    if len(cs) > 255:
        raise ValueError("an ack holds at most 255 counters")
    buf = bytearray(2 + 4 * len(cs))
    buf[0] = VERSION
    buf[1] = len(cs)
    for i, c in enumerate(cs):
        struct.pack_into(">I", buf, 2 + 4 * i, c)
    return bytes(buf)
