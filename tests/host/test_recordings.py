"""Recording files (.tsrc): the host codec against the golden vector and malformed files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tinysense.errors import TinysenseError
from tinysense.formats.recording import (
    Recordings, decode_recordings, encode_recordings, read_recordings, write_recordings)

VEC = Path(__file__).resolve().parents[1] / "vectors" / "recording"


def _golden() -> tuple[bytes, dict]:
    return (VEC / "v1.tsrc").read_bytes(), json.loads((VEC / "v1.json").read_text())


def _from_json(c: dict) -> Recordings:
    n_ch = c["n_channels"]
    return Recordings(rate_hz=c["rate_hz"], labels=c["labels"], items=[
        (r["label"], np.array(r["frames"], np.int16).reshape(-1, n_ch))
        for r in c["recordings"]])


def test_decode_golden():
    data, c = _golden()
    rec = decode_recordings(data)
    assert rec.rate_hz == c["rate_hz"] and rec.labels == c["labels"]
    assert rec.n_channels == c["n_channels"]
    assert [lab for lab, _ in rec.items] == [r["label"] for r in c["recordings"]]
    for (_, frames), r in zip(rec.items, c["recordings"]):
        assert frames.dtype == np.int16
        assert frames.reshape(-1).tolist() == [v for f in r["frames"] for v in f]


def test_encode_golden_byte_exact(tmp_path):
    data, c = _golden()
    assert encode_recordings(_from_json(c)) == data
    path = tmp_path / "x.tsrc"
    assert write_recordings(path, _from_json(c)) == len(data)
    assert path.read_bytes() == data
    assert read_recordings(path).labels == c["labels"]


def test_random_roundtrip():
    rng = np.random.default_rng(1)
    rec = Recordings(rate_hz=2048, labels=["x", "y", "z"], items=[
        (int(rng.integers(0, 3)), rng.integers(-32768, 32768, (int(rng.integers(0, 50)), 6),
                                               dtype=np.int16)) for _ in range(20)])
    back = decode_recordings(encode_recordings(rec))
    assert back.rate_hz == 2048 and back.labels == rec.labels
    for (la, a), (lb, b) in zip(rec.items, back.items):
        assert la == lb and np.array_equal(a, b)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"XSRC" + d[4:], "not a recording file"),
    (lambda d: d[:4] + b"\x02" + d[5:], "version 2 is not supported"),
    (lambda d: d[:-1], "ends inside record 3 samples"),
    (lambda d: d + b"\x00", "trailing"),
    (lambda d: d[:14], "label table"),
    (lambda d: d[:8], "shorter than its 12-byte header"),
])
def test_malformed_files_are_rejected(mutate, message):
    data, _ = _golden()
    with pytest.raises(TinysenseError, match=message):
        decode_recordings(mutate(data))


def test_encoder_rejects_bad_content():
    with pytest.raises(TinysenseError, match="int16"):
        encode_recordings(Recordings(10, ["a"], [(0, np.array([[40000]]))]))
    with pytest.raises(TinysenseError, match="label index 3"):
        encode_recordings(Recordings(10, ["a"], [(3, np.zeros((2, 1), np.int16))]))
    with pytest.raises(TinysenseError, match="shape"):
        encode_recordings(Recordings(10, ["a"], [(0, np.zeros((2, 1), np.int16)),
                                                 (0, np.zeros((2, 2), np.int16))]))


def test_header_layout_matches_spec():
    data, c = _golden()
    magic, ver, n_ch, rate, n_rec, n_lab, res = struct.unpack_from("<4sBBHHBB", data)
    assert (magic, ver, n_ch, rate, n_rec, n_lab, res) == (
        b"TSRC", 1, 3, 50, len(c["recordings"]), 2, 0)
