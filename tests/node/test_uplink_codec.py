"""Node frame codec and payloads (tsnode.uplink.frame/records) vs tests/vectors/uplink/."""

from __future__ import annotations

import json
import random
import struct

import pytest
from uplink_helpers import VECTORS, run_mp

from tinysense.uplink import decode_batch, encode_records, seal

pytestmark = pytest.mark.node


def test_node_codec_matches_golden_vectors():
    frames = json.loads((VECTORS / "frames.json").read_text())["frames"]
    bad = json.loads((VECTORS / "bad_frames.json").read_text())["bad_frames"]
    badp = json.loads((VECTORS / "bad_payloads.json").read_text())["bad"]
    lines = [json.loads(x) for x in run_mp("vectors_check.py", str(VECTORS), heap="4M")
             .splitlines()]
    assert len(lines) == len(frames) + len(bad) + len(badp)
    for v, res in zip(frames, lines):
        assert res["name"] == v["name"]
        assert res["frame"] == v["frame"], v["name"]
        assert res["opened"] == v["plaintext"], v["name"]
        assert res["header"] == [v["direction"], v["device_id"], v["counter"], v["ptype"]]
        if "records" in v:
            assert res["encoded"] == v["plaintext"], v["name"]
            boot, dropped, recs = res["decoded"]
            assert (boot, dropped) == (v["batch"]["boot"], v["batch"]["dropped_total"])
            assert recs == v["records"], v["name"]
        if "acked" in v:
            assert res["encoded"] == v["plaintext"]
            assert res["decoded"] == v["acked"]
    for v, res in zip(bad, lines[len(frames):]):
        assert res == {"name": v["name"], "reason": v["reason"]}
    for v, res in zip(badp, lines[len(frames) + len(bad):]):
        assert res == {"why": v["why"], "result": "rejected"}


def _f32(rng) -> float:
    """A random float32 (any sign/exponent, subnormals, zeros, inf; never NaN)."""
    while True:
        bits = rng.getrandbits(32) if rng.random() < 0.8 else rng.choice(
            [0, 0x80000000, 0x7F800000, 0xFF800000, 1, 0x7F7FFFFF, 0x00800000])
        value = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
        if value == value:
            return value


def _random_record(rng, base):
    t = base + rng.choice([0, 1, 127, 128, 16383, 16384, rng.getrandbits(20),
                           rng.getrandbits(32)])
    t = min(t, 0xFFFFFFFF)
    kind = rng.choice(["i16", "f32", "inference", "anomaly", "event"])
    ident = rng.randrange(256)
    if kind in ("i16", "f32"):
        n = rng.choice([0, 1, 3, rng.randrange(40)])
        values = ([rng.randint(-32768, 32767) for _ in range(n)] if kind == "i16"
                  else [_f32(rng) for _ in range(n)])
        return {"type": "reading", "sensor": ident, "t_ms": t, "dtype": kind, "values": values}
    if kind == "inference":
        return {"type": "inference", "model": ident, "t_ms": t, "class": rng.randrange(256),
                "confidence": rng.randrange(256)}
    if kind == "anomaly":
        return {"type": "anomaly", "model": ident, "t_ms": t, "score": _f32(rng),
                "anomalous": rng.random() < 0.5}
    return {"type": "event", "code": ident, "t_ms": t,
            "value": rng.randint(-2**31, 2**31 - 1)}


def _wire(rec):
    rec = dict(rec)
    if rec["type"] == "reading" and rec["dtype"] == "f32":
        rec["values"] = [struct.pack(">f", v).hex() for v in rec["values"]]
    if rec["type"] == "anomaly":
        rec["score"] = struct.pack(">f", rec["score"]).hex()
    return rec


def test_random_batches_bit_exact_with_host(tmp_path):
    """300 random batches (edge values, varint boundaries, float32 specials): the node's
    payload and frame bytes equal the host's, and each side decodes the other's."""
    rng = random.Random(77)
    cases = []
    while len(cases) < 300:
        base = rng.choice([0, rng.getrandbits(31), 0xFFFFFF00])
        recs = [_random_record(rng, base) for _ in range(rng.choice([0, 1, 2, 5, 12]))]
        boot, dropped = rng.getrandbits(32), rng.getrandbits(32)
        try:
            payload = encode_records(recs, boot=boot, dropped_total=dropped)
        except ValueError:
            continue  # over 1024 bytes (limits are tested in tests/host)
        key = rng.randbytes(16)
        device, counter = rng.getrandbits(32), rng.getrandbits(32)
        cases.append({"records": [_wire(r) for r in recs], "boot": boot, "dropped": dropped,
                      "key": key.hex(), "device": device, "counter": counter,
                      "host_payload": payload.hex(),
                      "host_frame": seal(key, device, counter, 1, payload).hex(),
                      "host_records": recs})
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{k: v for k, v in c.items() if k != "host_records"}
                                for c in cases]))
    lines = run_mp("random_batches.py", str(path), heap="8M").splitlines()
    assert len(lines) == len(cases)
    for i, (case, line) in enumerate(zip(cases, lines)):
        res = json.loads(line)
        assert res["payload"] == case["host_payload"], f"case {i}: payload differs"
        assert res["frame"] == case["host_frame"], f"case {i}: frame differs"
        boot, dropped, recs = res["decoded"]
        assert (boot, dropped) == (case["boot"], case["dropped"])
        assert recs == case["records"], f"case {i}: node decode differs"
        assert [_wire(r) for r in decode_batch(bytes.fromhex(res["payload"])).records] == (
            case["records"]), f"case {i}: host decode of the node payload differs"
