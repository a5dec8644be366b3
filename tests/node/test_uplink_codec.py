"""Node frame codec and payloads (tsnode.uplink.frame/records) vs tests/vectors/uplink/."""

from __future__ import annotations

import json

import pytest
from uplink_helpers import VECTORS, run_mp

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
