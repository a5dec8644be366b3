"""The node seal bench runs on the unix port and the seal path stays allocation-light."""

from __future__ import annotations

import json

import pytest

from conftest import run_micropython

pytestmark = pytest.mark.node


def test_bench_seal_numbers_and_allocation():
    out = run_micropython("import json\nfrom tsnode.uplink.bench import bench_seal\n"
                          "print(json.dumps(bench_seal(200)))", heap="112K")
    rows = json.loads(out.strip().splitlines()[-1])
    assert [r["payload_bytes"] for r in rows if r["what"] == "seal"] == [16, 64, 256, 1024]
    for r in rows:
        assert r["us_per_frame"] > 0 and r["frames_per_s"] > 0
        # one small memoryview per sealed frame (the returned frame), nothing per block
        assert r["alloc_bytes_per_frame"] <= 48, r
