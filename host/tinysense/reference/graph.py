"""The graph of a .tflite model as the reference sees it: tensors and ops in execution order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from tinysense.errors import TinysenseError

ModelLike = "str | Path | bytes | bytearray | memoryview"

_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    fb.TensorType.INT8: np.int8, fb.TensorType.UINT8: np.uint8,
    fb.TensorType.INT16: np.int16, fb.TensorType.INT32: np.int32,
    fb.TensorType.FLOAT32: np.float32, fb.TensorType.INT64: np.int64,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the model's first subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str              # TensorType name: INT8, FLOAT32, INT32, ...
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    constant: bool          # has data in a flatbuffer buffer (weights, biases, shapes)

    @property
    def numpy_dtype(self) -> type:
        return _NUMPY_TYPES.get(getattr(fb.TensorType, self.dtype), np.uint8)


@dataclass(frozen=True)
class OpInfo:
    """One operator, in the order the interpreter runs it."""

    index: int
    name: str               # BuiltinOperator name: CONV_2D, FULLY_CONNECTED, ...
    inputs: tuple[int, ...]  # tensor indices, -1 for an absent optional input
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    """Tensors, ops, graph inputs and outputs of subgraph 0."""

    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def model_bytes(model) -> bytes:
    """The flatbuffer bytes of a model given as a path or as bytes."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TinysenseError(f"cannot read model {path}: {exc.strerror}; "
                             "expected a .tflite file") from None


def read_graph(model) -> Graph:
    """Parse subgraph 0 of a .tflite flatbuffer (raises TinysenseError if it is not one)."""
    buf = model_bytes(model)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TinysenseError("not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                             "expected a .tflite model file")
    try:
        m = fb.Model.GetRootAs(buf, 0)
        sg = m.Subgraphs(0)
        tensors = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            q = t.Quantization()
            scales = tuple(float(s) for s in q.ScaleAsNumpy()) if q and q.ScaleLength() else ()
            zps = (tuple(int(z) for z in q.ZeroPointAsNumpy())
                   if q and q.ZeroPointLength() else ())
            b = m.Buffers(t.Buffer()) if t.Buffer() < m.BuffersLength() else None
            constant = bool(b is not None and (b.DataLength() > 0 or b.Size() > 0))
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(TensorInfo(i, (t.Name() or b"").decode(errors="replace"), shape,
                                      _TYPE_NAMES.get(t.Type(), str(t.Type())), scales, zps,
                                      constant))
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            oc = m.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = _OP_NAMES.get(code, f"OP_{code}")
            if code == fb.BuiltinOperator.CUSTOM:
                name = "CUSTOM:" + (oc.CustomCode() or b"").decode(errors="replace")
            ops.append(OpInfo(i, name, tuple(int(x) for x in op.InputsAsNumpy()),
                              tuple(int(x) for x in op.OutputsAsNumpy())))
        return Graph(tuple(tensors), tuple(ops), tuple(int(x) for x in sg.InputsAsNumpy()),
                     tuple(int(x) for x in sg.OutputsAsNumpy()))
    except TinysenseError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer fails deep inside the reader
        raise TinysenseError(f"corrupt TFLite flatbuffer ({type(exc).__name__}: {exc}); "
                             "re-export the model") from None


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


def count_macs(graph: Graph) -> int:
    """Multiply-accumulates of one inference: the ops of convert.report.MAC_OPS (output
    elements x taps per output); bias, pools, MUL/ADD and the rest not counted."""
    from tinysense.convert.report import MAC_OPS

    total = 0
    for op in graph.ops:
        if op.name not in MAC_OPS:
            continue
        out = graph.tensors[op.outputs[0]].shape
        w = graph.tensors[op.inputs[1]].shape
        if op.name == "FULLY_CONNECTED":
            total += _numel(out) * int(w[-1])
        elif op.name == "SVDF":   # batch x filters x (inputs + memory)
            wt = graph.tensors[op.inputs[2]].shape
            total += int(graph.tensors[op.inputs[0]].shape[0]) * int(w[0]) * (
                int(w[1]) + int(wt[1]))
        elif op.name == "CONV_2D":
            total += _numel(out) * int(w[1]) * int(w[2]) * int(w[3])
        else:
            total += _numel(out) * int(w[1]) * int(w[2])
    return total
