"""Host uplink frame/payload codec against the golden vectors and random round trips."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from tinysense.uplink import (
    FrameError, PayloadError, decode_ack, decode_batch, encode_ack, encode_records,
    open_frame, parse_header, seal,
)

VEC = Path(__file__).resolve().parents[1] / "vectors" / "uplink"
FRAMES = json.loads((VEC / "frames.json").read_text())["frames"]
BAD_FRAMES = json.loads((VEC / "bad_frames.json").read_text())["bad_frames"]
BAD_PAYLOADS = json.loads((VEC / "bad_payloads.json").read_text())["bad"]


@pytest.mark.parametrize("vec", FRAMES, ids=[v["name"] for v in FRAMES])
def test_golden_frame(vec):
    key = bytes.fromhex(vec["key"])
    plaintext = bytes.fromhex(vec["plaintext"])
    frame = seal(key, vec["device_id"], vec["counter"], vec["ptype"], plaintext,
                 vec["direction"])
    assert frame.hex() == vec["frame"]
    assert frame[:11].hex() == vec["header"]
    header, opened = open_frame(key, frame)
    assert opened == plaintext
    assert (header.direction, header.device_id, header.counter, header.ptype) == (
        vec["direction"], vec["device_id"], vec["counter"], vec["ptype"])
    assert parse_header(frame) == header
    if "records" in vec:
        batch = decode_batch(plaintext)
        assert batch.records == vec["records"]
        assert batch.boot == vec["batch"]["boot"]
        assert batch.dropped_total == vec["batch"]["dropped_total"]
        assert encode_records(vec["records"], **vec["batch"]) == plaintext
    if "acked" in vec:
        assert decode_ack(plaintext) == vec["acked"]
        assert encode_ack(vec["acked"]) == plaintext


@pytest.mark.parametrize("vec", BAD_FRAMES, ids=[v["name"] for v in BAD_FRAMES])
def test_bad_frame_rejected_with_reason(vec):
    with pytest.raises(FrameError) as info:
        open_frame(bytes.fromhex(vec["key"]), bytes.fromhex(vec["frame"]))
    assert info.value.reason == vec["reason"]


@pytest.mark.parametrize("vec", BAD_PAYLOADS, ids=[v["why"] for v in BAD_PAYLOADS])
def test_bad_payload_rejected(vec):
    decode = decode_batch if vec["kind"] == "records" else decode_ack
    with pytest.raises(PayloadError):
        decode(bytes.fromhex(vec["plaintext"]))


def test_random_seal_open_matches_aesccm():
    rng = random.Random(1)
    for _ in range(300):
        key = rng.randbytes(16)
        dev, ctr, d = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(1)
        pt = rng.randbytes(rng.randrange(0, 1025))
        frame = seal(key, dev, ctr, 1, pt, d)
        nonce = bytes([d]) + dev.to_bytes(4, "big") + ctr.to_bytes(4, "big") + b"TSv1"
        assert AESCCM(key, 8).decrypt(nonce, frame[11:], frame[:11]) == pt
        assert open_frame(key, frame)[1] == pt
        i = rng.randrange(len(frame))
        bad = bytearray(frame)
        bad[i] ^= 1 << rng.randrange(8)
        with pytest.raises(FrameError):
            open_frame(key, bytes(bad))


def test_encoder_limits():
    with pytest.raises(ValueError):
        encode_records([{"type": "event", "code": 1, "t_ms": 0, "value": 0}] * 256)
    with pytest.raises(ValueError):  # 255 f32 values twice do not fit 1024 bytes
        encode_records([{"type": "reading", "sensor": 1, "t_ms": 0, "dtype": "f32",
                         "values": [0.0] * 255}] * 2)
    with pytest.raises(ValueError):
        encode_records([{"type": "reading", "sensor": 256, "t_ms": 0, "values": [1]}])
    for bad in ({"type": "event", "code": 1, "t_ms": 0, "value": 2**31},
                {"type": "reading", "sensor": 1, "t_ms": 0, "dtype": "i16", "values": [40000]},
                {"type": "anomaly", "model": 1, "t_ms": 0, "score": "x", "anomalous": True},
                {"type": "nope", "t_ms": 0}):
        with pytest.raises(ValueError):
            encode_records([bad])
    with pytest.raises(ValueError):
        encode_ack(list(range(256)))
    with pytest.raises(ValueError):
        seal(os.urandom(16), 1, 1, 1, bytes(1025))
    auto = decode_batch(encode_records([
        {"type": "reading", "sensor": 1, "t_ms": 5, "values": [1, 2]},
        {"type": "reading", "sensor": 1, "t_ms": 5, "values": [1, 40000]},
        {"type": "reading", "sensor": 1, "t_ms": 5, "values": [0.5]}])).records
    assert [r["dtype"] for r in auto] == ["i16", "f32", "f32"]
