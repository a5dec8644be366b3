"""Constant folding at convert time: the shape arithmetic exporters leave in a graph (SHAPE,
then STRIDED_SLICE / PACK / CAST / CONCATENATION / GATHER ... of int32 values, feeding a
RESHAPE) has no activation input once SHAPE is known, so it is computed here and never
reaches the node."""

from __future__ import annotations

import numpy as np

from tinysense.convert import ops_shape
from tinysense.convert.reader import Model, Operator

# ops folded when every input is constant (SHAPE: always, it reads only a static shape)
FOLDABLE = ("SHAPE", "PACK", "CAST", "STRIDED_SLICE", "CONCATENATION", "GATHER", "RESHAPE",
            "SQUEEZE", "EXPAND_DIMS", "ADD", "SUB", "MUL", "SLICE", "TRANSPOSE")


def _strided_slice(op: Operator, x: np.ndarray, begin, end, strides) -> np.ndarray:
    o = op.options
    bm, em, sm = (o.BeginMask(), o.EndMask(), o.ShrinkAxisMask()) if o else (0, 0, 0)
    idx = []
    for a, size in enumerate(x.shape):
        s = int(strides[a])
        start = ops_shape._ss_start(int(begin[a]), s, size, bool(bm >> a & 1))
        stop = ops_shape._ss_end(int(end[a]), s, size, start, bool(em >> a & 1),
                                 bool(sm >> a & 1))
        idx.append(list(range(start, stop, s)))
    return x[np.ix_(*idx)] if idx else x


def _value(model: Model, op: Operator) -> np.ndarray | None:
    """The op's output as tflite-micro computes it, or None when it cannot be folded."""
    ins = [model.tensors[i] for i in op.inputs if i >= 0]
    if op.name == "SHAPE":
        return np.asarray(ins[0].shape, np.int64)
    if op.name not in FOLDABLE or any(t.data is None for t in ins):
        return None
    v = [np.asarray(t.data) for t in ins]
    o = op.options
    if op.name == "PACK":
        return np.stack(v, axis=o.Axis() if o else 0)
    if op.name == "CAST":
        return v[0]
    if op.name == "STRIDED_SLICE":
        return _strided_slice(op, v[0], v[1].reshape(-1), v[2].reshape(-1), v[3].reshape(-1))
    if op.name == "CONCATENATION":
        return np.concatenate(v, axis=o.Axis() if o else 0)
    if op.name == "GATHER":
        return np.take(v[0], v[1], axis=o.Axis() if o else 0)
    if op.name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        return v[0]
    if op.name == "SLICE":
        b, n = v[1].reshape(-1), v[2].reshape(-1)
        return v[0][tuple(slice(int(s), None if int(k) == -1 else int(s) + int(k))
                          for s, k in zip(b, n))]
    if op.name == "TRANSPOSE":
        return np.transpose(v[0], v[1].reshape(-1))
    if any(t.dtype not in ("int32", "int64") or len(t.scales) and t.scale for t in ins):
        return None   # quantized ADD/SUB/MUL are the engine's, not shape arithmetic
    if o is not None and o.FusedActivationFunction():
        return None
    a, b = (x.astype(np.int64) for x in v[:2])
    return {"ADD": a + b, "SUB": a - b, "MUL": a * b}[op.name]


def fold_constants(model: Model) -> set[int]:
    """Give the outputs of foldable ops their values (as constants of the output's dtype and
    shape) and return those ops' indices, to be skipped. Only ops with int32 / int64 outputs
    fold: an int8 op on constant inputs is the engine's (its arithmetic is quantized)."""
    folded = set()
    for op in model.operators:
        if len(op.outputs) != 1:
            continue
        y = model.tensors[op.outputs[0]]
        if y.dtype not in ("int32", "int64") or y.data is not None:
            continue
        v = _value(model, op)
        if v is None:
            continue
        v = np.asarray(v).astype(np.dtype(y.dtype))
        if v.size != int(np.prod(y.shape, dtype=np.int64)):
            continue   # a dynamic shape, or one this fold does not model: leave it
        y.data = v.reshape(y.shape)
        folded.add(op.index)
    return folded
