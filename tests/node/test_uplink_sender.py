"""Uplink set-up from /uplink.json + /uplink_key.bin and its one-line refusals; a refused
batch consumes no counter; the allocation-light batch path."""

from __future__ import annotations

import base64

import pytest
from uplink_helpers import run_mp

from tinysense.uplink import decode_batch, open_frame

pytestmark = pytest.mark.node


def test_uplink_from_files_and_refusals(tmp_path):
    out = run_mp("sender_check.py", str(tmp_path)).splitlines()
    assert out[0] == "short_key refused: uplink_key.bin must hold 16 bytes; re-provision " \
                     "the device"
    assert out[1].startswith("no_counter refused: uplink counter state missing or corrupt")
    assert "Re-provision the device with a new key." in out[1]
    assert out[2] == "oversize refused: batch full"
    assert out[3] == "first counter 0 queued 1"
    frame = base64.b64decode(out[4].split()[1])
    assert out[5] == "flush left 0"
    header, plaintext = open_frame(bytes(range(16)), frame)
    assert (header.device_id, header.counter) == (7, 0)
    batch = decode_batch(plaintext)
    assert batch.boot == 1 and batch.dropped_total == 0
    assert batch.records == [
        {"type": "reading", "sensor": 3, "t_ms": 1000, "dtype": "i16", "values": [1, 2, 3]},
        {"type": "inference", "model": 1, "t_ms": 1005, "class": 2, "confidence": 230}]
