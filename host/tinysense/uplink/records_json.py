"""A records payload (type 1) straight to the gateway's JSON text, without building dicts.

The gateway's ingest hot path: `records_json(plaintext)` gives exactly the text that
`json` makes of `decode_batch`'s result (compact separators, NaN/inf as null, the same key
order), about 4x faster, because it formats numbers into one string instead of building
a dict per record and walking it with the json encoder.

It only accelerates the common case: for anything unusual (wrong version, a truncated or
unknown record, trailing bytes, a time past uint32) it returns None or raises, and the
caller falls back to the strict `decode_batch`, which gives the error text. Equality with
the strict decoder is tested on random and mutated payloads (tests/host/test_uplink_json.py).
"""

from __future__ import annotations

import struct

from tinysense.formats.payload import (
    BATCH_HEADER_LEN, MAX_VALUES, REC_ANOMALY, REC_EVENT, REC_INFERENCE, REC_READING_F32,
    REC_READING_I16, RECORDS_VERSION, _read_varint,
)

_BATCH = struct.Struct(">BBIII")
_ANOMALY = struct.Struct(">Bf")
_EVENT = struct.Struct(">i")
# Per value count (0..255), made on first use: (unpacker, "%d,%d,..." or "%r,%r,...").
_I16: list[tuple[struct.Struct, str] | None] = [None] * (MAX_VALUES + 1)
_F32: list[tuple[struct.Struct, str] | None] = [None] * (MAX_VALUES + 1)
_U32 = 0xFFFFFFFF
_frepr = float.__repr__  # what json uses for a finite float (and what %r gives)
_SEP = ","


def _float(v: float) -> str:
    return _frepr(v) if v - v == 0.0 else "null"  # NaN and +-inf give NaN when subtracted


def _layout(table: list, n: int, code: str) -> tuple[struct.Struct, str]:
    made = table[n] = (struct.Struct(f">{n}{code}"),
                       _SEP.join(["%d" if code == "h" else "%r"] * n))
    return made


def records_json(buf: bytes) -> tuple[str, int] | None:
    """(JSON text, dropped_total) of a well-formed records payload, else None (or raises).

    The JSON text is `{"boot":..,"dropped_total":..,"base_ms":..,"records":[..]}` with each
    record as decode_batch gives it.
    """
    version, count, boot, dropped, base = _BATCH.unpack_from(buf, 0)
    if version != RECORDS_VERSION:
        return None
    n = len(buf)
    pos = BATCH_HEADER_LEN
    parts = []
    add = parts.append
    for _ in range(count):
        rtype = buf[pos]
        ident = buf[pos + 1]
        t = buf[pos + 2]
        if t < 0x80:  # one-byte time delta: the usual case
            pos += 3
        else:
            t, pos = _read_varint(buf, pos + 2)
        t += base
        if t > _U32:
            return None
        if rtype == REC_INFERENCE:
            if pos + 2 > n:
                return None
            add(f'{{"type":"inference","model":{ident},"t_ms":{t},"class":{buf[pos]},'
                f'"confidence":{buf[pos + 1]}}}')
            pos += 2
        elif rtype == REC_READING_I16:
            k = buf[pos]
            end = pos + 1 + 2 * k
            if end > n:
                return None
            unpacker, fmt = _I16[k] or _layout(_I16, k, "h")
            add(f'{{"type":"reading","sensor":{ident},"t_ms":{t},"dtype":"i16",'
                f'"values":[{fmt % unpacker.unpack_from(buf, pos + 1)}]}}')
            pos = end
        elif rtype == REC_READING_F32:
            k = buf[pos]
            end = pos + 1 + 4 * k
            if end > n:
                return None
            unpacker, fmt = _F32[k] or _layout(_F32, k, "f")
            values = unpacker.unpack_from(buf, pos + 1)
            text = fmt % values
            if "n" in text:  # nan or inf (a finite float's repr has no "n"): JSON null
                text = _SEP.join(map(_float, values))
            add(f'{{"type":"reading","sensor":{ident},"t_ms":{t},"dtype":"f32",'
                f'"values":[{text}]}}')
            pos = end
        elif rtype == REC_ANOMALY:
            if pos + 5 > n:
                return None
            flag, score = _ANOMALY.unpack_from(buf, pos)
            if flag > 1:
                return None
            add(f'{{"type":"anomaly","model":{ident},"t_ms":{t},"score":{_float(score)},'
                f'"anomalous":{"true" if flag else "false"}}}')
            pos += 5
        elif rtype == REC_EVENT:
            if pos + 4 > n:
                return None
            add(f'{{"type":"event","code":{ident},"t_ms":{t},'
                f'"value":{_EVENT.unpack_from(buf, pos)[0]}}}')
            pos += 4
        else:
            return None
    if pos != n:
        return None
    return (f'{{"boot":{boot},"dropped_total":{dropped},"base_ms":{base},'
            f'"records":[{_SEP.join(parts)}]}}', dropped)
