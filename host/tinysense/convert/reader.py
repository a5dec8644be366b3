"""Read a .tflite flatbuffer into plain Python objects (tensors, operators, options)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

from tinysense.errors import TinysenseError

OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
DTYPES = {TensorType.INT8: np.int8, TensorType.INT32: np.int32, TensorType.FLOAT32: np.float32,
          TensorType.INT16: np.int16, TensorType.UINT8: np.uint8, TensorType.INT64: np.int64,
          TensorType.BOOL: np.bool_}
TYPE_NAMES = {v: k.lower() for k, v in vars(TensorType).items() if not k.startswith("_")}


@dataclasses.dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                 # "int8", "int32", "float32", ...
    scales: np.ndarray         # float32 array, empty when not quantized
    zero_points: np.ndarray    # int64 array
    quantized_dimension: int
    data: np.ndarray | None    # constant contents, shaped, or None for activations
    variable: bool = False     # a variable tensor: state kept across invocations (SVDF)

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if len(self.scales) else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if len(self.zero_points) else 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes of its elements (an int16 state tensor: 2 per element)."""
        np_type = DTYPES.get(getattr(TensorType, self.dtype.upper(), -1))
        return self.size * (np.dtype(np_type).itemsize if np_type is not None else 1)


@dataclasses.dataclass
class Operator:
    index: int
    name: str                  # "CONV_2D", ...
    inputs: list[int]          # -1 for an absent optional input
    outputs: list[int]
    options: object | None     # the tflite *Options object (already typed), or None


@dataclasses.dataclass
class Model:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


# builtin op -> its options table class in the `tflite` package (others need none here)
_OPTIONS = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
            "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions",
            "FULLY_CONNECTED": "FullyConnectedOptions", "MEAN": "ReducerOptions",
            "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
            "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions",
            "SOFTMAX": "SoftmaxOptions",
            "CONCATENATION": "ConcatenationOptions", "RESHAPE": "ReshapeOptions",
            "SQUEEZE": "SqueezeOptions", "PAD": "PadOptions",
            "LEAKY_RELU": "LeakyReluOptions", "STRIDED_SLICE": "StridedSliceOptions",
            "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
            "GATHER": "GatherOptions", "PACK": "PackOptions", "SVDF": "SVDFOptions"}


def _options(op, code_name: str):
    """The op's builtin options as the typed `tflite` object, or None."""
    table = op.BuiltinOptions()
    cls_name = _OPTIONS.get(code_name)
    if table is None or cls_name is None:
        return None
    module = getattr(tflite, cls_name)
    cls = module if isinstance(module, type) else getattr(module, cls_name)
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def read_model(source: str | Path | bytes) -> Model:
    """Parse subgraph 0 of a .tflite file or buffer; a corrupt file is a TinysenseError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf, label = bytes(source), "model bytes"
    else:
        try:
            buf, label = Path(source).read_bytes(), str(source)
        except OSError as exc:
            raise TinysenseError(f"cannot read {source}: {exc.strerror}") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TinysenseError(f"{label}: not a .tflite flatbuffer (no TFL3 identifier); "
                             "expected a model exported by the TFLite converter")
    try:
        return _parse(buf)
    except TinysenseError:
        raise
    except Exception as exc:  # flatbuffers raises assorted errors on corrupt data
        raise TinysenseError(f"{label}: corrupt .tflite flatbuffer ({type(exc).__name__}: "
                             f"{exc}); re-export the model") from None


def _parse(buf: bytes) -> Model:
    m = tflite.Model.GetRootAsModel(buf, 0)
    if m.SubgraphsLength() != 1:
        raise TinysenseError(f"model has {m.SubgraphsLength()} subgraphs; only single-subgraph "
                             "models are supported")
    g = m.Subgraphs(0)
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        ttype = t.Type()
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scales = np.zeros(0, np.float32)
        zps = np.zeros(0, np.int64)
        qdim = 0
        if q is not None and q.ScaleLength():
            scales = q.ScaleAsNumpy().astype(np.float32)
            zps = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else \
                np.zeros(len(scales), np.int64)
            qdim = q.QuantizedDimension()
        data = None
        b = m.Buffers(t.Buffer())
        if b is not None and b.DataLength():
            raw = b.DataAsNumpy().tobytes()
            if b.Offset() > 1:  # large models keep buffers outside the flatbuffer
                raw = buf[b.Offset():b.Offset() + b.Size()]
            np_type = DTYPES.get(ttype)
            if np_type is not None:
                data = np.frombuffer(raw, np_type).reshape(shape)
        elif b is not None and b.Offset() > 1:
            np_type = DTYPES.get(ttype)
            data = np.frombuffer(buf[b.Offset():b.Offset() + b.Size()], np_type).reshape(shape)
        name = t.Name().decode("utf-8", "replace") if t.Name() else f"t{i}"
        variable = bool(t.IsVariable())
        if variable:   # tflite-micro ignores a variable's buffer: it resets the tensor itself
            data = None
        tensors.append(Tensor(i, name, shape, TYPE_NAMES.get(ttype, str(ttype)), scales, zps,
                              qdim, data, variable))
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = m.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = OP_NAMES.get(code, f"opcode {code}")
        if code == BuiltinOperator.CUSTOM:
            name = "CUSTOM " + (oc.CustomCode() or b"?").decode("utf-8", "replace")
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(Operator(i, name, ins, outs, _options(op, name)))
    ins = [int(x) for x in g.InputsAsNumpy()]
    outs = [int(x) for x in g.OutputsAsNumpy()]
    return Model(tensors, ops, ins, outs)
