"""Prepare for the non-convolution ops: elementwise, softmax, tables, mean, concat, pad."""

from __future__ import annotations

import math

import numpy as np

from tinysense.convert import fixedpoint as fp
from tinysense.convert.ops import (
    OPCODES, CRef, Lowered, TRef, _act, _check_int8, _i32, _t, fail)
from tinysense.convert.reader import Model, Operator, Tensor
from tinysense.formats import tsm


def _shape4(shape) -> list[int]:
    s = list(shape)
    if len(s) > 4:
        raise ValueError
    return [1] * (4 - len(s)) + s


def _broadcast(op, a: Tensor, b: Tensor, y: Tensor) -> dict:
    """{bcast, d0..d3, sa0..sa3, sb0..sb3}: output dims and element strides (0 = broadcast)."""
    try:
        sa, sb, sy = _shape4(a.shape), _shape4(b.shape), _shape4(y.shape)
    except ValueError:
        raise fail(op, "tensors with more than 4 dimensions are not supported") from None
    strides = []
    for s in (sa, sb):
        st, acc = [0] * 4, 1
        for d in range(3, -1, -1):
            if s[d] not in (1, sy[d]):
                raise fail(op, f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast "
                           f"to {list(y.shape)}")
            st[d] = acc if s[d] == sy[d] and s[d] != 1 else 0
            acc *= s[d]
        strides.append(st)
    bcast = 0 if sa == sy and sb == sy else 1
    words = {"bcast": bcast}
    for d in range(4):
        words[f"d{d}"], words[f"sa{d}"], words[f"sb{d}"] = sy[d], strides[0][d], strides[1][d]
    return words


def prepare_add(model: Model, op: Operator) -> Lowered:
    """ADD, and SUB on ADD's kernel: SubElementwise is AddElementwise with the second scaled
    input subtracted, so SUB's second table holds the negated values. The multipliers are
    ADD's, in double: sub_common.cc at 90b983c2b reads as float32 arithmetic, but the pinned
    tflite-micro package's bytes match double and not float32 for the output multiplier
    (tests/node/test_engine_random_ops.py::test_sub_multipliers_as_tflite_micro_runs_them)."""
    a, b, y = (_t(model, i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _check_int8(op, a, b, y)
    left = 20
    twice_max = 2 * max(float(a.scale), float(b.scale))
    luts = []
    for t, sign in ((a, 1), (b, -1 if op.name == "SUB" else 1)):
        m, s = fp.quantize_multiplier(float(t.scale) / twice_max)
        v = np.arange(-128, 128)
        luts.append(_i32([sign * fp.rdbpot(fp.srdhm(((int(x) - t.zero_point) << left), m), -s)
                          for x in np.roll(v, -128)]))   # index = byte value (uint8)
    mo, so = fp.quantize_multiplier(twice_max / ((1 << left) * float(y.scale)))
    if so > 0:
        raise fail(op, f"output scale too small for the int8 {op.name} rescaling")
    amin, amax = _act(op, y, op.options.FusedActivationFunction() if op.options else 0)
    params = tsm.params("ADD", a=TRef(a.index), b=TRef(b.index), output=TRef(y.index),
                        t1=CRef(0), t2=CRef(1), mult=mo, rshift=-so, zp_out=y.zero_point,
                        amin=amin, amax=amax, n=y.size, **_broadcast(op, a, b, y))
    return Lowered(op, OPCODES["ADD"], params, [a.index, b.index], [y.index], luts, y.size)


def prepare_mul(model: Model, op: Operator) -> Lowered:
    a, b, y = (_t(model, i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _check_int8(op, a, b, y)
    m, s = fp.quantize_multiplier(float(a.scale) * float(b.scale) / float(y.scale))
    amin, amax = _act(op, y, op.options.FusedActivationFunction() if op.options else 0)
    params = tsm.params("MUL", a=TRef(a.index), b=TRef(b.index), output=TRef(y.index),
                        zp_a=a.zero_point, zp_b=b.zero_point, mult=m, shift=s,
                        zp_out=y.zero_point, amin=amin, amax=amax, n=y.size,
                        **_broadcast(op, a, b, y))
    return Lowered(op, OPCODES["MUL"], params, [a.index, b.index], [y.index], [], y.size)


def prepare_maxmin(model: Model, op: Operator) -> Lowered:
    """MAXIMUM / MINIMUM: maximum_minimum.cc compares the raw int8 values (no rescaling)."""
    a, b, y = (_t(model, i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _check_int8(op, a, b, y)
    params = tsm.params("MAXMIN", a=TRef(a.index), b=TRef(b.index), output=TRef(y.index),
                        is_max=int(op.name == "MAXIMUM"), n=y.size, **_broadcast(op, a, b, y))
    return Lowered(op, OPCODES["MAXMIN"], params, [a.index, b.index], [y.index], [])


def prepare_prelu(model: Model, op: Operator) -> list[Lowered]:
    """PRELU (prelu_common.cc, BroadcastPrelu4DSlow): x - zp_in >= 0 gives
    MBQM(x - zp_in, M1, s1) + zp_out, else MBQM((x - zp_in) * (alpha - zp_a), M2, s2) + zp_out.
    Lowered as a MUL record with M2 (the negative branch, every element, alpha broadcast),
    then a SELECT record writing the positive branch's table where x - zp_in >= 0."""
    x, al, y = (_t(model, i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _check_int8(op, x, al, y)
    if list(x.shape) != list(y.shape):
        raise fail(op, f"input {list(x.shape)} broadcast to the output {list(y.shape)} is "
                   "not supported (only alpha may broadcast)")
    m1, s1 = fp.quantize_multiplier(float(x.scale) / float(y.scale))
    m2, s2 = fp.quantize_multiplier(float(x.scale) * float(al.scale) / float(y.scale))
    zin, zout = x.zero_point, y.zero_point
    mul = tsm.params("MUL", a=TRef(x.index), b=TRef(al.index), output=TRef(y.index),
                     zp_a=zin, zp_b=al.zero_point, mult=m2, shift=s2, zp_out=zout, amin=-128,
                     amax=127, n=y.size, **_broadcast(op, x, al, y))
    table = bytes((_clamp8(fp.mbqm(max(v - zin, 0), m1, s1) + zout) & 0xFF)
                  for v in (b if b < 128 else b - 256 for b in range(256)))
    sel = tsm.params("SELECT", input=TRef(x.index), output=TRef(y.index), n=y.size,
                     zp_in=zin, table=CRef(0))
    return [Lowered(op, OPCODES["MUL"], mul, [x.index, al.index], [y.index], [], y.size),
            Lowered(op, OPCODES["SELECT"], sel, [x.index], [y.index], [table])]


def _lut(op, x: Tensor, y: Tensor, fn) -> Lowered:
    table = bytes((int(fn(v if v < 128 else v - 256)) & 0xFF) for v in range(256))
    params = tsm.params("LUT", input=TRef(x.index), output=TRef(y.index), n=y.size,
                        table=CRef(0))
    return Lowered(op, OPCODES["LUT"], params, [x.index], [y.index], [table], 0)


def _clamp8(v: int) -> int:
    return max(-128, min(127, v))


def _wrap16(v: int) -> int:
    return ((v + (1 << 15)) & 0xFFFF) - (1 << 15)


def _sat16(v: int) -> int:
    return max(-(1 << 15), min((1 << 15) - 1, v))


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul for int16."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    v = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return _wrap16(abs(v) >> 15 if v >= 0 else -(abs(v) >> 15))   # C division truncates


def _sdhm16(a: int, b: int) -> int:
    """hard_swish.h SaturatingDoublingHighMul: no rounding nudge."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    return _wrap16(abs(ab) >> 15 if ab >= 0 else -(abs(ab) >> 15))


def _down16(m: int) -> int:
    """common.h DownScaleInt32ToInt16Multiplier."""
    if m >= fp.INT32_MAX - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


def _hard_swish(op, x: Tensor, y: Tensor):
    """hard_swish_common.cc HardSwishPrepare (float32 scales) and reference_ops::HardSwish:
    returns the function of one input byte."""
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(x.scale)
    m_out, e_out = fp.quantize_multiplier(float(hires / f32(y.scale)))
    if e_out > 0:
        raise fail(op, "HARD_SWISH output scale too small (multiplier exponent above 0)")
    m_rel, e_rel = fp.quantize_multiplier(float(hires / f32(3.0 / 32768.0)))
    m_out, m_rel = _down16(m_out), _down16(m_rel)
    zin, zout = x.zero_point, y.zero_point

    def fn(v):
        hi = _wrap16(_wrap16(v - zin) * (1 << 7))
        pre = _srdhm16(hi, m_out)
        r = hi
        if e_rel > 0:
            r = _sat16(r * (1 << (e_rel - 1)))
        r = _srdhm16(r, m_rel)
        if e_rel > 0:
            r = _sat16(r * 2)
        if e_rel < 0:
            r = fp.rdbpot(r, -e_rel)
        r = _wrap16((r + (1 << 15)) >> 1)
        out = fp.rdbpot(_sdhm16(r, pre), -e_out)
        return _clamp8(_wrap16(out + zout))
    return fn


def prepare_elementwise(model: Model, op: Operator) -> Lowered:
    """LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH, QUANTIZE int8->int8: a 256-entry
    table of the exact math."""
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check_int8(op, x, y)
    zin, zout = x.zero_point, y.zero_point
    if op.name in ("LOGISTIC", "TANH"):
        ib = 4
        q, shift = math.frexp(float(x.scale) * float(1 << (31 - ib)))
        mult = fp.wrap32(fp.tf_round(q * (1 << 31)))
        radius = fp.calculate_input_radius(ib, shift, 31)
        logistic = op.name == "LOGISTIC"
        if logistic and (np.float32(y.scale) != np.float32(1 / 256) or zout != -128):
            raise fail(op, "int8 LOGISTIC needs output scale 1/256 and zero point -128")
        if not logistic and (np.float32(y.scale) != np.float32(1 / 128) or zout != 0):
            raise fail(op, "int8 TANH needs output scale 1/128 and zero point 0")

        def fn(v):
            d = v - zin
            if d <= -radius:
                return -128
            if d >= radius:
                return 127
            q4 = fp.mbqm(d, mult, shift)
            if logistic:
                return _clamp8(fp.rdbpot(fp.logistic_q(q4, ib), 23) - 128)
            return _clamp8(fp.rdbpot(fp.tanh_q(q4, ib), 24))
        return _lut(op, x, y, fn)
    if op.name == "RELU":
        m, s = fp.quantize_multiplier(float(np.float32(x.scale) / np.float32(y.scale)))
        lo = max(-128, zout + fp.tf_round(float(np.float32(0.0) / np.float32(y.scale))))
        return _lut(op, x, y, lambda v: min(127, max(lo, zout + fp.mbqm(v - zin, m, s))))
    if op.name == "RELU6":
        six = _clamp8(fp.tf_round(float(np.float32(6.0) / np.float32(x.scale))) + zin)
        return _lut(op, x, y, lambda v: min(max(zin, v), six))
    if op.name == "LEAKY_RELU":
        # leaky_relu_common.cc: both multipliers from float32 products, then to double
        alpha = np.float32(op.options.Alpha() if op.options else 0.0)
        ma, sa = fp.quantize_multiplier(float(np.float32(x.scale) * alpha / np.float32(y.scale)))
        mi, si = fp.quantize_multiplier(float(np.float32(x.scale) / np.float32(y.scale)))
        neg = ma < 0      # a negative alpha: the multiplier's magnitude, then the sign
        ma = fp.wrap32(-ma) if neg else ma

        def leaky(v):
            d = v - zin
            if d >= 0:
                return _clamp8(zout + fp.mbqm(d, mi, si))
            r = fp.mbqm(d, ma, sa)
            return _clamp8(zout + (-r if neg else r))
        return _lut(op, x, y, leaky)
    if op.name == "HARD_SWISH":
        return _lut(op, x, y, _hard_swish(op, x, y))
    if op.name == "QUANTIZE":
        m, s = fp.quantize_multiplier(float(x.scale) / float(y.scale))
        return _lut(op, x, y, lambda v: _clamp8(fp.mbqm(v - zin, m, s) + zout))
    raise fail(op, "not supported")


def prepare_softmax(model: Model, op: Operator) -> Lowered:
    """int8 input, int8 or int16 output (SoftmaxPrepare's checks; the same tables, the int16
    output as opcode SOFTMAX_OUT16). int16 input: ops_quant.prepare_softmax."""
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check_int8(op, x)
    out16 = y.dtype == "int16"
    if out16:
        f = np.float32     # TF_LITE_ENSURE_NEAR on floats
        if y.zero_point != -32768 or abs(f(y.scale) - f(1 / 65536)) > f(0.001) * f(1 / 65536):
            raise fail(op, "SOFTMAX to int16 needs output scale 1/65536 and zero point -32768")
    else:
        _check_int8(op, y)
        if y.zero_point != -128 or np.float32(y.scale) != np.float32(1 / 256):
            raise fail(op, "int8 SOFTMAX needs output scale 1/256 and zero point -128")
    beta = op.options.Beta() if op.options else 1.0
    real = min(float(beta) * float(x.scale) * (1 << 26), float((1 << 31) - 1))
    m, left = fp.quantize_multiplier(real)
    if left < 0:
        raise fail(op, "softmax input scale too small (multiplier below one)")
    diff_min = -fp.calculate_input_radius(5, left, 31)
    exp_t, expr_t = [], []
    for d in range(256):           # d = max_in_row - x
        diff = -d
        if diff >= diff_min:
            e = fp.exp_on_negative_values(fp.srdhm(diff * (1 << left), m), 5)
            exp_t.append(e)
            expr_t.append(fp.rdbpot(e, 12))
        else:
            exp_t.append(0)
            expr_t.append(0)
    depth = x.shape[-1]
    if depth > 512:      # keeps the node's fixed-point sum below 2^28 (docs/formats/tsm.md)
        raise fail(op, f"SOFTMAX over {depth} classes; the engine supports at most 512")
    rows = x.size // depth
    code = "SOFTMAX_OUT16" if out16 else "SOFTMAX"
    params = tsm.params(code, input=TRef(x.index), output=TRef(y.index), rows=rows,
                        depth=depth, exp=CRef(0), expr=CRef(1))
    return Lowered(op, OPCODES[code], params, [x.index], [y.index],
                   [_i32(exp_t), _i32(expr_t)], x.size, 28)


def prepare_mean(model: Model, op: Operator) -> Lowered:
    """MEAN and SUM (QuantizedMeanOrSum: SUM is MEAN without the multiplier's division by the
    element count) as MEAN records; REDUCE_MAX (ReduceGeneric, equal input and output
    quantization) as RMAX, on the same axis words."""
    x, ax, y = _t(model, op.inputs[0]), _t(model, op.inputs[1]), _t(model, op.outputs[0])
    _check_int8(op, x, y)
    if op.name == "REDUCE_MAX" and (np.float32(x.scale) != np.float32(y.scale)
                                    or x.zero_point != y.zero_point):
        raise fail(op, "int8 REDUCE_MAX needs equal input and output scale and zero point")
    if ax.data is None:
        raise fail(op, "the axis tensor must be constant")
    nd = len(x.shape)
    if nd > 4:
        raise fail(op, f"{op.name} over more than 4 dimensions is not supported")
    axes = sorted({int(a) % nd for a in np.asarray(ax.data).reshape(-1)})
    dims = _shape4(x.shape)
    red = [0] * 4
    for a in axes:
        red[a + 4 - nd] = 1
    n = 1
    for d in range(4):
        if red[d]:
            n *= dims[d]
    m, s = fp.quantize_multiplier(float(x.scale) / float(y.scale))
    m2, s2 = m, s
    if op.name == "MEAN":   # the element count folded into the multiplier (SUM keeps it)
        k = min(n.bit_length() - 1, 32, 31 + s)
        m2 = fp.wrap32((m << k) // n)
        s2 = s - k
    # output strides over the 4-D input index (0 for reduced dims)
    ostr, acc = [0] * 4, 1
    for d in range(3, -1, -1):
        if not red[d]:
            ostr[d] = acc
            acc *= dims[d]
    if op.name == "REDUCE_MAX":
        params = tsm.params("RMAX", input=TRef(x.index), output=TRef(y.index),
                            **{f"d{d}": dims[d] for d in range(4)},
                            **{f"os{d}": ostr[d] for d in range(4)}, n_out=y.size)
        return Lowered(op, OPCODES["RMAX"], params, [x.index], [y.index], [], 0)
    params = tsm.params("MEAN", input=TRef(x.index), output=TRef(y.index),
                        **{f"d{d}": dims[d] for d in range(4)},
                        **{f"os{d}": ostr[d] for d in range(4)}, mult=m2, shift=s2,
                        zp_in_n=x.zero_point * n, zp_out=y.zero_point, n_out=y.size)
    return Lowered(op, OPCODES["MEAN"], params, [x.index], [y.index], [], x.size, 4 * y.size)


def prepare_concat(model: Model, op: Operator) -> Lowered:
    y = _t(model, op.outputs[0])
    ins = [_t(model, i) for i in op.inputs]
    _check_int8(op, y, *ins)
    if op.options and op.options.FusedActivationFunction():
        raise fail(op, "fused activation on CONCATENATION is not supported")
    nd = len(y.shape)
    axis = op.options.Axis() % nd if op.options else nd - 1
    outer = int(np.prod(y.shape[:axis])) if axis else 1
    inner = int(np.prod(y.shape[axis + 1:])) if axis + 1 < nd else 1
    params = tsm.params("CONCATENATION", output=TRef(y.index), outer=outer,
                        out_inner=y.shape[axis] * inner, n_in=len(ins),
                        each=[{"input": TRef(t.index), "inner": t.shape[axis] * inner}
                              for t in ins])
    return Lowered(op, OPCODES["CONCATENATION"], params, [t.index for t in ins], [y.index], [])


def prepare_pad(model: Model, op: Operator) -> Lowered:
    x, p, y = _t(model, op.inputs[0]), _t(model, op.inputs[1]), _t(model, op.outputs[0])
    _check_int8(op, x, y)
    if p.data is None:
        raise fail(op, "the paddings tensor must be constant")
    pads = np.asarray(p.data).reshape(-1, 2).astype(int)
    nd = len(x.shape)
    if nd > 4 or np.any(pads < 0):
        raise fail(op, "PAD supports up to 4 dimensions and non-negative paddings")
    value = y.zero_point
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        cv = _t(model, op.inputs[2])
        if cv.data is None:
            raise fail(op, "the constant value tensor must be constant")
        value = int(np.asarray(cv.data).reshape(-1)[0])
    before = [0] * (4 - nd) + [int(v) for v in pads[:, 0]]
    dims, outs = _shape4(x.shape), _shape4(y.shape)
    params = tsm.params("PAD", input=TRef(x.index), output=TRef(y.index),
                        **{f"d{d}": dims[d] for d in range(4)},
                        **{f"before{d}": before[d] for d in range(4)},
                        **{f"o{d}": outs[d] for d in range(4)}, value=value)
    return Lowered(op, OPCODES["PAD"], params, [x.index], [y.index], [])

