"""The model converter: .tflite (int8) -> .tsm package for the node engine.

`convert_model(path_or_bytes, board=None) -> ConvertResult`; `write_package(result, path)`.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

from tinysense.convert import fold as _fold
from tinysense.convert import ops as _ops
from tinysense.convert import ops_misc as _misc
from tinysense.convert import ops_quant as _quant
from tinysense.convert import ops_shape as _shape
from tinysense.convert import ops_svdf as _svdf
from tinysense.convert import writer
from tinysense.convert.planner import Buffer, plan
from tinysense.convert.reader import Model, read_model
from tinysense.convert.report import ConvertReport, fit
from tinysense.errors import TinysenseError
from tinysense.formats import tsm

PREPARE = {
    "FULLY_CONNECTED": _ops.prepare_conv, "CONV_2D": _ops.prepare_conv,
    "DEPTHWISE_CONV_2D": _ops.prepare_depthwise, "AVERAGE_POOL_2D": _ops.prepare_pool,
    "MAX_POOL_2D": _ops.prepare_pool, "ADD": _misc.prepare_add, "SUB": _misc.prepare_add,
    "MUL": _misc.prepare_mul,
    "SOFTMAX": _quant.prepare_softmax, "MEAN": _misc.prepare_mean,
    "CONCATENATION": _misc.prepare_concat, "PAD": _misc.prepare_pad, "PADV2": _misc.prepare_pad,
    "LOGISTIC": _misc.prepare_elementwise, "TANH": _misc.prepare_elementwise,
    "RELU": _misc.prepare_elementwise, "RELU6": _misc.prepare_elementwise,
    "QUANTIZE": _quant.prepare_quantize, "LEAKY_RELU": _misc.prepare_elementwise,
    "STRIDED_SLICE": _shape.prepare_strided_slice, "TRANSPOSE": _shape.prepare_transpose,
    "RESIZE_NEAREST_NEIGHBOR": _shape.prepare_resize_nearest,
    "MAXIMUM": _misc.prepare_maxmin, "MINIMUM": _misc.prepare_maxmin,
    "HARD_SWISH": _misc.prepare_elementwise, "SLICE": _shape.prepare_slice,
    "SPLIT": _shape.prepare_split, "SPLIT_V": _shape.prepare_split,
    "GATHER": _shape.prepare_gather, "PRELU": _misc.prepare_prelu,
    "SUM": _misc.prepare_mean, "REDUCE_MAX": _misc.prepare_mean, "SVDF": _svdf.prepare_svdf,
}
SUPPORTED = sorted(set(PREPARE) | set(_ops.ALIAS_OPS) | {"DEQUANTIZE"} | set(_fold.FOLDABLE))

__all__ = ["ConvertReport", "ConvertResult", "UnsupportedModel", "convert_model",
           "dequantize_output", "quantize_input", "write_package"]


class UnsupportedModel(TinysenseError):
    """Every part of a model the engine cannot run, found in one pass.

    `problems` is a list of {"index": op index or None, "op": op name or None, "why": ...};
    the message is one line per problem (a single problem is just its line)."""

    def __init__(self, label: str, problems: list[dict]):
        self.problems = problems
        lines = [_problem_line(p) for p in problems]
        if len(lines) == 1:
            msg = lines[0]
        else:
            msg = f"{label}: {len(lines)} problems the engine does not support:\n" + \
                "\n".join("  " + ln for ln in lines)
        super().__init__(msg)


def _problem_line(p: dict) -> str:
    return f"op {p['index']} ({p['op']}): {p['why']}" if p["index"] is not None else p["why"]


def _problem(op, why: str) -> dict:
    return {"index": op.index, "op": op.name, "why": why}


def _dtype_problems(model: Model, op, boundary: set[int]) -> list[dict]:
    """Activation tensors of an op in a dtype the engine lacks (one problem per dtype)."""
    seen = {}
    for i in list(op.inputs) + list(op.outputs):
        if i < 0 or i in boundary:
            continue
        t = model.tensors[i]
        if t.data is None and t.dtype != "int8" and not t.variable:   # state: its op checks
            seen.setdefault(t.dtype, []).append(t.index)
    return [_problem(op, f"dtype {d} not supported (tensor{'s' if len(ix) > 1 else ''} "
                     f"{', '.join(map(str, ix))}; the engine runs int8 activations)")
            for d, ix in seen.items()]


@dataclasses.dataclass
class ConvertResult:
    package: bytes
    report: ConvertReport


# model input / output dtypes the node reads and writes as they are (little-endian)
IO_IN_DTYPES = ("int8", "int16")
IO_OUT_DTYPES = ("int8", "int16", "int32")
# ops that check their own activation dtypes (int16 / int32 ends) in their Prepare
_OWN_DTYPES = ("QUANTIZE", "DEQUANTIZE", "SOFTMAX")


def _io_info(t, model_dtype: str) -> dict:
    return {"tensor": t.index, "name": t.name, "shape": list(t.shape), "node_dtype": t.dtype,
            "model_dtype": model_dtype, "scale": float(t.scale), "zero_point": t.zero_point,
            "nbytes": t.nbytes}


def _rewrite_io(model: Model, problems: list[dict]):
    """Node inputs/outputs; a float QUANTIZE at the input / DEQUANTIZE at the output moves to
    the host. Returns (inputs, outputs, skipped op indices, flags per tensor); appends what
    it cannot map to `problems`."""
    skip, flags, ins, outs = set(), {}, [], []
    for i in model.inputs:
        t = model.tensors[i]
        if t.dtype in IO_IN_DTYPES:
            ins.append(_io_info(t, t.dtype))
            flags[i] = writer.F_INPUT
            continue
        users = [op for op in model.operators if i in op.inputs]
        q = users[0] if len(users) == 1 else None
        if t.dtype == "float32" and q is not None and q.name == "QUANTIZE" and \
                model.tensors[q.outputs[0]].dtype == "int8":
            skip.add(q.index)
            o = model.tensors[q.outputs[0]]
            ins.append(_io_info(o, "float32"))
            flags[o.index] = writer.F_INPUT | writer.F_HOST_QUANTIZE
            continue
        problems.append({"index": None, "op": None, "why":
                         f"model input {i} '{t.name}' is {t.dtype}; expected int8 or int16 (or "
                         "float32 followed by one QUANTIZE to int8): convert the model "
                         "with full integer quantization (TFLITE_BUILTINS_INT8)"})
    for i in model.outputs:
        t = model.tensors[i]
        if t.dtype in IO_OUT_DTYPES:
            outs.append(_io_info(t, t.dtype))
            flags[i] = flags.get(i, 0) | writer.F_OUTPUT
            continue
        prod = [op for op in model.operators if i in op.outputs]
        if t.dtype == "float32" and prod and prod[0].name == "DEQUANTIZE" and \
                model.tensors[prod[0].inputs[0]].dtype == "int8":
            skip.add(prod[0].index)
            src = model.tensors[prod[0].inputs[0]]
            outs.append(_io_info(src, "float32"))
            flags[src.index] = flags.get(src.index, 0) | writer.F_OUTPUT | \
                writer.F_HOST_DEQUANTIZE
            continue
        problems.append({"index": None, "op": None, "why":
                         f"model output {i} '{t.name}' is {t.dtype}; expected int8, int16 or int32 (or "
                         "a DEQUANTIZE of an int8 tensor): convert the model with full "
                         "integer quantization (TFLITE_BUILTINS_INT8)"})
    return ins, outs, skip, flags


def convert_model(source, board=None) -> ConvertResult:
    """Convert an int8 .tflite (path or bytes) to a .tsm package and its report.

    Args:
        source: path to a .tflite file, or its bytes.
        board: None, a board id / TOML path, or a BoardConfig; adds the fit verdict.
    """
    model = read_model(source)
    label = Path(source).name if isinstance(source, (str, Path)) else "model"
    try:
        return _convert(model, label, board)
    except TinysenseError:
        raise
    except Exception as exc:   # values a valid flatbuffer can still hold but no model has
        raise TinysenseError(f"{label}: inconsistent model data ({type(exc).__name__}: "
                             f"{str(exc)[:120]}); the file may be corrupt - re-export it"
                             ) from exc


def _convert(model: Model, label: str, board) -> ConvertResult:
    problems: list[dict] = []
    folded = _fold.fold_constants(model)   # shape arithmetic: computed here, not on the node
    ins, outs, skip, flags = _rewrite_io(model, problems)
    skip |= folded
    # model ends _rewrite_io refused or moved to the host: their ops are not checked again
    boundary = {i for i in model.inputs if model.tensors[i].dtype not in IO_IN_DTYPES} | \
        {i for i in model.outputs if model.tensors[i].dtype not in IO_OUT_DTYPES}
    root = {}                                   # alias: tensor -> storage tensor

    def find(i):
        while i in root:
            i = root[i]
        return i

    lowered = []
    for op in model.operators:     # every op is checked: the error lists all problems at once
        if op.index in skip:
            continue
        try:
            lowered.extend(_lower_op(model, op, boundary, root, find, problems))
        except _ops.OpError as exc:
            problems.append(_problem(op, str(exc).split("): ", 1)[-1]))
    if problems:
        raise UnsupportedModel(label, problems)
    # lifetimes per storage group
    n = len(lowered)
    span: dict[int, list[int]] = {}

    def use(t, at):
        g = find(t)
        s = span.setdefault(g, [at, at])
        s[0], s[1] = min(s[0], at), max(s[1], at)

    for io in ins:
        use(io["tensor"], -1)
    for io in outs:
        use(io["tensor"], n)
    # a state tensor (SVDF's) lives across inferences: no other tensor may share its bytes
    states = {t for lo in lowered for t in lo.inputs if model.tensors[t].variable}
    for t in states:
        use(t, -1)
        use(t, n)
    for k, lo in enumerate(lowered):
        for t in lo.inputs + lo.outputs:
            use(t, k)
    bufs = {g: Buffer(g, model.tensors[g].nbytes, s[0], s[1]) for g, s in span.items()}
    arena = plan(list(bufs.values()))
    offsets = {}
    rows = []
    for t in model.tensors:
        g = find(t.index)
        f = flags.get(t.index, 0) | (writer.F_STATE if t.index in states else 0)
        if g in bufs:
            if len(t.shape) > 4:
                raise TinysenseError(f"tensor {t.index} '{t.name}' has {len(t.shape)} "
                                     "dimensions; the engine supports at most 4")
            offsets[t.index] = bufs[g].offset
            rows.append((t.dtype, t.shape, f, bufs[g].offset, t.nbytes, t.zero_point, t.scale))
        else:   # shape kept only when it fits the record (the data is not stored anyway)
            rows.append((t.dtype, t.shape if len(t.shape) <= 4 else (),
                         f | (writer.F_CONST if t.data is not None else 0),
                         0, 0, t.zero_point, t.scale))   # not stored (folded into op constants)
    scratch = max((lo.scratch for lo in lowered), default=0)
    scratch = (scratch + 3) & ~3
    pkg = writer.pack(rows, lowered, [io["tensor"] for io in ins],
                      [io["tensor"] for io in outs], arena, scratch, offsets)
    const_bytes = sum(len(b) + (-len(b) % 4) for lo in lowered for b in lo.blobs)
    report = ConvertReport(
        model=label,
        ops=[{"index": lo.op.index, "name": lo.op.name, "macs": lo.macs,
              "out_shape": list(model.tensors[lo.outputs[0]].shape)} for lo in lowered],
        macs=sum(lo.macs for lo in lowered), const_bytes=const_bytes, arena_bytes=arena,
        state_bytes=sum(model.tensors[i].nbytes for i in states),
        scratch_bytes=scratch, package_bytes=len(pkg),
        tables_bytes=struct.unpack_from("<I", pkg, tsm.HEADER_OFFSETS["const_off"])[0],
        max_op_const_bytes=max((sum(len(b) + (-len(b) % 4) for b in lo.blobs)
                                for lo in lowered), default=0),
        tensors=[{"index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                  "offset": offsets.get(t.index),
                  "nbytes": t.nbytes if t.index in offsets else 0, "state": t.index in states,
                  "const": t.data is not None, "scale": float(t.scale),
                  "zero_point": t.zero_point} for t in model.tensors],
        inputs=ins, outputs=outs)
    if board is not None:
        from tinysense.boards import BoardConfig, load_board
        fit(report, board if isinstance(board, BoardConfig) else load_board(board))
    return ConvertResult(pkg, report)


def _lower_op(model: Model, op, boundary: set[int], root: dict, find, problems: list[dict]):
    """The lowered records for one op ([] for an alias); raises OpError or appends to
    `problems` (unsupported op name and activation dtypes are listed together)."""
    if op.name in _ops.ALIAS_OPS:
        src, dst = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
        if src.data is not None or src.variable or src.dtype != "int8" or dst.dtype != "int8":
            raise _ops.fail(op, "only int8 activation tensors can be reshaped")
        root[dst.index] = find(src.index)
        return []
    prep = PREPARE.get(op.name)
    found = [] if prep is not None else [_problem(
        op, "op not supported by the tinysense engine (supported: " + ", ".join(SUPPORTED) + ")")]
    if op.name != "SVDF" and any(model.tensors[i].variable for i in op.inputs + op.outputs
                                 if i >= 0):
        found.append(_problem(op, "variable (state) tensors are supported only as SVDF's "
                              "activation state"))
    if op.name not in _OWN_DTYPES:
        found += _dtype_problems(model, op, boundary)
    if found:
        problems.extend(found)
        return []
    try:
        los = prep(model, op)      # one record, or a list (SPLIT: one per output)
    except TinysenseError:
        raise
    except Exception as exc:
        raise _ops.fail(op, f"inconsistent parameters ({type(exc).__name__}: "
                        f"{str(exc)[:100]}); the file may be corrupt") from exc
    los = los if isinstance(los, list) else [los]
    out, copied = [], set()
    for t in [t for lo in los for t in lo.inputs]:   # a constant operand (ADD, MUL,
        c = model.tensors[t]     # CONCAT...): copied into the arena before the op reads it
        if c.data is not None and t not in copied:
            if c.dtype != "int8":
                raise _ops.fail(op, f"constant operand {t} is {c.dtype}; expected int8")
            words = tsm.params("CONST", output=_ops.TRef(t), data=_ops.CRef(0), n=c.size)
            out.append(_ops.Lowered(op, _ops.OPCODES["CONST"], words, [], [t],
                                    [c.data.astype(np.int8).tobytes()]))
            copied.add(t)
    return out + los


def write_package(result: ConvertResult, out_path) -> Path:
    """Write the package atomically (temp file + rename)."""
    return writer.write_atomic(result.package, out_path)


def quantize_input(x, io: dict) -> np.ndarray:
    """float32 -> int8 exactly as tflite-micro's QUANTIZE (AffineQuantize) does."""
    x = np.asarray(x, dtype=np.float32)
    if io.get("model_dtype", "int8") == "int8":
        return x.astype(np.int8)
    v = x / np.float32(io["scale"])
    r = np.where(v >= 0, np.floor(v + np.float32(0.5)), -np.floor(-v + np.float32(0.5)))
    return np.clip(r.astype(np.int64) + io["zero_point"], -128, 127).astype(np.int8)


def dequantize_output(q, io: dict) -> np.ndarray:
    """int8 -> float32 exactly as tflite-micro's DEQUANTIZE does."""
    q = np.asarray(q, dtype=np.int64)
    return (np.float64(np.float32(io["scale"])) * (q - io["zero_point"])).astype(np.float32)
