"""The fit report counts what the issue-13 ops need: SUM's int32 accumulators in scratch,
REMAP's offset tables and PRELU's constant alpha and SELECT table in the op constants; none
of them is a multiply-accumulate (report.MAC_OPS), so they add no MACs."""

from __future__ import annotations

from pathlib import Path

from tinysense.convert import convert_model

OPS_DIR = Path(__file__).resolve().parents[1] / "ops"


def _report(name):
    return convert_model(OPS_DIR / f"{name}.tflite", board="ESP32_GENERIC").report


def test_sum_scratch_is_one_int32_per_output():
    r = _report("sum_hw_keepdims")          # (1, 4, 5, 6) over axes 1, 2: 6 outputs
    assert r.scratch_bytes == 4 * 6
    assert r.heap_needed >= r.arena_bytes + r.scratch_bytes


def test_remap_tables_are_op_constants():
    r = _report("transpose_nhwc_to_nchw")   # (1, 4, 5, 6) -> (1, 6, 4, 5): 1+6+4+5 words
    assert r.scratch_bytes == 0
    assert r.max_op_const_bytes == r.const_bytes == 4 * (1 + 6 + 4 + 5)


def test_prelu_counts_its_alpha_and_table():
    r = _report("prelu_per_channel")        # (1, 5, 5, 8), alpha (1, 1, 8) constant
    assert r.macs == 0 and r.scratch_bytes == 0
    assert [op["name"] for op in r.ops] == ["PRELU", "PRELU", "PRELU"]   # CONST, MUL, SELECT
    assert r.const_bytes == 8 + 256


def test_svdf_state_is_in_the_arena_alone_and_counted():
    """svdf_rank1: input (1, 24), 8 filters x memory 10, int16 state: 160 state bytes in the
    arena beside input and output, overlapping neither, and in the fit verdict's arena."""
    from tinysense.convert.planner import Buffer, check

    r = _report("svdf_rank1")
    st = [t for t in r.tensors if t["state"]]
    assert len(st) == 1 and st[0]["dtype"] == "int16" and st[0]["nbytes"] == 2 * 8 * 10
    assert r.state_bytes == 160 and r.scratch_bytes == 0
    assert r.arena_bytes >= 160 + 24 + 8
    live = [t for t in r.tensors if t["offset"] is not None]
    check([Buffer(t["index"], t["nbytes"], 0, 0, t["offset"]) for t in live])
    assert r.macs == 8 * (24 + 10)
    assert r.const_bytes == 8 * 24 + 2 * 8 * 10 + 4 * 8    # weights_feature, _time, bias
    assert "state 160 B" in r.text()
