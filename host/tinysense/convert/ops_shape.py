"""Prepare for the data-movement ops lowered to REMAP: STRIDED_SLICE, TRANSPOSE,
RESIZE_NEAREST_NEIGHBOR. Each lists, per output axis, the input index it reads (walked the
way tflite-micro's Eval walks it) and stores those as byte-offset tables."""

from __future__ import annotations

import math

import numpy as np

from tinysense.convert.ops import OPCODES, CRef, Lowered, TRef, _check_int8, _i32, _t, fail
from tinysense.convert.reader import Model, Operator, Tensor
from tinysense.formats import tsm


def _shape4(shape) -> list[int]:
    return [1] * (4 - len(shape)) + [int(d) for d in shape]


def _strides(shape4) -> list[int]:
    st, acc = [0] * 4, 1
    for d in range(3, -1, -1):
        st[d] = acc
        acc *= shape4[d]
    return st


def _const_ints(op, model: Model, i: int, what: str) -> list[int]:
    t = _t(model, i)
    if t.data is None:
        raise fail(op, f"the {what} tensor must be constant")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _check(op, x: Tensor, y: Tensor):
    _check_int8(op, x, y)
    if len(x.shape) > 4 or len(y.shape) > 4:
        raise fail(op, "tensors with more than 4 dimensions are not supported")


def _remap(op, x: Tensor, y: Tensor, offsets: list[list[int]]) -> Lowered:
    """REMAP from per-axis byte offsets into the input (4 lists, outermost axis first)."""
    dims = [len(o) for o in offsets]
    if int(np.prod(dims)) != y.size:
        raise fail(op, f"output shape {list(y.shape)} does not match the op's indices "
                   f"(sizes {dims})")
    params = tsm.params("REMAP", input=TRef(x.index), output=TRef(y.index),
                        **{f"d{a}": dims[a] for a in range(4)},
                        **{f"t{a}": CRef(a) for a in range(4)})
    return Lowered(op, OPCODES["REMAP"], params, [x.index], [y.index],
                   [_i32(o or [0]) for o in offsets])


def prepare_transpose(model: Model, op: Operator) -> Lowered:
    """reference_ops::Transpose: output axis a walks input axis perm[a]."""
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check(op, x, y)
    perm = _const_ints(op, model, op.inputs[1], "permutation")
    nd = len(x.shape)
    if sorted(perm) != list(range(nd)):
        raise fail(op, f"permutation {perm} is not an order of the {nd} input axes")
    pad = 4 - nd
    perm4 = list(range(pad)) + [pad + p for p in perm]
    shape4 = _shape4(x.shape)
    st = _strides(shape4)
    return _remap(op, x, y, [[i * st[a] for i in range(shape4[a])] for a in perm4])


def _ss_start(begin: int, stride: int, size: int, masked: bool) -> int:
    """strided_slice_logic.h StridedSliceStartForAxis (TFLM passes offset = false)."""
    if begin < 0:
        begin += size
    begin = max(0, min(size, begin)) if stride > 0 else max(-1, min(size - 1, begin))
    if masked:
        begin = 0 if stride > 0 else size - 1
    return begin


def _ss_end(end: int, stride: int, size: int, start: int, masked: bool, shrink: bool) -> int:
    """strided_slice_logic.h StridedSliceEndForAxis."""
    if shrink:
        return start if start >= size else start + 1
    if end < 0:
        end += size
    end = max(0, min(size, end)) if stride > 0 else max(-1, min(size - 1, end))
    if masked:
        end = size if stride > 0 else -1
    return end


def prepare_strided_slice(model: Model, op: Operator) -> Lowered:
    """reference_ops::StridedSlice (the StridedSliceParams one tflite-micro's Eval calls):
    indices padded to 5-D with full axes in front, masks as TFLM builds them (ellipsis and
    new-axis masks are set to 0 there, `offset` is never set)."""
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check(op, x, y)
    begin, end, strides = (_const_ints(op, model, op.inputs[k], w)
                           for k, w in ((1, "begin"), (2, "end"), (3, "strides")))
    nd = len(x.shape)
    if not len(begin) == len(end) == len(strides) == nd:
        raise fail(op, f"begin/end/strides have {len(begin)}/{len(end)}/{len(strides)} "
                   f"entries for a {nd}-D input")
    if 0 in strides:
        raise fail(op, "stride value has to be non-zero")
    o = op.options
    bm, em, sm = (o.BeginMask(), o.EndMask(), o.ShrinkAxisMask()) if o else (0, 0, 0)
    pad = 4 - nd
    shape4 = _shape4(x.shape)
    st = _strides(shape4)
    offsets = [[0]] * pad
    for a in range(nd):
        size, s = int(x.shape[a]), strides[a]
        shrink = bool(sm >> a & 1)
        start = _ss_start(begin[a], s, size, bool(bm >> a & 1))
        stop = _ss_end(end[a], s, size, start, bool(em >> a & 1), shrink)
        idx = list(range(start, stop, s))
        offsets.append([i * st[pad + a] for i in idx])
    return _remap(op, x, y, offsets)


def _nearest(v: int, in_size: int, out_size: int, align: bool, half: bool) -> int:
    """resize_nearest_neighbor.h GetNearestNeighbor, in float32 as there."""
    f32 = np.float32
    if align and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    x = float((f32(v) + f32(0.5 if half else 0.0)) * scale)   # exact in a double
    if align:
        r = int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)   # roundf: half away
    else:
        r = int(math.floor(x))
    r = min(r, in_size - 1)
    return max(0, r) if half else r


def prepare_resize_nearest(model: Model, op: Operator) -> Lowered:
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check(op, x, y)
    if len(x.shape) != 4:
        raise fail(op, f"input shape {list(x.shape)}; expected 4-D NHWC")
    size = _const_ints(op, model, op.inputs[1], "size")
    n, h, w, c = (int(d) for d in x.shape)
    if len(size) != 2 or list(y.shape) != [n, size[0], size[1], c]:
        raise fail(op, f"size {size} does not give the output shape {list(y.shape)}")
    o = op.options
    align, half = (bool(o.AlignCorners()), bool(o.HalfPixelCenters())) if o else (False, False)
    st = _strides([n, h, w, c])
    return _remap(op, x, y, [
        [i * st[0] for i in range(n)],
        [_nearest(i, h, size[0], align, half) * st[1] for i in range(size[0])],
        [_nearest(i, w, size[1], align, half) * st[2] for i in range(size[1])],
        list(range(c))])


def _axis_offsets(x: Tensor, ranges: list[range]) -> list[list[int]]:
    """Byte offsets of per-axis index ranges of x (padded to 4-D in front)."""
    shape4 = _shape4(x.shape)
    st = _strides(shape4)
    ranges = [range(1)] * (4 - len(x.shape)) + list(ranges)
    return [[i * st[a] for i in r] for a, r in enumerate(ranges)]


def prepare_slice(model: Model, op: Operator) -> Lowered:
    """reference_ops::Slice: start = begin, stop = begin + size (size -1: to the end)."""
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check(op, x, y)
    begin = _const_ints(op, model, op.inputs[1], "begin")
    size = _const_ints(op, model, op.inputs[2], "size")
    nd = len(x.shape)
    if not len(begin) == len(size) == nd:
        raise fail(op, f"begin/size have {len(begin)}/{len(size)} entries for a {nd}-D input")
    ranges = []
    for a in range(nd):
        stop = int(x.shape[a]) if size[a] == -1 else begin[a] + size[a]
        if not 0 <= begin[a] <= stop <= int(x.shape[a]):
            raise fail(op, f"slice {begin[a]}..{stop} of axis {a} is outside its "
                       f"{int(x.shape[a])} elements")
        ranges.append(range(begin[a], stop))
    return _remap(op, x, y, _axis_offsets(x, ranges))


def prepare_split(model: Model, op: Operator) -> list[Lowered]:
    """SPLIT (axis, input) into equal parts and SPLIT_V (input, size_splits, axis): one REMAP
    per output, each the input's range along the axis (split.cc, split_v.cc)."""
    if op.name == "SPLIT":
        x, axis_t = _t(model, op.inputs[1]), op.inputs[0]
    else:
        x, axis_t = _t(model, op.inputs[0]), op.inputs[2]
    outs = [_t(model, i) for i in op.outputs]
    for y in outs:
        _check(op, x, y)
    nd = len(x.shape)
    axis = _const_ints(op, model, axis_t, "axis")[0]
    axis = axis + nd if axis < 0 else axis
    if not 0 <= axis < nd:
        raise fail(op, f"axis {axis} is outside the {nd}-D input")
    sizes = [int(y.shape[axis]) for y in outs]
    if sum(sizes) != int(x.shape[axis]):
        raise fail(op, f"outputs of {sizes} along axis {axis} do not add up to the input's "
                   f"{int(x.shape[axis])}")
    lowered, at = [], 0
    for y, n in zip(outs, sizes):
        ranges = [range(int(d)) for d in x.shape]
        ranges[axis] = range(at, at + n)
        lowered.append(_remap(op, x, y, _axis_offsets(x, ranges)))
        at += n
    return lowered


def prepare_gather(model: Model, op: Operator) -> Lowered:
    """GATHER with constant indices (gather.cc): output[outer, coord, inner] =
    input[outer, indices[coord], inner]; batch_dims only where the batch is 1."""
    x, y = _t(model, op.inputs[0]), _t(model, op.outputs[0])
    _check(op, x, y)
    coords = _const_ints(op, model, op.inputs[1], "indices")
    nd = len(x.shape)
    o = op.options
    axis, batch_dims = (o.Axis(), o.BatchDims()) if o else (0, 0)
    axis = axis + nd if axis < 0 else axis
    if batch_dims < 0:
        batch_dims += len(_t(model, op.inputs[1]).shape)
    if not 0 <= axis < nd:
        raise fail(op, f"axis {axis} is outside the {nd}-D input")
    if int(np.prod(x.shape[:batch_dims], dtype=np.int64)) != 1:
        raise fail(op, "GATHER with batch_dims over a batch of more than one is not supported")
    size = int(x.shape[axis])
    if any(not 0 <= c < size for c in coords):
        raise fail(op, f"indices {coords} are outside the {size} elements of axis {axis}")
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    return _remap(op, x, y, [[0], [i * size * inner for i in range(outer)],
                             [c * inner for c in coords], list(range(inner))])
