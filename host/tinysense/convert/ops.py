"""Per-op Prepare: check each tflite op and precompute its integer parameters like tflite-micro.

Each `prepare_*` returns a `Lowered` op: the engine opcode, its int32 parameter words (with
symbolic references to tensor arena offsets and constant blobs, resolved by the writer), the
constant blobs it needs, its MAC count and the kernel scratch bytes it uses.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinysense.convert import fixedpoint as fp
from tinysense.convert.reader import Model, Operator, Tensor
from tinysense.errors import TinysenseError
from tinysense.formats import tsm

# engine opcodes, parameter counts and each op's parameter-word names are the node engine's
# (read from firmware/tsnode/engine/ by tinysense.formats.tsm: defined once, there)
OPCODES = tsm.OPCODES
N_PARAMS = tsm.N_PARAMS
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


@dataclasses.dataclass(frozen=True)
class TRef:
    """Arena offset of a tensor (resolved after planning)."""
    tensor: int
    plus: int = 0


@dataclasses.dataclass(frozen=True)
class CRef:
    """File offset of a constant blob (resolved by the writer)."""
    blob: int


@dataclasses.dataclass
class Lowered:
    op: Operator
    opcode: int
    params: list
    inputs: list[int]
    outputs: list[int]
    blobs: list[bytes]
    macs: int = 0
    scratch: int = 0


class OpError(TinysenseError):
    pass


def fail(op: Operator, why: str) -> OpError:
    return OpError(f"op {op.index} ({op.name}): {why}")


def _t(model: Model, i: int) -> Tensor:
    return model.tensors[i]


def _check_int8(op, *tensors):
    for t in tensors:
        if t.dtype != "int8":
            raise fail(op, f"tensor {t.index} '{t.name}' is {t.dtype}; the engine runs int8 "
                       "models only (quantize the model with full int8 quantization)")


def _shape4(op, t: Tensor):
    if len(t.shape) != 4:
        raise fail(op, f"tensor {t.index} has shape {list(t.shape)}; expected 4-D NHWC")
    return t.shape


def _same_quant(op, a: Tensor, b: Tensor, what: str):
    if np.float32(a.scale) != np.float32(b.scale) or a.zero_point != b.zero_point:
        raise fail(op, f"{what} needs equal input/output scale and zero point "
                   f"(got {a.scale}/{a.zero_point} vs {b.scale}/{b.zero_point})")


def _act(op, out: Tensor, act: int):
    if act not in (0, 1, 2, 3):
        raise fail(op, f"fused activation {act} not supported (only NONE, RELU, RELU_N1_TO_1, "
                   "RELU6)")
    return fp.activation_range(act, out.scale, out.zero_point)


def _padding(padding: int, in_size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    """(out_size, pad_before) as tflite's ComputeOutSize / ComputePaddingHeightWidth."""
    eff = (k - 1) * dil + 1
    if padding == 0:   # SAME
        out = (in_size + stride - 1) // stride
    else:              # VALID
        out = (in_size - eff + stride) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2


def _conv_window(op: Operator, y, in_hw, out_hw, k_hw) -> tuple[int, ...]:
    """(stride h, w, dilation h, w, pad top, left) from a (depthwise) convolution's options;
    raises if the output shape does not follow tflite's padding rule."""
    o = op.options
    sh, sw = o.StrideH(), o.StrideW()
    dh, dw = o.DilationHFactor(), o.DilationWFactor()
    oh, pt = _padding(o.Padding(), in_hw[0], k_hw[0], sh, dh)
    ow, pl = _padding(o.Padding(), in_hw[1], k_hw[1], sw, dw)
    if (oh, ow) != tuple(out_hw):
        raise fail(op, f"output shape {list(y.shape)} does not match the padding rule")
    return sh, sw, dh, dw, pt, pl


def _i32(a) -> bytes:
    return np.asarray(a, dtype="<i4").tobytes()


def _conv_blobs(op, w: np.ndarray, bias: np.ndarray | None, zp_in: int, mults, shifts):
    """Weight rows as w+128 (uint8) padded to 4, and the folded per-channel constant C[oc]."""
    oc = w.shape[0]
    rows = w.reshape(oc, -1).astype(np.int64)
    k = rows.shape[1]
    k4 = (k + 3) & ~3
    wu = np.zeros((oc, k4), np.uint8)
    wu[:, :k] = (rows + 128).astype(np.uint8)
    wsum = (rows + 128).sum(axis=1)
    b = np.zeros(oc, np.int64) if bias is None else bias.astype(np.int64)
    fill = 128 + zp_in
    c = b - fill * wsum + 128 * fill * k
    if np.any(c > fp.INT32_MAX) or np.any(c < fp.INT32_MIN):
        raise fail(op, "bias plus zero-point correction does not fit in int32")
    return wu.tobytes(), _i32(c), _i32(mults), _i32(shifts), k, k4


def _per_channel(op, in_t: Tensor, w: Tensor, out_t: Tensor, oc: int, fc: bool):
    scales = w.scales
    if len(scales) not in (1, oc):
        raise fail(op, f"filter has {len(scales)} scales for {oc} output channels")
    if fc and len(scales) == 1:   # per-tensor FC: the product is rounded to float32 first
        m, s = fp.quantize_multiplier(float(np.float32(in_t.scale) * np.float32(scales[0]))
                                      / float(out_t.scale))
        return [m] * oc, [s] * oc
    ms, ss = [], []
    for c in range(oc):
        sc = scales[c] if len(scales) > 1 else scales[0]
        m, s = fp.quantize_multiplier(float(in_t.scale) * float(sc) / float(out_t.scale))
        ms.append(m)
        ss.append(s)
    return ms, ss


def _bias(model, op, idx):
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = _t(model, op.inputs[2])
        if b.dtype != "int32" or b.data is None:
            raise fail(op, f"bias tensor {b.index} must be constant int32 (got {b.dtype})")
        return b.data.reshape(-1)
    return None


def _const_weights(op, w: Tensor):
    if w.data is None:
        raise fail(op, f"weights tensor {w.index} is not constant; only constant weights "
                   "are supported")
    if w.dtype != "int8":
        raise fail(op, f"weights tensor {w.index} is {w.dtype}; expected int8")
    if np.any(w.zero_points != 0):
        raise fail(op, "weights must be symmetric (zero point 0)")
    return w.data


def prepare_conv(model: Model, op: Operator) -> Lowered:
    x, w, y = _t(model, op.inputs[0]), _t(model, op.inputs[1]), _t(model, op.outputs[0])
    _check_int8(op, x, y)
    wd = _const_weights(op, w)
    o = op.options
    if op.name == "FULLY_CONNECTED":     # keep_num_dims only changes the output's shape
        if len(wd.shape) != 2:
            raise fail(op, f"weights shape {list(wd.shape)}; expected 2-D")
        units, k = wd.shape
        if x.size % k:
            raise fail(op, f"input size {x.size} is not a multiple of {k}")
        rows = x.size // k
        geo = dict(n=1, h=rows, w=1, c=k, oh=rows, ow=1, oc=units, kh=1, kw=1, sh=1, sw=1,
                   dh=1, dw=1, pad_top=0, pad_left=0)
        act = o.FusedActivationFunction() if o is not None else 0
    else:
        n, h, wi, c = _shape4(op, x)
        _, oh, ow, oc = _shape4(op, y)
        oc_w, kh, kw, cin = wd.shape
        if oc_w != oc or cin != c:
            raise fail(op, f"filter {list(wd.shape)} does not match input channels {c} / "
                       f"output channels {oc} (grouped convolution is not supported)")
        sh, sw, dh, dw, pt, pl = _conv_window(op, y, (h, wi), (oh, ow), (kh, kw))
        geo = dict(n=n, h=h, w=wi, c=c, oh=oh, ow=ow, oc=oc, kh=kh, kw=kw, sh=sh, sw=sw,
                   dh=dh, dw=dw, pad_top=pt, pad_left=pl)
        act = o.FusedActivationFunction()
    return _lower_conv(model, op, x, w, y, wd, geo, act, OPCODES[op.name])


def _lower_conv(model, op, x, w, y, wrows, geo, act, opcode) -> Lowered:
    oc = wrows.shape[0]
    mults, shifts = _per_channel(op, x, w, y, oc, op.name == "FULLY_CONNECTED")
    wb, cb, mb, sb, k, k4 = _conv_blobs(op, wrows, _bias(model, op, 2), x.zero_point, mults,
                                        shifts)
    amin, amax = _act(op, y, act)
    # FULLY_CONNECTED records have CONV_2D's words (one kernel)
    params = tsm.params("CONV_2D", input=TRef(x.index), output=TRef(y.index), **geo,
                        weights=CRef(0), k4=k4, folded=CRef(1), mults=CRef(2), shifts=CRef(3),
                        fill=128 + x.zero_point, zp_out=y.zero_point, amin=amin, amax=amax, k=k)
    direct = geo["kh"] == geo["kw"] == 1 and geo["pad_top"] == geo["pad_left"] == 0
    return Lowered(op, opcode, params, [x.index], [y.index], [wb, cb, mb, sb],
                   y.size * k, 0 if direct else k4 + 8)


def prepare_depthwise(model: Model, op: Operator) -> Lowered:
    x, w, y = _t(model, op.inputs[0]), _t(model, op.inputs[1]), _t(model, op.outputs[0])
    _check_int8(op, x, y)
    wd = _const_weights(op, w)
    o = op.options
    n, h, wi, c = _shape4(op, x)
    _, oh, ow, oc = _shape4(op, y)
    _, kh, kw, oc_w = wd.shape
    mult = o.DepthMultiplier() or (oc // c)
    if oc_w != oc or c * mult != oc:
        raise fail(op, f"filter {list(wd.shape)} does not match {c} input channels x "
                   f"multiplier {mult}")
    sh, sw, dh, dw, pt, pl = _conv_window(op, y, (h, wi), (oh, ow), (kh, kw))
    if c == 1:   # one input channel: a plain convolution with oc filters (faster kernel)
        wconv = wd.reshape(kh, kw, oc).transpose(2, 0, 1).reshape(oc, kh, kw, 1)
        geo = dict(n=n, h=h, w=wi, c=c, oh=oh, ow=ow, oc=oc, kh=kh, kw=kw, sh=sh, sw=sw,
                   dh=dh, dw=dw, pad_top=pt, pad_left=pl)
        return _lower_conv(model, op, x, w, y, wconv, geo, o.FusedActivationFunction(),
                           OPCODES["CONV_2D"])
    mults, shifts = _per_channel(op, x, w, y, oc, False)
    # weights per output channel, taps contiguous: [oc][kh*kw] as w+128
    wt = (wd.reshape(kh * kw, oc).T.astype(np.int16) + 128).astype(np.uint8)
    bias = _bias(model, op, 2)
    b = np.zeros(oc, np.int64) if bias is None else bias.astype(np.int64)
    # interior pixels of a full window: K0 = bias - (128 + zp_in) * sum(w) per channel
    k0 = b - (128 + x.zero_point) * wd.reshape(kh * kw, oc).astype(np.int64).sum(axis=0)
    if np.any(np.abs(k0) > fp.INT32_MAX):
        raise fail(op, "bias plus zero-point correction does not fit in int32")
    amin, amax = _act(op, y, o.FusedActivationFunction())
    params = tsm.params("DEPTHWISE_CONV_2D", input=TRef(x.index), output=TRef(y.index), n=n,
                        h=h, w=wi, c=c, oh=oh, ow=ow, oc=oc, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh,
                        dw=dw, pad_top=pt, pad_left=pl, weights=CRef(0), depth_mult=mult,
                        bias=CRef(1), mults=CRef(2), shifts=CRef(3), zp_in=x.zero_point,
                        zp_out=y.zero_point, amin=amin, amax=amax, k0=CRef(4))
    return Lowered(op, OPCODES[op.name], params, [x.index], [y.index],
                   [wt.tobytes(), _i32(b), _i32(mults), _i32(shifts), _i32(k0)],
                   y.size * kh * kw, 8 * kh * kw + c + 4)


def prepare_pool(model: Model, op: Operator) -> Lowered:
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check_int8(op, x, y)
    _same_quant(op, x, y, op.name)
    o = op.options
    n, h, wi, c = _shape4(op, x)
    _, oh, ow, c2 = _shape4(op, y)
    kh, kw, sh, sw = o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()
    oh2, pt = _padding(o.Padding(), h, kh, sh, 1)
    ow2, pl = _padding(o.Padding(), wi, kw, sw, 1)
    if (oh2, ow2, c2) != (oh, ow, c):
        raise fail(op, f"output shape {list(y.shape)} does not match the padding rule")
    amin, amax = _act(op, y, o.FusedActivationFunction())
    params = tsm.params(op.name, input=TRef(x.index), output=TRef(y.index), n=n, h=h, w=wi, c=c,
                        oh=oh, ow=ow, kh=kh, kw=kw, sh=sh, sw=sw, pad_top=pt, pad_left=pl,
                        amin=amin, amax=amax)
    return Lowered(op, OPCODES[op.name], params, [x.index], [y.index], [], y.size * kh * kw)
