"""Build single-op int8 .tflite flatbuffers directly (no TensorFlow), for randomized tests.

Shapes, scales, zero points and options are whatever the test asks for, including values
TensorFlow's converter would rarely produce (multipliers above one, extreme zero points).
"""

from __future__ import annotations

import dataclasses

import flatbuffers
import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType

_TYPES = {"int8": TensorType.INT8, "int16": TensorType.INT16, "int32": TensorType.INT32,
          "int64": TensorType.INT64, "float32": TensorType.FLOAT32}


@dataclasses.dataclass
class T:
    shape: tuple
    dtype: str = "int8"
    scale: float | list = 0.0
    zero_point: int | list = 0
    qdim: int = 0
    data: np.ndarray | None = None
    variable: bool = False     # a variable tensor (SVDF's activation state)


def _vec(b, start, items, add):
    start(b, len(items))
    for it in reversed(items):
        add(it)
    return b.EndVector()


def build(op: str, tensors: list[T], inputs: list[int], outputs: list[int],
          options=None) -> bytes:
    """options: (BuiltinOptions name, {field: value}) e.g. ("Conv2DOptions", {"StrideW": 2})."""
    graph_in = [i for i in inputs
                if i >= 0 and tensors[i].data is None and not tensors[i].variable]
    return build_graph(tensors, [(op, inputs, outputs, options)], graph_in, outputs)


def build_graph(tensors: list[T], ops: list[tuple], graph_inputs: list[int],
                graph_outputs: list[int]) -> bytes:
    """A graph of several ops: each (op name, inputs, outputs, options or None), in order."""
    b = flatbuffers.Builder(1024)
    bufs = [None] + [t.data for t in tensors if t.data is not None]
    buf_offs = []
    for data in bufs:
        if data is None:
            tflite.BufferStart(b)
        else:
            raw = np.ascontiguousarray(data).tobytes()
            b.StartVector(1, len(raw), 16)
            b.head = b.head - len(raw)
            b.Bytes[b.head:b.head + len(raw)] = raw
            vec = b.EndVector()
            tflite.BufferStart(b)
            tflite.BufferAddData(b, vec)
        buf_offs.append(tflite.BufferEnd(b))
    t_offs = []
    k = 0
    for i, t in enumerate(tensors):
        scales = list(np.atleast_1d(np.asarray(t.scale, np.float32)))
        zps = [int(z) for z in np.atleast_1d(t.zero_point)]
        sv = _vec(b, tflite.QuantizationParametersStartScaleVector, scales, b.PrependFloat32)
        zv = _vec(b, tflite.QuantizationParametersStartZeroPointVector, zps, b.PrependInt64)
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, sv)
        tflite.QuantizationParametersAddZeroPoint(b, zv)
        tflite.QuantizationParametersAddQuantizedDimension(b, t.qdim)
        q = tflite.QuantizationParametersEnd(b)
        shape = _vec(b, tflite.TensorStartShapeVector, [int(d) for d in t.shape], b.PrependInt32)
        name = b.CreateString(f"t{i}")
        buf_index = 0
        if t.data is not None:
            k += 1
            buf_index = k
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[t.dtype])
        tflite.TensorAddBuffer(b, buf_index)
        tflite.TensorAddName(b, name)
        tflite.TensorAddQuantization(b, q)
        if t.variable:
            tflite.TensorAddIsVariable(b, True)
        t_offs.append(tflite.TensorEnd(b))
    names = list(dict.fromkeys(op for op, _i, _o, _opt in ops))   # one opcode entry per op
    opers = []
    for op, inputs, outputs, options in ops:
        opt_off, opt_type = 0, 0
        if options is not None:
            kind, fields = options
            getattr(tflite, kind + "Start")(b)
            for field, value in fields.items():
                getattr(tflite, f"{kind}Add{field}")(b, value)
            opt_off = getattr(tflite, kind + "End")(b)
            opt_type = getattr(BuiltinOptions, kind)
        ins = _vec(b, tflite.OperatorStartInputsVector, inputs, b.PrependInt32)
        outs = _vec(b, tflite.OperatorStartOutputsVector, outputs, b.PrependInt32)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, names.index(op))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, opt_type)
            tflite.OperatorAddBuiltinOptions(b, opt_off)
        opers.append(tflite.OperatorEnd(b))
    tv = _vec(b, tflite.SubGraphStartTensorsVector, t_offs, b.PrependUOffsetTRelative)
    gi = _vec(b, tflite.SubGraphStartInputsVector, graph_inputs, b.PrependInt32)
    go = _vec(b, tflite.SubGraphStartOutputsVector, graph_outputs, b.PrependInt32)
    ov = _vec(b, tflite.SubGraphStartOperatorsVector, opers, b.PrependUOffsetTRelative)
    sname = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddInputs(b, gi)
    tflite.SubGraphAddOutputs(b, go)
    tflite.SubGraphAddOperators(b, ov)
    tflite.SubGraphAddName(b, sname)
    sg = tflite.SubGraphEnd(b)
    codes = []
    for op in names:
        code = getattr(BuiltinOperator, op)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        codes.append(tflite.OperatorCodeEnd(b))
    ocv = _vec(b, tflite.ModelStartOperatorCodesVector, codes, b.PrependUOffsetTRelative)
    sgv = _vec(b, tflite.ModelStartSubgraphsVector, [sg], b.PrependUOffsetTRelative)
    bv = _vec(b, tflite.ModelStartBuffersVector, buf_offs, b.PrependUOffsetTRelative)
    desc = b.CreateString("tinysense test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, ocv)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bv)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
