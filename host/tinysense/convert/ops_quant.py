"""QUANTIZE inside a model (tflite-micro's PrepareQuantizeReference, quantize_common.cc):
int8 -> int8 as a 256-entry LUT, and int8/int16 -> int8/int16/int32 as a REQUANT record."""

from __future__ import annotations

from tinysense.convert import fixedpoint as fp
from tinysense.convert import ops_misc as _misc
from tinysense.convert.ops import OPCODES, Lowered, TRef, fail
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
