"""The host's OTA codec (tinysense.formats.ota) against the golden vectors and the spec."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tinysense.formats import ota

REPO = Path(__file__).resolve().parents[2]
VEC = REPO / "tests" / "vectors" / "ota"
TSM = REPO / "tests" / "vectors" / "tsm"


@pytest.fixture(scope="module")
def golden():
    doc = json.loads((VEC / "vectors.json").read_text())
    return doc, (VEC / doc["bundle"]).read_bytes()


def test_encoders_write_the_golden_payloads(golden):
    doc, data = golden
    uid, chunk = doc["update_id"], doc["chunk_size"]
    assert ota.encode_offer(uid, data, chunk).hex() == doc["offer"]
    assert ota.encode_cancel(uid).hex() == doc["cancel"]
    assert [c.hex() for c in ota.chunks(uid, data, chunk)] == doc["chunks"]
    offer = ota.decode_offer(bytes.fromhex(doc["offer"]))
    assert (offer.update_id, offer.length, offer.sha256.hex(), offer.chunk_size) == \
        (uid, doc["bundle_length"], doc["bundle_sha256"], chunk)
    assert ota.decode_offer(bytes.fromhex(doc["cancel"])).action == ota.ACTION_CANCEL
    back = b"".join(ota.decode_chunk(bytes.fromhex(c))[2] for c in doc["chunks"])
    assert back == data


def test_bundle_parts_round_trip(golden):
    _, data = golden
    parts = ota.parse_bundle(data)
    assert parts.package == (TSM / "hello_world.tsm").read_bytes()
    vecs = json.loads((TSM / "hello_world.json").read_text())["vectors"][:4]
    assert [(a.hex(), b.hex()) for a, b in parts.vectors] == \
        [(v["input"], v["output"]) for v in vecs]
    assert ota.build_bundle(parts.package, parts.vectors, parts.meta, parts.config) == data


@pytest.mark.parametrize("damage", ["magic", "total", "reserved", "vectors", "short", "tail"])
def test_malformed_bundles_are_refused(golden, damage):
    _, data = golden
    b = bytearray(data)
    if damage == "magic":
        b[0:4] = b"TSU2"
    elif damage == "total":
        struct.pack_into("<I", b, 4, len(b) + 4)
    elif damage == "reserved":
        b[22] = 1
    elif damage == "vectors":
        struct.pack_into("<H", b, 20, 0)
    elif damage == "short":
        b = b[:31]
    else:
        b += b"\0"
    with pytest.raises(ota.OtaFormatError):
        ota.parse_bundle(bytes(b))


def test_encoders_refuse_out_of_range_values():
    for call in (lambda: ota.encode_offer(0, bytes(64)),
                 lambda: ota.encode_offer(1, bytes(64), chunk_size=ota.MAX_CHUNK + 1),
                 lambda: ota.encode_offer(1, bytes(8)),
                 lambda: ota.encode_chunk(1, 0, b""),
                 lambda: ota.build_bundle(b"x" * 64, []),
                 lambda: ota.build_bundle(b"x" * 64, [(b"a", b"b"), (b"a", b"bc")])):
        with pytest.raises(ValueError):
            call()


def test_steps_and_events_come_from_the_node_and_match_the_spec():
    spec = (REPO / "docs" / "formats" / "ota.md").read_text()
    for code, name in ota.STEPS.items():
        assert f"| `{name}` | {code} |" in spec, name
    for name, code in (("OTA_ID", ota.EV_OTA_ID), ("OTA_AT", ota.EV_OTA_AT),
                       ("OTA_STEP", ota.EV_OTA_STEP)):
        assert f"| `{name}` ({code}) |" in spec
    assert (ota.PTYPE_OFFER, ota.PTYPE_CHUNK) == (3, 4)


def test_make_bundle_vectors_are_the_reference_outputs():
    from tinysense.ota import make_bundle
    from tinysense.reference.runner import Reference

    from tinysense.paths import CONFORMANCE_DIR

    model = CONFORMANCE_DIR / "tflm_hello_world_int8.tflite"
    parts = ota.parse_bundle(make_bundle(model, "ESP32_GENERIC", vectors=5, seed=3))
    assert len(parts.vectors) == 5 and parts.vectors[0][0] == b"\x80" and \
        parts.vectors[1][0] == b"\x7f"   # all-minimum and all-maximum come first
    ref = Reference(model)
    import numpy as np

    for inp, out in parts.vectors:
        got = ref.run([np.frombuffer(inp, np.int8).reshape(1, 1)])
        assert got[0].tobytes() == out
