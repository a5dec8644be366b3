"""The gateway's fast records -> JSON path gives exactly the strict decoder's JSON, or defers."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinysense.gateway.core import decode_payload, decode_to_json
from tinysense.uplink import PTYPE_RECORDS, encode_records
from tinysense.uplink.records_json import records_json

VEC = Path(__file__).resolve().parents[1] / "vectors" / "uplink"
U32 = 0xFFFFFFFF

u8 = st.integers(0, 255)
t_ms = st.integers(0, U32)
f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
record = st.one_of(
    st.fixed_dictionaries({"type": st.just("reading"), "sensor": u8, "t_ms": t_ms,
                           "dtype": st.just("i16"),
                           "values": st.lists(st.integers(-32768, 32767), max_size=40)}),
    st.fixed_dictionaries({"type": st.just("reading"), "sensor": u8, "t_ms": t_ms,
                           "dtype": st.just("f32"), "values": st.lists(f32, max_size=20)}),
    st.fixed_dictionaries({"type": st.just("inference"), "model": u8, "t_ms": t_ms,
                           "class": u8, "confidence": u8}),
    st.fixed_dictionaries({"type": st.just("anomaly"), "model": u8, "t_ms": t_ms,
                           "score": f32, "anomalous": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("event"), "code": u8, "t_ms": t_ms,
                           "value": st.integers(-2**31, 2**31 - 1)}),
)


def _fast(payload: bytes):
    try:
        return records_json(payload)
    except Exception:  # noqa: BLE001 - raising means "defer to the strict decoder"
        return None


def _agree(payload: bytes, must_take: bool = False) -> None:
    decoded, text, error = decode_payload(PTYPE_RECORDS, payload)
    fast = _fast(payload)
    if error is not None:
        assert fast is None, f"fast path took a payload the strict decoder rejects: {error}"
    else:
        assert fast is None or fast == (text, decoded["dropped_total"])
        if must_take:
            assert fast is not None
    assert decode_to_json(payload) == (
        text, None if decoded is None else decoded["dropped_total"], error)


def _narrow(records: list[dict]) -> list[dict]:
    """Time stamps close together, as a node sends them (the encoder needs deltas < 2^32)."""
    if not records:
        return records
    base = min(r["t_ms"] for r in records)
    return [r | {"t_ms": base + (r["t_ms"] - base) % 300_000} for r in records]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, max_size=12), st.integers(0, U32), st.integers(0, U32))
def test_fast_json_equals_strict_decoder(records, boot, dropped):
    payload = encode_records(_narrow(records), boot=boot, dropped_total=dropped)
    _agree(payload, must_take=True)
    text = records_json(payload)[0]
    assert json.loads(text)["dropped_total"] == dropped  # strict JSON: no NaN tokens
    assert "NaN" not in text and "Infinity" not in text


@settings(max_examples=600, deadline=None)
@given(st.lists(record, min_size=1, max_size=6), st.data())
def test_mutated_payloads_never_diverge(records, data):
    payload = bytearray(encode_records(_narrow(records), boot=1))
    op = data.draw(st.sampled_from(["flip", "truncate", "extend", "set"]))
    if op == "flip":
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "truncate":
        del payload[data.draw(st.integers(0, len(payload) - 1)):]
    elif op == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=8))
    else:
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(u8)
    _agree(bytes(payload))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_never_diverge(payload):
    _agree(payload)


def test_golden_and_bad_payload_vectors():
    frames = json.loads((VEC / "frames.json").read_text())["frames"]
    for vec in frames:
        if vec["ptype"] == PTYPE_RECORDS:
            _agree(bytes.fromhex(vec["plaintext"]), must_take=True)
    bad = json.loads((VEC / "bad_payloads.json").read_text())["bad"]
    records_bad = [b for b in bad if b["kind"] != "ack"]
    assert records_bad
    for b in records_bad:
        _agree(bytes.fromhex(b["plaintext"]))


def test_non_finite_and_multibyte_times():
    recs = [{"type": "reading", "sensor": 1, "t_ms": 10, "dtype": "f32",
             "values": [math.nan, math.inf, -math.inf, -0.0, 1e-40]},
            {"type": "anomaly", "model": 2, "t_ms": 10 + 2**28, "score": math.nan,
             "anomalous": True}]
    payload = encode_records(recs, boot=1)
    _agree(payload, must_take=True)
    assert '"values":[null,null,null,-0.0,' in records_json(payload)[0]
