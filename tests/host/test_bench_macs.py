"""One MAC count: convert's report and bench/validate's reference count agree on every model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinysense.convert import convert_model
from tinysense.convert.report import MAC_OPS
from tinysense.reference import count_macs, read_graph

MODELS = sorted((Path(__file__).resolve().parents[2] / "tests" / "conformance").glob("*.tflite"))


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_convert_and_reference_count_the_same_macs(model):
    rep = convert_model(model).report
    assert rep.macs == count_macs(read_graph(model)) > 0
    assert all(op["macs"] == 0 for op in rep.ops if op["name"] not in MAC_OPS)
    assert rep.macs == sum(op["macs"] for op in rep.ops)


def test_kws_counts_2656768_macs_without_its_average_pool():
    kws = next(m for m in MODELS if m.stem == "mlperf_kws_ref_model")
    rep = convert_model(kws).report
    assert rep.macs == 2_656_768          # was 2,664,780 with the pool's 8,012 window adds
    assert any(op["name"] == "AVERAGE_POOL_2D" for op in rep.ops)
    assert f"{rep.macs:,} MACs" in rep.text()
