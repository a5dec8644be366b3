"""The node accepts only authentic acks meant for it (direction 1, its device id, type 2);
forged, misdirected and replayed acks drop nothing they should not."""

from __future__ import annotations

import json
import os

import pytest
from uplink_helpers import provision_flash, run_mp

from tinysense.uplink import PTYPE_ACK, PTYPE_RECORDS, encode_ack, seal

pytestmark = pytest.mark.node
DEVICE = 0x0BADCAFE


def test_ack_authentication(tmp_path):
    key = os.urandom(16)
    provision_flash(tmp_path, key)
    good = seal(key, DEVICE, 0, PTYPE_ACK, encode_ack([1, 3]), direction=1)
    tampered = bytearray(good)
    tampered[12] ^= 4
    cases = [
        ("uplink_direction", seal(key, DEVICE, 1, PTYPE_ACK, encode_ack([0]), direction=0)),
        ("other_device", seal(key, DEVICE + 1, 2, PTYPE_ACK, encode_ack([0]), direction=1)),
        ("wrong_type", seal(key, DEVICE, 3, PTYPE_RECORDS, encode_ack([0]), direction=1)),
        ("other_key", seal(os.urandom(16), DEVICE, 4, PTYPE_ACK, encode_ack([0]), direction=1)),
        ("tampered", bytes(tampered)),
        ("truncated", good[:15]),
        ("bad_payload", seal(key, DEVICE, 5, PTYPE_ACK, b"\x01\x02\x00", direction=1)),
        ("good", good),
        ("replayed", good),
        ("unknown_counter", seal(key, DEVICE, 6, PTYPE_ACK, encode_ack([77]), direction=1)),
        ("rest", seal(key, DEVICE, 7, PTYPE_ACK, encode_ack([0, 2, 4]), direction=1)),
    ]
    path = tmp_path / "acks.json"
    path.write_text(json.dumps([[n, f.hex()] for n, f in cases]))
    lines = run_mp("ack_check.py", str(tmp_path), str(path)).splitlines()
    assert lines == [
        "uplink_direction 0 0,1,2,3,4", "other_device 0 0,1,2,3,4", "wrong_type 0 0,1,2,3,4",
        "other_key 0 0,1,2,3,4", "tampered 0 0,1,2,3,4", "truncated 0 0,1,2,3,4",
        "bad_payload 0 0,1,2,3,4", "good 2 0,2,4", "replayed 0 0,2,4",
        "unknown_counter 0 0,2,4", "rest 3 ", "bad_acks 7"]
    assert sorted(p.name for p in (tmp_path / "uplink_q").iterdir()) == []


def test_node_open_fuzz_no_crash_no_forgery():
    """20,000 random and mutated frames at the node's Codec.open: only FrameError comes
    out, and no altered frame authenticates."""
    key = os.urandom(16)
    good = seal(key, DEVICE, 9, PTYPE_ACK, encode_ack([1, 2, 3]), direction=1)
    out = run_mp("open_fuzz.py", f"{key.hex()}:{good.hex()}", "20000", "5",
                 timeout=300).splitlines()
    words = out[0].split()
    assert words[:2] == ["accepted", "0"], out
    assert int(words[3]) > 19000  # the rest were identical to the good frame
    assert set(out[1].split()) >= {"truncated", "oversized", "bad_tag", "bad_version"}


def test_update_frames_reach_the_receiver_only_when_authentic(tmp_path):
    """Offers and chunks (docs/formats/ota.md) go to Uplink.on_update only with this key,
    this device id and direction 1; a forged or misdirected one is a bad_ack, unread."""
    from tinysense.formats import ota

    key = os.urandom(16)
    provision_flash(tmp_path, key)
    data = ota.build_bundle(b"\0" * 64, [(b"\1", b"\2")])
    offer = ota.encode_offer(9, data, 64)
    chunk = next(ota.chunks(9, data, 64))
    cases = [
        ("uplink_direction", seal(key, DEVICE, 1, ota.PTYPE_OFFER, offer, direction=0)),
        ("other_device", seal(key, DEVICE + 1, 2, ota.PTYPE_OFFER, offer, direction=1)),
        ("other_key", seal(os.urandom(16), DEVICE, 3, ota.PTYPE_OFFER, offer, direction=1)),
        ("offer", seal(key, DEVICE, 4, ota.PTYPE_OFFER, offer, direction=1)),
        ("chunk", seal(key, DEVICE, 5, ota.PTYPE_CHUNK, chunk, direction=1)),
    ]
    path = tmp_path / "frames.json"
    path.write_text(json.dumps([[n, f.hex()] for n, f in cases]))
    (tmp_path / "otaroot").mkdir()
    lines = run_mp("update_check.py", str(tmp_path), str(path),
                   str(tmp_path / "otaroot")).splitlines()
    assert lines[:-1] == ["uplink_direction 0 1", "other_device 0 2", "other_key 0 3",
                          "offer 1 3", "chunk 2 3"]
    assert lines[-1] == f"events 9:{ota.STEP_CODES['offered']}"
