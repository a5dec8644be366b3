"""The converter's SVDF checks (PrepareSvdf's, int8 models): each model it cannot run as
tflite-micro would is refused with one line naming the op and why; a variable tensor is only
accepted as an SVDF's state."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

from tflite_build import T, build, build_graph  # noqa: E402

from tinysense.convert import UnsupportedModel, convert_model  # noqa: E402

f32 = np.float32


def _tensors(wt_dtype="int16", st_dtype="int16", bias_scale=None, units=3, rank=1):
    nf = units * rank
    s_st, s_wt = 0.004, 0.002
    return [T((1, 5), scale=0.05, zero_point=3),
            T((nf, 5), scale=0.01, data=np.ones((nf, 5), np.int8)),
            T((nf, 4), wt_dtype, scale=s_wt, data=np.ones((nf, 4), wt_dtype)),
            T((units,), "int32", scale=bias_scale or float(f32(f32(s_st) * f32(s_wt))),
              data=np.zeros(units, np.int32)),
            T((1, nf * 4), st_dtype, scale=s_st, variable=True),
            T((1, units), scale=0.02)]


def _svdf(tensors, rank=1):
    return build("SVDF", tensors, [0, 1, 2, 3, 4], [5], ("SVDFOptions", {"Rank": rank}))


def _problems(buf) -> list[str]:
    with pytest.raises(UnsupportedModel) as exc:
        convert_model(buf)
    return [p["why"] for p in exc.value.problems]


def test_state_dtype_must_be_weights_times():
    why = _problems(_svdf(_tensors(wt_dtype="int8", st_dtype="int16")))
    assert len(why) == 1 and "variable tensor of weights_time's dtype int8" in why[0]


def test_bias_scale_must_be_state_times_weights_time():
    why = _problems(_svdf(_tensors(bias_scale=0.5)))
    assert len(why) == 1 and "bias scale" in why[0] and "refuses" in why[0]


def test_rank_must_divide_the_filters():
    t = _tensors(units=3, rank=1)
    t[-1] = T((1, 2), scale=0.02)      # 3 filters, rank 2
    why = _problems(_svdf(t, rank=2))
    assert len(why) == 1 and "rank 2 does not divide the 3 filters" in why[0]


def test_a_variable_tensor_outside_svdf_is_refused():
    t = [T((1, 8), scale=0.05), T((1, 8), scale=0.05, variable=True), T((1, 8), scale=0.05)]
    why = _problems(build_graph(t, [("ADD", [0, 1], [2], None)], [0], [2]))
    assert any("only as SVDF's activation state" in w for w in why)


def test_int16_state_is_planned_and_flagged():
    res = convert_model(_svdf(_tensors()))
    st = [t for t in res.report.tensors if t["state"]]
    assert [t["dtype"] for t in st] == ["int16"] and st[0]["nbytes"] == 2 * 3 * 4
    assert res.report.state_bytes == 24
