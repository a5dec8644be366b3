"""The converter with int16 / int32 model ends: what it accepts (int16 inputs, int16 and int32
outputs, QUANTIZE between integer types, SOFTMAX int8 -> int16 and int16 -> int16) and the
one-line refusals of the int16 paths the engine does not have."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

from tflite_build import T, build, build_graph
from tinysense.convert import UnsupportedModel, convert_model
from tinysense.formats import tsm
from tinysense.validate.vectors import InputSpec, make_vectors

CONF = Path(__file__).resolve().parents[1] / "conformance"


def _opcodes(pkg: bytes) -> list[int]:
    n_ops = int.from_bytes(pkg[18:20], "little")
    at = int.from_bytes(pkg[36:40], "little")
    codes = []
    for _ in range(n_ops):
        code, n_in, n_out, _r, n_params = pkg[at], pkg[at + 1], pkg[at + 2], pkg[at + 3], \
            int.from_bytes(pkg[at + 4:at + 6], "little")
        codes.append(code)
        at += 16 + 4 * ((n_in + n_out + 1) // 2) + 4 * n_params
    return codes


def test_keyword_scrambled_ends():
    res = convert_model(CONF / "keyword_scrambled.tflite")
    (i,), (o,) = res.report.inputs, res.report.outputs
    assert (i["node_dtype"], i["nbytes"], o["node_dtype"], o["nbytes"]) == \
        ("int16", 192, "int32", 8)
    codes = _opcodes(res.package)
    assert codes[0] == tsm.OPCODES["REQUANT"] and codes[-1] == tsm.OPCODES["REQUANT"]
    assert codes[-2] == tsm.OPCODES["SOFTMAX_OUT16"] and codes.count(tsm.OPCODES["SVDF"]) == 7


def _problems(buf) -> list[str]:
    with pytest.raises(UnsupportedModel) as exc:
        convert_model(buf)
    return [p["why"] for p in exc.value.problems]


def test_int16_input_into_an_int8_op_is_refused():
    tensors = [T((1, 4), "int16", scale=0.01), T((2, 4), scale=0.1, data=np.ones((2, 4), np.int8)),
               T((1, 2), scale=0.5)]
    why = _problems(build("FULLY_CONNECTED", tensors, [0, 1, -1], [2],
                          ("FullyConnectedOptions", {})))
    assert len(why) == 1 and why[0].startswith("dtype int16 not supported (tensor 0")


def test_int16_softmax_lowers_to_the_lut_record_or_says_why_not():
    ok = [T((1, 4), "int16", scale=0.01), T((1, 4), "int16", scale=1 / 32768)]
    res = convert_model(build("SOFTMAX", ok, [0], [1], ("SoftmaxOptions", {"Beta": 1.0})))
    assert _opcodes(res.package) == [tsm.OPCODES["SOFTMAX_LUT16"]]
    zp = [T((1, 4), "int16", scale=0.01, zero_point=3), T((1, 4), "int16", scale=1 / 32768)]
    why = _problems(build("SOFTMAX", zp, [0], [1], ("SoftmaxOptions", {"Beta": 1.0})))
    assert why == [("SOFTMAX from int16 needs input zero point 0 (tflite-micro's Prepare "
                    "refuses others)")]
    out = [T((1, 4), "int16", scale=0.01), T((1, 4), "int16", scale=1 / 65536)]
    why = _problems(build("SOFTMAX", out, [0], [1], ("SoftmaxOptions", {"Beta": 1.0})))
    assert why == [("SOFTMAX from int16 needs an int16 output of scale 1/32768 and zero "
                    "point 0")]


def test_softmax_to_int16_needs_its_output_quantization():
    tensors = [T((1, 4), scale=0.1), T((1, 4), "int16", scale=1 / 65536, zero_point=0)]
    why = _problems(build("SOFTMAX", tensors, [0], [1], ("SoftmaxOptions", {"Beta": 1.0})))
    assert why == ["SOFTMAX to int16 needs output scale 1/65536 and zero point -32768"]


def test_float_quantize_inside_the_model_is_refused():
    tensors = [T((1, 4), scale=0.1), T((1, 4), "float32"), T((1, 4), scale=0.2)]
    buf = build_graph(tensors, [("DEQUANTIZE", [0], [1], None), ("QUANTIZE", [1], [2], None)],
                      [0], [2])
    why = _problems(buf)
    assert any("QUANTIZE float32 -> int8 inside the model is not supported" in w for w in why)


def test_int32_input_is_refused():
    tensors = [T((1, 4), "int32", scale=0.1), T((1, 4), scale=0.2)]
    why = _problems(build("QUANTIZE", tensors, [0], [1]))
    assert any(w.startswith("model input 0 't0' is int32; expected int8 or int16") for w in why)


def test_int16_input_vectors_span_the_int16_codes():
    spec = InputSpec((1, 64), np.dtype(np.int16), 0.001, 0)
    vecs = make_vectors([spec], 20, seed=1)
    assert [v.label for v in vecs[:2]] == ["all min", "all max"]
    assert vecs[0].arrays[0].min() == -32768 and vecs[1].arrays[0].max() == 32767
    rand = np.concatenate([v.arrays[0].ravel() for v in vecs[3:]])
    assert rand.dtype == np.int16 and (np.abs(rand) < 128).mean() > 0.2 and rand.max() > 16384
