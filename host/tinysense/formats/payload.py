"""Uplink payload encodings v1: the records batch (type 1) and the ack (type 2).

Spec: docs/formats/uplink.md. The node side is firmware/tsnode/uplink/records.py; both are
tested against tests/vectors/uplink/.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tinysense.formats.frame import MAX_PAYLOAD

RECORDS_VERSION = 1
ACK_VERSION = 1
BATCH_HEADER_LEN = 14
MAX_RECORDS = 255
MAX_VALUES = 255
MAX_ACKS = 255

REC_READING_I16 = 1
REC_READING_F32 = 2
REC_INFERENCE = 3
REC_ANOMALY = 4
REC_EVENT = 5

_BATCH = struct.Struct(">BBIII")
_U32 = 0xFFFFFFFF


class PayloadError(ValueError):
    """An authenticated payload that does not follow the spec (a node bug, not an attack)."""


@dataclass
class Batch:
    version: int
    boot: int
    dropped_total: int
    base_ms: int
    records: list[dict] = field(default_factory=list)


def _varint(value: int, out: bytearray) -> None:
    if not 0 <= value <= _U32:
        raise ValueError(f"time delta {value} outside uint32")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(5):
        if pos >= len(buf):
            raise PayloadError("truncated time delta")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if i and b == 0:
                raise PayloadError("overlong time delta encoding")
            if value > _U32:
                raise PayloadError("time delta exceeds uint32")
            return value, pos
    raise PayloadError("time delta longer than 5 bytes")


def _u8(rec: dict, key: str) -> int:
    v = rec[key]
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 255:
        raise ValueError(f"record field {key!r} must be an int 0..255, got {v!r}")
    return v


def _reading_dtype(rec: dict) -> str:
    dtype = rec.get("dtype")
    if dtype is None:  # auto: ints that fit int16 travel as i16, anything else as f32
        ok = all(isinstance(v, int) and -32768 <= v <= 32767 for v in rec["values"])
        dtype = "i16" if ok else "f32"
    if dtype not in ("i16", "f32"):
        raise ValueError(f"reading dtype must be 'i16' or 'f32', got {dtype!r}")
    return dtype


def encode_records(records: list[dict], *, boot: int = 0, dropped_total: int = 0) -> bytes:
    """Encode a batch of record dicts (see the spec for their fields) as a type-1 payload.

    Args:
        records: dicts with "type" in reading|inference|anomaly|event and "t_ms".
        boot: the node's boot count (uint32).
        dropped_total: frames the node has dropped from its full queue, ever (uint32).
    Raises ValueError when a field is out of range or the payload exceeds MAX_PAYLOAD.
    """
    try:
        return _encode_records(records, boot, dropped_total)
    except struct.error as exc:  # a value that does not fit its field
        raise ValueError(f"record value out of range: {exc}") from None


def _encode_records(records: list[dict], boot: int, dropped_total: int) -> bytes:
    if len(records) > MAX_RECORDS:
        raise ValueError(f"{len(records)} records; a batch holds at most {MAX_RECORDS}")
    base = min((int(r["t_ms"]) for r in records), default=0)
    if not 0 <= base <= _U32:
        raise ValueError("t_ms must be uint32")
    out = bytearray(_BATCH.pack(RECORDS_VERSION, len(records), boot, dropped_total, base))
    for rec in records:
        kind = rec["type"]
        if kind == "reading":
            values = list(rec["values"])
            if len(values) > MAX_VALUES:
                raise ValueError(f"a reading holds at most {MAX_VALUES} values")
            dtype = _reading_dtype(rec)
            out.append(REC_READING_I16 if dtype == "i16" else REC_READING_F32)
            out.append(_u8(rec, "sensor"))
            _varint(int(rec["t_ms"]) - base, out)
            out.append(len(values))
            out += struct.pack(f">{len(values)}{'h' if dtype == 'i16' else 'f'}", *values)
        elif kind == "inference":
            out += bytes((REC_INFERENCE, _u8(rec, "model")))
            _varint(int(rec["t_ms"]) - base, out)
            out += bytes((_u8(rec, "class"), _u8(rec, "confidence")))
        elif kind == "anomaly":
            out += bytes((REC_ANOMALY, _u8(rec, "model")))
            _varint(int(rec["t_ms"]) - base, out)
            out.append(1 if rec["anomalous"] else 0)
            out += struct.pack(">f", rec["score"])
        elif kind == "event":
            out += bytes((REC_EVENT, _u8(rec, "code")))
            _varint(int(rec["t_ms"]) - base, out)
            out += struct.pack(">i", rec["value"])
        else:
            raise ValueError(f"unknown record type {kind!r}")
    if len(out) > MAX_PAYLOAD:
        raise ValueError(f"batch of {len(out)} bytes exceeds {MAX_PAYLOAD}; split it")
    return bytes(out)


def _need(buf: bytes, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise PayloadError("truncated record")


def decode_batch(plaintext: bytes) -> Batch:
    """Decode a type-1 payload strictly (no trailing bytes, canonical varints)."""
    buf = bytes(plaintext)
    if len(buf) < BATCH_HEADER_LEN:
        raise PayloadError(f"batch of {len(buf)} bytes is shorter than its header")
    version, count, boot, dropped, base = _BATCH.unpack_from(buf, 0)
    if version != RECORDS_VERSION:
        raise PayloadError(f"records version {version}, expected {RECORDS_VERSION}")
    pos = BATCH_HEADER_LEN
    records = []
    for _ in range(count):
        _need(buf, pos, 2)
        rtype, ident = buf[pos], buf[pos + 1]
        delta, pos = _read_varint(buf, pos + 2)
        t_ms = base + delta
        if t_ms > _U32:
            raise PayloadError("record time exceeds uint32")
        if rtype in (REC_READING_I16, REC_READING_F32):
            _need(buf, pos, 1)
            n = buf[pos]
            size = 2 if rtype == REC_READING_I16 else 4
            _need(buf, pos + 1, n * size)
            fmt = f">{n}{'h' if rtype == REC_READING_I16 else 'f'}"
            values = list(struct.unpack_from(fmt, buf, pos + 1))
            pos += 1 + n * size
            records.append({"type": "reading", "sensor": ident, "t_ms": t_ms,
                            "dtype": "i16" if rtype == REC_READING_I16 else "f32",
                            "values": values})
        elif rtype == REC_INFERENCE:
            _need(buf, pos, 2)
            records.append({"type": "inference", "model": ident, "t_ms": t_ms,
                            "class": buf[pos], "confidence": buf[pos + 1]})
            pos += 2
        elif rtype == REC_ANOMALY:
            _need(buf, pos, 5)
            flag = buf[pos]
            if flag > 1:
                raise PayloadError(f"anomaly flag {flag} is not 0 or 1")
            (score,) = struct.unpack_from(">f", buf, pos + 1)
            records.append({"type": "anomaly", "model": ident, "t_ms": t_ms,
                            "score": score, "anomalous": bool(flag)})
            pos += 5
        elif rtype == REC_EVENT:
            _need(buf, pos, 4)
            (value,) = struct.unpack_from(">i", buf, pos)
            records.append({"type": "event", "code": ident, "t_ms": t_ms, "value": value})
            pos += 4
        else:
            raise PayloadError(f"unknown record type {rtype}")
    if pos != len(buf):
        raise PayloadError(f"{len(buf) - pos} trailing bytes after {count} records")
    return Batch(version, boot, dropped, base, records)


def decode_records(plaintext: bytes) -> list[dict]:
    """The records of a type-1 payload (decode_batch gives the batch header too)."""
    return decode_batch(plaintext).records


def encode_ack(acked_counters: list[int]) -> bytes:
    """A type-2 payload acknowledging stored uplink frame counters (sorted, de-duplicated)."""
    counters = sorted(set(int(c) for c in acked_counters))
    if len(counters) > MAX_ACKS:
        raise ValueError(f"{len(counters)} counters; an ack holds at most {MAX_ACKS}")
    if counters and not (0 <= counters[0] and counters[-1] <= _U32):
        raise ValueError("acked counters are uint32")
    return struct.pack(f">BB{len(counters)}I", ACK_VERSION, len(counters), *counters)


def decode_ack(plaintext: bytes) -> list[int]:
    """The counters a type-2 payload acknowledges (strictly ascending)."""
    buf = bytes(plaintext)
    if len(buf) < 2:
        raise PayloadError("ack shorter than its 2-byte header")
    if buf[0] != ACK_VERSION:
        raise PayloadError(f"ack version {buf[0]}, expected {ACK_VERSION}")
    n = buf[1]
    if len(buf) != 2 + 4 * n:
        raise PayloadError(f"ack of {len(buf)} bytes does not hold {n} counters")
    counters = list(struct.unpack_from(f">{n}I", buf, 2))
    if any(b <= a for a, b in zip(counters, counters[1:])):
        raise PayloadError("ack counters are not strictly ascending")
    return counters

