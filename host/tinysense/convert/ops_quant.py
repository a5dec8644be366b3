"""The int16 ends of 16x8 models. QUANTIZE inside a model (tflite-micro's
PrepareQuantizeReference, quantize_common.cc): int8 -> int8 as a 256-entry LUT, int8/int16 ->
int8/int16/int32 as a REQUANT record; SOFTMAX int16 -> int16 (softmax_common.cc's LUT path)
as a SOFTMAX_LUT16 record."""

from __future__ import annotations

import math

import numpy as np

from tinysense.convert import fixedpoint as fp
from tinysense.convert import ops_misc as _misc
from tinysense.convert.ops import OPCODES, CRef, Lowered, TRef, fail
from tinysense.convert.reader import Model, Operator
from tinysense.formats import tsm

IN_TYPES = ("int8", "int16")
OUT_BYTES = {"int8": 1, "int16": 2, "int32": 4}


def requant_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """QuantizeMultiplier(double(s_in) / double(s_out)) from the float32 scales, as the
    source and the pinned package compute it (tests/node/test_engine_int16.py has scales where
    a float32 quotient gives other bytes)."""
    return fp.quantize_multiplier(float(s_in) / float(s_out))


def prepare_quantize(model: Model, op: Operator) -> Lowered:
    x, y = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if x.dtype not in IN_TYPES or y.dtype not in OUT_BYTES:
        raise fail(op, f"QUANTIZE {x.dtype} -> {y.dtype} inside the model is not supported "
                   "(int8/int16 -> int8/int16/int32; float32 -> int8 only at the model input)")
    if x.dtype == "int8" and y.dtype == "int8":
        return _misc.prepare_elementwise(model, op)
    if len(y.scales) != 1:
        raise fail(op, "the output must be quantized per tensor (one scale)")
    m, s = requant_multiplier(x.scale, y.scale)
    params = tsm.params("REQUANT", input=TRef(x.index), output=TRef(y.index), n=x.size,
                        in16=int(x.dtype == "int16"), out_bytes=OUT_BYTES[y.dtype],
                        zp_in=x.zero_point, zp_out=y.zero_point, mult=m, shift=s)
    return Lowered(op, OPCODES["REQUANT"], params, [x.index], [y.index], [], x.size)


# -- SOFTMAX int16 -> int16 (SoftmaxPrepare's LUT path, SoftmaxInt16) ------------------------

LUT16_SIZE = 513     # kInt16LUTArraySize: 512 segments and a closing anchor


def _expf(x: np.float32) -> np.float32:
    """std::exp on a float: the correctly rounded value (tests/node/test_engine_int16.py
    compares the tables with the C library's expf where it has one)."""
    return np.float32(math.exp(float(x)))


def _recip(x: np.float32) -> np.float32:
    return np.float32(1) / (np.float32(1) + x)


def gen_lut16(func, input_min: float, input_max: float) -> list[int]:
    """gen_lut<float, int16_t, int16_t>(func, input_min, input_max, -1, 1): every step in
    float32 as the C code, each anchor biased by half its midpoint interpolation error."""
    f = np.float32
    lo, hi = f(input_min), f(input_max)
    step = (hi - lo) / f(512)
    half = step / f(2)
    inv = f(65536) / (f(1) - f(-1))

    def rnd(v):
        return f(fp.tf_round(float(v)))
    lut = []
    for i in range(512):
        val = func(lo + f(i) * step)
        mid = func(lo + f(i) * step + half)
        nxt = func(lo + f(i + 1) * step)
        sample = rnd(val * inv)
        interp = rnd((nxt * inv + rnd(val * inv)) / f(2))
        bias = rnd((interp - rnd(mid * inv)) / f(2))
        lut.append(int(min(max(sample - bias, f(-32768)), f(32767))))
    lut.append(int(min(max(rnd(func(hi) * inv), f(-32768)), f(32767))))
    return lut


def exp_lut16() -> list[int]:
    return gen_lut16(_expf, -10.0, 0.0)


def recip_lut16() -> list[int]:
    return gen_lut16(_recip, 0.0, 1.0)


def lut_lookup16(v: int, lut) -> int:
    """LUTLookup(int16_t): interpolation between lut[256 + (v >> 7)] and the next anchor."""
    i, off = 256 + (v >> 7), v & 0x7F
    return lut[i] + (((lut[i + 1] - lut[i]) * off + 64) >> 7)


def prepare_softmax(model: Model, op: Operator) -> Lowered:
    """SOFTMAX: the int16-input LUT path here, the int8-input one in ops_misc."""
    if model.tensors[op.inputs[0]].dtype == "int16":
        return prepare_softmax_int16(model, op)
    return _misc.prepare_softmax(model, op)


def prepare_softmax_int16(model: Model, op: Operator) -> Lowered:
    """int16 input and output (scale 1/32768, zero point 0): the two LUTs and the input
    multiplier `s_in * beta / (10 / 65535)` in double (CalculateSoftmaxParams)."""
    x, y = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    f = np.float32
    if y.dtype != "int16" or y.zero_point != 0 or \
            abs(f(y.scale) - f(1 / 32768)) > f(0.001) * f(1 / 32768):
        raise fail(op, "SOFTMAX from int16 needs an int16 output of scale 1/32768 and zero "
                   "point 0")
    if x.zero_point != 0:
        raise fail(op, "SOFTMAX from int16 needs input zero point 0 (tflite-micro's Prepare "
                   "refuses others)")
    beta = op.options.Beta() if op.options else 1.0
    m, s = fp.quantize_multiplier(float(x.scale) * float(f(beta)) / (10.0 / 65535.0))
    depth = x.shape[-1] if x.shape else 1
    params = tsm.params("SOFTMAX_LUT16", input=TRef(x.index), output=TRef(y.index),
                        rows=x.size // depth, depth=depth, exp=CRef(0), recip=CRef(1),
                        mult=m, shift=s)
    blobs = [np.asarray(exp_lut16(), "<i2").tobytes(), np.asarray(recip_lut16(), "<i2").tobytes()]
    return Lowered(op, OPCODES["SOFTMAX_LUT16"], params, [x.index], [y.index], blobs, x.size)
