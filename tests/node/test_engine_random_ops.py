"""Randomized single-op models (built without TensorFlow, see tflite_build.py) with
adversarial quantization: multipliers from 1e-4 to above one (positive shifts), extreme zero
points, odd shapes, every padding/stride/dilation/activation. The engine on the unix port
must equal tflite-micro on every output byte: on the 32-bit x86 build (the 32-bit multiply path
an ESP32 takes) and on the 64-bit PyPI build (odd seeds force the 32-bit path there, even seeds
take the 64-bit product)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from conftest import KERNELS, UNIX_KINDS
from engine_helpers import compare_model
from tflite_build import T, build

pytestmark = pytest.mark.node


def _out_size(n, k, s, d, same):
    eff = (k - 1) * d + 1
    return (n + s - 1) // s if same else (n - eff + s) // s


def _conv_like(rng, depthwise: bool):
    while True:
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        same = bool(rng.integers(0, 2))
        oh, ow = _out_size(h, kh, sh, dh, same), _out_size(w, kw, sw, dw, same)
        if oh > 0 and ow > 0:
            break
    cin = int(rng.integers(1, 10))
    mult = int(rng.integers(1, 4)) if depthwise else 1
    cout = cin * mult if depthwise else int(rng.integers(1, 10))
    s_in = float(10 ** rng.uniform(-3, 0))
    per_channel = bool(rng.integers(0, 2))
    s_w = 10 ** rng.uniform(-3, -1, cout if per_channel else 1)
    target = 10 ** rng.uniform(-4, 0.6)            # effective multiplier, up to ~4
    s_out = float(s_in * s_w.max() / target)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    wshape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    wq = rng.integers(-127, 128, wshape).astype(np.int8)
    bias = rng.integers(-(1 << 16), 1 << 16, cout).astype(np.int32)
    qdim = 3 if depthwise else 0
    tensors = [T((1, h, w, cin), scale=s_in, zero_point=zp_in),
               T(wshape, scale=list(s_w), zero_point=[0] * len(s_w), qdim=qdim, data=wq),
               T((cout,), "int32", scale=list(s_in * s_w), zero_point=[0] * len(s_w),
                 data=bias),
               T((1, oh, ow, cout), scale=s_out, zero_point=zp_out)]
    fields = {"Padding": 0 if same else 1, "StrideW": sw, "StrideH": sh,
              "DilationWFactor": dw, "DilationHFactor": dh,
              "FusedActivationFunction": int(rng.choice([0, 1, 2, 3]))}
    if depthwise:
        fields["DepthMultiplier"] = mult
        return build("DEPTHWISE_CONV_2D", tensors, [0, 1, 2], [3],
                     ("DepthwiseConv2DOptions", fields))
    return build("CONV_2D", tensors, [0, 1, 2], [3], ("Conv2DOptions", fields))


def _fc(rng):
    rows, k, units = int(rng.integers(1, 4)), int(rng.integers(1, 41)), int(rng.integers(1, 21))
    s_in = float(10 ** rng.uniform(-3, 0))
    per_channel = bool(rng.integers(0, 2))
    s_w = 10 ** rng.uniform(-3, -1, units if per_channel else 1)
    s_out = float(s_in * s_w.max() / 10 ** rng.uniform(-4, 0.6))
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    tensors = [T((rows, k), scale=s_in, zero_point=zp_in),
               T((units, k), scale=list(s_w), zero_point=[0] * len(s_w),
                 data=rng.integers(-127, 128, (units, k)).astype(np.int8)),
               T((units,), "int32", scale=list(s_in * s_w), zero_point=[0] * len(s_w),
                 data=rng.integers(-(1 << 16), 1 << 16, units).astype(np.int32)),
               T((rows, units), scale=s_out, zero_point=zp_out)]
    return build("FULLY_CONNECTED", tensors, [0, 1, 2], [3], (
        "FullyConnectedOptions", {"FusedActivationFunction": int(rng.choice([0, 1, 2, 3]))}))


def _binary(rng, op):
    shape = [1] + [int(v) for v in rng.integers(1, 6, 3)]
    other = [d if rng.integers(0, 3) else 1 for d in shape]
    if rng.integers(0, 2):
        shape, other = other, shape
    out = [max(a, b) for a, b in zip(shape, other)]
    sa, sb = (float(10 ** rng.uniform(-3, 0)) for _ in range(2))
    if op in ("ADD", "SUB"):
        so = float(max(sa, sb) * 10 ** rng.uniform(-0.5, 1))
    else:
        so = float(sa * sb / 10 ** rng.uniform(-4, 0.6))
    za, zb, zo = (int(v) for v in rng.integers(-128, 128, 3))
    tensors = [T(tuple(shape), scale=sa, zero_point=za), T(tuple(other), scale=sb, zero_point=zb),
               T(tuple(out), scale=so, zero_point=zo)]
    if op in ("MAXIMUM", "MINIMUM"):
        return build(op, tensors, [0, 1], [2])
    kind = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
    return build(op, tensors, [0, 1], [2], (
        kind, {"FusedActivationFunction": int(rng.choice([0, 1, 2, 3]))}))


def _pool(rng, op):
    while True:
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        same = bool(rng.integers(0, 2))
        oh, ow = _out_size(h, kh, sh, 1, same), _out_size(w, kw, sw, 1, same)
        if oh > 0 and ow > 0:
            break
    c = int(rng.integers(1, 8))
    s, z = float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128))
    tensors = [T((1, h, w, c), scale=s, zero_point=z), T((1, oh, ow, c), scale=s, zero_point=z)]
    return build(op, tensors, [0], [1], ("Pool2DOptions", {
        "Padding": 0 if same else 1, "StrideW": sw, "StrideH": sh, "FilterWidth": kw,
        "FilterHeight": kh, "FusedActivationFunction": int(rng.choice([0, 1, 3]))}))


def _softmax(rng):
    rows, depth = int(rng.integers(1, 4)), int(rng.integers(1, 40))
    s = float(10 ** rng.uniform(-2.5, 0.5))
    tensors = [T((rows, depth), scale=s, zero_point=int(rng.integers(-128, 128))),
               T((rows, depth), scale=1 / 256, zero_point=-128)]
    return build("SOFTMAX", tensors, [0], [1], (
        "SoftmaxOptions", {"Beta": float(rng.choice([1.0, 0.5, 2.0]))}))


def _unary(rng, op):
    n = int(rng.integers(1, 50))
    s = float(10 ** rng.uniform(-3, 0))
    out = (1 / 256, -128) if op == "LOGISTIC" else (1 / 128, 0)
    tensors = [T((1, n), scale=s, zero_point=int(rng.integers(-128, 128))),
               T((1, n), scale=out[0], zero_point=out[1])]
    return build(op, tensors, [0], [1])


def _leaky_relu(rng):
    """LEAKY_RELU: alpha below, at and above one, negative; rescaling or not."""
    n = int(rng.integers(1, 300))
    s_in = float(10 ** rng.uniform(-3, 0))
    s_out = float(s_in * 10 ** rng.uniform(-1, 1)) if rng.integers(0, 3) else s_in
    alpha = float(rng.choice([0.01, 0.2, 0.5, 1.0, 1.7, -0.3, float(rng.uniform(-2, 2))]))
    tensors = [T((1, n), scale=s_in, zero_point=int(rng.integers(-128, 128))),
               T((1, n), scale=s_out, zero_point=int(rng.integers(-128, 128)))]
    return build("LEAKY_RELU", tensors, [0], [1], ("LeakyReluOptions", {"Alpha": alpha}))


def _hard_swish(rng):
    """HARD_SWISH: output scales from well below to above the input's (the multiplier
    exponent ranges over negative and positive for the `reluish` part)."""
    n = int(rng.integers(1, 300))
    s_in = float(10 ** rng.uniform(-3, 0.5))
    s_out = float(s_in * 10 ** rng.uniform(-0.3, 1.5))
    tensors = [T((1, n), scale=s_in, zero_point=int(rng.integers(-128, 128))),
               T((1, n), scale=s_out, zero_point=int(rng.integers(-128, 128)))]
    return build("HARD_SWISH", tensors, [0], [1])


def _prelu(rng):
    """PRELU: alpha per channel, per element or one value, constant or an input."""
    shape = tuple([1] + [int(v) for v in rng.integers(1, 6, 3)])
    ashape = [shape[1:], (shape[3],), (1, 1, shape[3]), (1,)][int(rng.integers(0, 4))]
    s_in = float(10 ** rng.uniform(-3, 0))
    s_al = float(10 ** rng.uniform(-3, -0.5))
    s_out = float(s_in * 10 ** rng.uniform(-1, 1))
    const = bool(rng.integers(0, 3))
    alpha = T(tuple(ashape), scale=s_al, zero_point=int(rng.integers(-128, 128)),
              data=rng.integers(-128, 128, ashape).astype(np.int8) if const else None)
    tensors = [T(shape, scale=s_in, zero_point=int(rng.integers(-128, 128))), alpha,
               T(shape, scale=s_out, zero_point=int(rng.integers(-128, 128)))]
    return build("PRELU", tensors, [0, 1], [2])


def _i32(*shape_and_values):
    v = np.asarray(shape_and_values, np.int32)
    return T((len(v),), "int32", data=v)


def _quant(rng):
    return dict(scale=float(10 ** rng.uniform(-3, 0)), zero_point=int(rng.integers(-128, 128)))


def _transpose(rng):
    nd = int(rng.integers(1, 5))
    shape = tuple(int(v) for v in rng.integers(1, 6, nd))
    perm = [int(v) for v in rng.permutation(nd)]
    q = _quant(rng)
    tensors = [T(shape, **q), _i32(*perm), T(tuple(shape[p] for p in perm), **q)]
    return build("TRANSPOSE", tensors, [0, 1], [2])


def _strided_slice(rng):
    """Random begin/end/strides (negative too), begin/end/shrink masks; the expected shape
    from numpy's slicing, which follows the same rules."""
    while True:
        nd = int(rng.integers(1, 5))
        shape = tuple(int(v) for v in rng.integers(1, 8, nd))
        begin = [int(rng.integers(-d - 2, d + 2)) for d in shape]
        end = [int(rng.integers(-d - 2, d + 2)) for d in shape]
        strides = [int(rng.choice([1, 1, 2, 3, -1, -2])) for _ in shape]
        bm, em = (int(rng.integers(0, 1 << nd)) for _ in range(2))
        sm = int(rng.integers(0, 1 << nd)) if rng.integers(0, 3) == 0 else 0
        index = []
        for a, d in enumerate(shape):
            if sm >> a & 1:
                begin[a] = int(rng.integers(-d, d))
                strides[a] = 1
                index.append(begin[a])
            else:
                index.append(slice(None if bm >> a & 1 else begin[a],
                                   None if em >> a & 1 else end[a], strides[a]))
        out = np.zeros(shape)[tuple(index)].shape
        if int(np.prod(out)) > 0 and len(out) > 0:
            break
    q = _quant(rng)
    tensors = [T(shape, **q), _i32(*begin), _i32(*end), _i32(*strides), T(out, **q)]
    return build("STRIDED_SLICE", tensors, [0, 1, 2, 3], [4], (
        "StridedSliceOptions", {"BeginMask": bm, "EndMask": em, "ShrinkAxisMask": sm}))


def _resize_nearest(rng):
    n, h, w, c = 1, *(int(v) for v in rng.integers(1, 7, 3))
    oh, ow = (int(v) for v in rng.integers(1, 13, 2))
    align, half = (bool(v) for v in rng.integers(0, 2, 2))
    q = _quant(rng)
    tensors = [T((n, h, w, c), **q), _i32(oh, ow), T((n, oh, ow, c), **q)]
    return build("RESIZE_NEAREST_NEIGHBOR", tensors, [0, 1], [2], (
        "ResizeNearestNeighborOptions", {"AlignCorners": align, "HalfPixelCenters": half}))


def _slice(rng):
    nd = int(rng.integers(1, 5))
    shape = [int(v) for v in rng.integers(1, 7, nd)]
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [int(rng.integers(1, d - b + 1)) if rng.integers(0, 4) else -1
            for d, b in zip(shape, begin)]
    out = tuple(d - b if s == -1 else s for d, b, s in zip(shape, begin, size))
    q = _quant(rng)
    tensors = [T(tuple(shape), **q), _i32(*begin), _i32(*size), T(out, **q)]
    return build("SLICE", tensors, [0, 1, 2], [3])


def _split(rng):
    """SPLIT into equal parts, or SPLIT_V into given sizes, along any axis (negative too)."""
    nd = int(rng.integers(1, 5))
    shape = [int(v) for v in rng.integers(1, 6, nd)]
    axis = int(rng.integers(0, nd))
    n = int(rng.integers(1, 4))
    q = _quant(rng)
    if rng.integers(0, 2):   # SPLIT
        shape[axis] *= n
        part = list(shape)
        part[axis] //= n
        outs = [T(tuple(part), **q) for _ in range(n)]
        tensors = [_i32(axis - nd if rng.integers(0, 2) else axis), T(tuple(shape), **q)] + outs
        return build("SPLIT", tensors, [0, 1], list(range(2, 2 + n)),
                     ("SplitOptions", {"NumSplits": n}))
    sizes = [int(v) for v in rng.integers(1, 4, n)]
    shape[axis] = sum(sizes)
    outs = [T(tuple(shape[:axis] + [s] + shape[axis + 1:]), **q) for s in sizes]
    tensors = [T(tuple(shape), **q), _i32(*sizes), _i32(axis)] + outs
    return build("SPLIT_V", tensors, [0, 1, 2], list(range(3, 3 + n)),
                 ("SplitVOptions", {"NumSplits": n}))


def _gather(rng):
    nd = int(rng.integers(1, 4))
    shape = [int(v) for v in rng.integers(1, 6, nd)]
    axis = int(rng.integers(0, nd))
    k = int(rng.integers(1, 7))
    idx = [int(v) for v in rng.integers(0, shape[axis], k)]
    out = tuple(shape[:axis] + [k] + shape[axis + 1:])
    q = _quant(rng)
    tensors = [T(tuple(shape), **q), _i32(*idx), T(out, **q)]
    return build("GATHER", tensors, [0, 1], [2], (
        "GatherOptions", {"Axis": axis - nd if rng.integers(0, 2) else axis}))


def _mean(rng, op="MEAN"):
    shape = [1] + [int(v) for v in rng.integers(1, 6, 3)]
    axes = sorted(set(int(a) for a in rng.integers(1, 4, int(rng.integers(1, 3)))))
    keep = bool(rng.integers(0, 2))
    out = [1 if i in axes else d for i, d in enumerate(shape)]
    if not keep:
        out = [d for i, d in enumerate(shape) if i not in axes]
    s_in = float(10 ** rng.uniform(-3, 0))
    tensors = [T(tuple(shape), scale=s_in, zero_point=int(rng.integers(-128, 128))),
               T((len(axes),), "int32", data=np.array(axes, np.int32)),
               T(tuple(out), scale=float(s_in * 10 ** rng.uniform(-1, 1)),
                 zero_point=int(rng.integers(-128, 128)))]
    if op == "SUM":   # a sum's range grows with the count: output scales up to 30x the input's
        tensors[2].scale = float(s_in * 10 ** rng.uniform(-0.5, 1.5))
    if op == "REDUCE_MAX":   # tflite-micro requires the input's quantization
        tensors[2].scale, tensors[2].zero_point = tensors[0].scale, tensors[0].zero_point
    return build(op, tensors, [0, 1], [2], ("ReducerOptions", {"KeepDims": keep}))


def _requant(rng, op):
    """QUANTIZE int8->int8 and RELU rescale; RELU6 keeps the scale (tflite-micro clamps)."""
    n = int(rng.integers(1, 50))
    s_in = float(10 ** rng.uniform(-3, 0))
    s_out = s_in if op == "RELU6" else float(s_in * 10 ** rng.uniform(-1.5, 1.5))
    z_out = int(rng.integers(-128, 128))
    tensors = [T((1, n), scale=s_in, zero_point=int(rng.integers(-128, 128))),
               T((1, n), scale=s_out, zero_point=z_out)]
    return build(op, tensors, [0], [1])


_INT_RANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (-1000, 1000)}


def _quantize16(rng):
    """QUANTIZE with an int16 end (int8/int16 -> int8/int16/int32, REQUANT records): scale
    ratios from 1e-3 to 1e3 (positive shifts), any zero point of each dtype."""
    pairs = [("int16", "int8"), ("int8", "int16"), ("int16", "int16"), ("int16", "int32"),
             ("int8", "int32")]
    dt_in, dt_out = pairs[int(rng.integers(len(pairs)))]
    n = int(rng.integers(1, 50))
    s_in = float(10 ** rng.uniform(-4, 0))
    s_out = float(s_in * 10 ** rng.uniform(-3, 3))
    zp = [int(rng.integers(lo, hi + 1)) if rng.random() < 0.7 else 0
          for lo, hi in (_INT_RANGE[dt_in], _INT_RANGE[dt_out])]
    tensors = [T((1, n), dt_in, scale=s_in, zero_point=zp[0]),
               T((1, n), dt_out, scale=s_out, zero_point=zp[1])]
    return build("QUANTIZE", tensors, [0], [1])


def _softmax_out16(rng):
    """SOFTMAX int8 -> int16 (scale 1/65536, zero point -32768: SOFTMAX_OUT16 records)."""
    rows, depth = int(rng.integers(1, 4)), int(rng.integers(1, 40))
    s = float(10 ** rng.uniform(-2.5, 0.5))
    tensors = [T((rows, depth), scale=s, zero_point=int(rng.integers(-128, 128))),
               T((rows, depth), "int16", scale=1 / 65536, zero_point=-32768)]
    return build("SOFTMAX", tensors, [0], [1], (
        "SoftmaxOptions", {"Beta": float(rng.choice([1.0, 0.5, 2.0]))}))


def _softmax_int16(rng):
    """SOFTMAX int16 -> int16 (scale 1/32768, zero point 0: SOFTMAX_LUT16 records); input
    scales from far below to above the LUT's 10/65535 per code (shifts both ways)."""
    rows, depth = int(rng.integers(1, 4)), int(rng.integers(1, 40))
    s = float(10 ** rng.uniform(-5.5, -2.5))
    tensors = [T((rows, depth), "int16", scale=s, zero_point=0),
               T((rows, depth), "int16", scale=1 / 32768, zero_point=0)]
    return build("SOFTMAX", tensors, [0], [1], (
        "SoftmaxOptions", {"Beta": float(rng.choice([1.0, 0.5, 2.0]))}))


def _pad(rng, v2=False):
    shape = [1] + [int(v) for v in rng.integers(1, 5, 3)]
    pads = np.array([[0, 0]] + [list(rng.integers(0, 3, 2)) for _ in range(3)], np.int32)
    out = [d + int(a) + int(b) for d, (a, b) in zip(shape, pads)]
    s, z = float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128))
    tensors = [T(tuple(shape), scale=s, zero_point=z), T((4, 2), "int32", data=pads),
               T(tuple(out), scale=s, zero_point=z)]
    if v2:   # PADV2: an explicit constant value
        tensors.insert(2, T((1,), scale=s, zero_point=z,
                            data=rng.integers(-128, 128, 1).astype(np.int8)))
        return build("PADV2", tensors, [0, 1, 2], [3])
    return build("PAD", tensors, [0, 1], [2])


def _concat(rng):
    axis = int(rng.integers(1, 4))
    base = [1] + [int(v) for v in rng.integers(1, 5, 3)]
    n = int(rng.integers(2, 4))
    shapes = []
    for _ in range(n):
        sh = list(base)
        sh[axis] = int(rng.integers(1, 5))
        shapes.append(tuple(sh))
    out = list(base)
    out[axis] = sum(sh[axis] for sh in shapes)
    s, z = float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128))
    tensors = [T(sh, scale=s, zero_point=z) for sh in shapes] + [T(tuple(out), scale=s,
                                                                   zero_point=z)]
    return build("CONCATENATION", tensors, list(range(n)), [n], (
        "ConcatenationOptions", {"Axis": axis}))


def svdf_model(rng, bias=True, s16=None):
    """SVDF: int16 or int8 state and weights_time, rank 1-3, batch 1-2, memory 1-9; scales
    from the expected magnitudes so states and outputs spread over their ranges; one seed in
    four saturates the int16 state with full-range time weights, so the int32 time sums wrap
    (as tflite-micro's int32 arithmetic does). bias=False: no bias tensor (input -1),
    "zero": a bias of zeros (the same draws otherwise);
    s16: an int16 (True) or int8 (False) state, drawn when None."""
    draw = bool(rng.integers(0, 3))
    s16 = draw if s16 is None else s16
    wild = s16 and rng.integers(0, 4) == 0
    batch, n_in = int(rng.integers(1, 3)), int(rng.integers(1, 41))
    units, rank, mem = int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 10))
    nf = units * rank
    s_in, s_wf = float(10 ** rng.uniform(-3, 0)), float(10 ** rng.uniform(-3, -1))
    srange = 32767 if s16 else 127
    e1 = 10 ** rng.uniform(-1, 0.5) * srange / 4 / (5400 * np.sqrt(n_in))
    if wild:
        e1 *= 50
    s_st = float(s_in * s_wf / e1)
    wt_max = 32767 if wild else int(2 ** rng.uniform(7, 15)) if s16 else 127
    wt = rng.integers(-wt_max, wt_max + 1, (nf, mem)).astype(np.int16 if s16 else np.int8)
    s_wt = float(10 ** rng.uniform(-4, -1))
    acc = wt_max / 1.7 * srange / 4 * np.sqrt(rank * mem)
    s_out = float(s_st * s_wt / (10 ** rng.uniform(-1, 0.5) * 40 / acc))
    zp_st = int(rng.integers(-128, 128)) if not s16 else int(rng.integers(-50, 50)) \
        if rng.integers(0, 4) == 0 else 0
    dt = "int16" if s16 else "int8"
    f = np.float32
    tensors = [T((batch, n_in), scale=s_in, zero_point=int(rng.integers(-128, 128))),
               T((nf, n_in), scale=s_wf,
                 data=rng.integers(-127, 128, (nf, n_in)).astype(np.int8)),
               T((nf, mem), dt, scale=s_wt, data=wt),
               T((units,), "int32", scale=float(f(f(s_st) * f(s_wt))),
                 data=rng.integers(-int(acc), int(acc) + 1, units).astype(np.int32)
                 * (bias != "zero")),
               T((batch, nf * mem), dt, scale=s_st, zero_point=zp_st, variable=True),
               T((batch, units), scale=s_out, zero_point=int(rng.integers(-128, 128)))]
    return build("SVDF", tensors, [0, 1, 2, 3 if bias else -1, 4], [5], (
        "SVDFOptions", {"Rank": rank, "FusedActivationFunction": int(rng.choice([0, 1]))}))


MAKERS = {
    "quantize": lambda r: _requant(r, "QUANTIZE"), "relu": lambda r: _requant(r, "RELU"),
    "relu6": lambda r: _requant(r, "RELU6"), "pad": _pad, "padv2": lambda r: _pad(r, True),
    "concat": _concat,
    "conv": lambda r: _conv_like(r, False), "depthwise": lambda r: _conv_like(r, True),
    "fc": _fc, "add": lambda r: _binary(r, "ADD"), "sub": lambda r: _binary(r, "SUB"),
    "maximum": lambda r: _binary(r, "MAXIMUM"), "minimum": lambda r: _binary(r, "MINIMUM"),
    "mul": lambda r: _binary(r, "MUL"),
    "avgpool": lambda r: _pool(r, "AVERAGE_POOL_2D"), "maxpool": lambda r: _pool(r, "MAX_POOL_2D"),
    "softmax": _softmax, "logistic": lambda r: _unary(r, "LOGISTIC"),
    "tanh": lambda r: _unary(r, "TANH"), "mean": _mean,
    "sum": lambda r: _mean(r, "SUM"), "reduce_max": lambda r: _mean(r, "REDUCE_MAX"),
    "leaky_relu": _leaky_relu,
    "hard_swish": _hard_swish, "prelu": _prelu,
    "transpose": _transpose, "strided_slice": _strided_slice, "resize_nearest": _resize_nearest,
    "slice": _slice, "split": _split, "gather": _gather, "svdf": svdf_model,
    "quantize16": _quantize16, "softmax_out16": _softmax_out16,
    "softmax_int16": _softmax_int16,
}


# TINYSENSE_RANDOM_OPS=N runs N seeds per op (a longer hunt than the default 8)
SEEDS = range(int(os.environ.get("TINYSENSE_RANDOM_OPS", "8")))


# kinds added with issue 13 whose records have no native kernel (ops.NATIVE): under
# kernels="native" they would run the same viper code again, so they run viper only
VIPER_ONLY = {"leaky_relu", "hard_swish", "transpose", "strided_slice", "resize_nearest",
              "slice", "split", "gather", "maximum", "minimum", "reduce_max",
              "quantize16", "softmax_out16", "softmax_int16"}
CASES = [pytest.param(kind, seed, unix, kernels, id=f"{kind}-{seed}-{unix}-{kernels}")
         for kind in sorted(MAKERS) for seed in SEEDS for unix in UNIX_KINDS
         for kernels in KERNELS
         if kernels == "viper" or kind not in VIPER_ONLY]


@pytest.mark.parametrize(("kind", "seed", "unix", "kernels"), CASES)
def test_random_op_bit_exact(kind, seed, unix, kernels, tmp_path):
    """Each op's random models on both unix ports, with viper and native kernels (native:
    the ops tsnn has a kernel for run native, the others viper); on x64 the odd seeds run
    viper's forced 32-bit multiply path (native kernels always take the exact product)."""
    rng = np.random.default_rng([zlib.crc32(kind.encode()), seed])
    path = tmp_path / f"{kind}_{seed}.tflite"
    path.write_bytes(MAKERS[kind](rng))
    narrow = unix == "x64" and seed % 2 == 1
    mismatches, alloc, n = compare_model(path, n_random=3, narrow=narrow, seed=seed,
                                         kind=unix, kernels=kernels)
    assert not mismatches, f"{len(mismatches)}/{n} vectors differ: {mismatches[0]}"
    assert alloc == 0


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_sub_multipliers_as_tflite_micro_runs_them(unix):
    """SUB's output multiplier in double, as ADD's: sub_common.cc reads as float32 math, but
    with these scales (found by search) a float32 output multiplier gives other bytes than
    the pinned tflite-micro package on 2 of the 65,536 input pairs (and double none), so
    every pair runs here: a (1,256,1) ramp minus a (1,1,256) ramp."""
    from conftest import unix_kind_exe
    from engine_helpers import run_engine_full

    from tinysense.convert import convert_model
    from tinysense.reference import Reference

    tensors = [T((1, 256, 1), scale=0.09181462973356247, zero_point=-97),
               T((1, 1, 256), scale=0.00608215294778347, zero_point=3),
               T((1, 256, 256), scale=0.08291655778884888, zero_point=-21)]
    buf = build("SUB", tensors, [0, 1], [2], ("SubOptions", {"FusedActivationFunction": 0}))
    ramp = np.arange(-128, 128, dtype=np.int8)
    expected = Reference(buf).run([ramp.reshape(1, 256, 1), ramp.reshape(1, 1, 256)])[0].tobytes()
    run = run_engine_full(convert_model(buf).package, [ramp.tobytes() * 2],
                          exe=unix_kind_exe(unix))
    got = run.outputs[0]
    assert got == expected, f"{sum(a != b for a, b in zip(got, expected))} bytes differ"
