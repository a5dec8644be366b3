"""SVDF's Prepare (tflite-micro's PrepareSvdf, svdf_common.cc) for int8 models: an SVDF record
with the int16 or int8 activation state as a state tensor (docs/formats/tsm.md)."""

from __future__ import annotations

import numpy as np

from tinysense.convert import fixedpoint as fp
from tinysense.convert.ops import OPCODES, CRef, Lowered, TRef, fail
from tinysense.convert.reader import Model, Operator
from tinysense.formats import tsm

# tflite's SVDF input slots (kSvdf*Tensor in svdf_common.cc)
INPUT, WEIGHTS_FEATURE, WEIGHTS_TIME, BIAS, STATE = range(5)


def effective_scales(s_in, s_wf, s_state, s_wt, s_out) -> tuple[float, float]:
    """PrepareSvdf's two requantization scales in double from the float32 scales: what the
    pinned tflite-micro package computes (svdf_common.cc at 90b983c2b3 reads as float32
    products and quotients widened afterwards; tests/node/test_engine_svdf.py has scales
    where the two give other bytes, and the package's are the double ones)."""
    f = np.float32
    e1 = float(f(s_in)) * float(f(s_wf)) / float(f(s_state))
    e2 = float(f(s_state)) * float(f(s_wt)) / float(f(s_out))
    return e1, e2


def prepare_svdf(model: Model, op: Operator) -> Lowered:
    """Checks as PrepareSvdf's int8 branch; the fused activation is not applied (the integer
    Eval clamps to int8 only). A missing bias lowers to zeros, what Eval does without one
    (the pinned tflite-micro's Prepare dereferences the absent bias and crashes)."""
    if len(op.inputs) != 5 or len(op.outputs) != 1:
        raise fail(op, f"expected 5 inputs and 1 output, got {len(op.inputs)} and "
                   f"{len(op.outputs)}")
    t = model.tensors
    x, wf, wt, st = (t[op.inputs[k]] for k in (INPUT, WEIGHTS_FEATURE, WEIGHTS_TIME, STATE))
    y = t[op.outputs[0]]
    bias = t[op.inputs[BIAS]] if op.inputs[BIAS] >= 0 else None
    rank = op.options.Rank() if op.options is not None else 0
    if x.dtype != "int8" or y.dtype != "int8":
        raise fail(op, f"input and output must be int8 (got {x.dtype}, {y.dtype})")
    if wf.data is None or wf.dtype != "int8" or len(wf.shape) != 2:
        raise fail(op, "weights_feature must be a constant 2-D int8 tensor")
    if wt.data is None or wt.dtype not in ("int16", "int8") or len(wt.shape) != 2:
        raise fail(op, "weights_time must be a constant 2-D int16 or int8 tensor")
    if not st.variable or st.dtype != wt.dtype:
        raise fail(op, f"the activation state (tensor {st.index}) must be a variable tensor of "
                   f"weights_time's dtype {wt.dtype} (got {st.dtype}"
                   f"{'' if st.variable else ', not variable'})")
    if len(x.shape) != 2 or len(y.shape) != 2 or len(st.shape) != 2:
        raise fail(op, "input, output and state must be 2-D")
    batch, n_in = x.shape
    n_filter, n_memory = wf.shape[0], wt.shape[1]
    if rank < 1 or n_filter % rank:
        raise fail(op, f"rank {rank} does not divide the {n_filter} filters")
    units = n_filter // rank
    if (wf.shape[1] != n_in or wt.shape[0] != n_filter or tuple(y.shape) != (batch, units)
            or tuple(st.shape) != (batch, n_memory * n_filter)):
        raise fail(op, f"shapes do not agree: input {list(x.shape)}, weights_feature "
                   f"{list(wf.shape)}, weights_time {list(wt.shape)}, state {list(st.shape)}, "
                   f"output {list(y.shape)}")
    if bias is not None:
        if bias.data is None or bias.dtype != "int32" or bias.size != units:
            raise fail(op, f"bias must be a constant int32 tensor of {units} values")
        f = np.float32
        if abs(float(bias.scale) - float(f(f(st.scale) * f(wt.scale)))) >= 1e-5:
            raise fail(op, f"bias scale {bias.scale:g} is not state scale x weights_time "
                       "scale (tflite-micro's Prepare refuses it)")
        b = bias.data.reshape(-1).astype("<i4")
    else:
        b = np.zeros(units, "<i4")
    e1, e2 = effective_scales(x.scale, wf.scale, st.scale, wt.scale, y.scale)
    m1, s1 = fp.quantize_multiplier(e1)
    m2, s2 = fp.quantize_multiplier(e2)
    s16 = int(wt.dtype == "int16")
    params = tsm.params(
        "SVDF", input=TRef(x.index), state=TRef(st.index), output=TRef(y.index), batch=batch,
        n_input=n_in, n_filter=n_filter, n_memory=n_memory, rank=rank, state16=s16,
        wf=CRef(0), wt=CRef(1), bias=CRef(2), zp_in=x.zero_point, zp_state=st.zero_point,
        zp_out=y.zero_point, m1=m1, s1=s1, m2=m2, s2=s2)
    blobs = [wf.data.astype(np.int8).tobytes(),
             wt.data.astype("<i2" if s16 else np.int8).tobytes(), b.tobytes()]
    return Lowered(op, OPCODES["SVDF"], params, [x.index, st.index], [y.index], blobs,
                   batch * n_filter * (n_in + n_memory))
