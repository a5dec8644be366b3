"""The op-test model zoo (tests/ops/) is complete, unchanged and runs in tflite-micro."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinysense import reference

OPS_DIR = Path(__file__).resolve().parents[1] / "ops"
MANIFEST = json.loads((OPS_DIR / "models.json").read_text())
MODELS = sorted(k for k in MANIFEST if not k.startswith("_"))

# Every op the engine must support (issue 3), each covered by at least one zoo model.
REQUIRED_OPS = {
    "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "MEAN", "ADD", "MUL", "CONCATENATION", "RESHAPE", "PAD", "SOFTMAX", "LOGISTIC", "TANH",
    "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE",
    # issue 13 (tests/ops/make_flat_models.py)
    "LEAKY_RELU", "STRIDED_SLICE", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR", "SUB",
    "MAXIMUM", "MINIMUM", "HARD_SWISH", "SLICE", "SPLIT", "SPLIT_V", "GATHER", "PRELU",
    "SUM", "REDUCE_MAX", "SHAPE", "PACK", "CAST", "SVDF",
}


def seeded_inputs(ref: reference.Reference, info: dict) -> list[np.ndarray]:
    """The inputs models.json's output_checksum was computed from (see make_op_models.py)."""
    rng = np.random.default_rng(7)
    out = []
    for det, r in zip(ref.input_details, info["float_input_ranges"]):
        shape = tuple(int(d) for d in det["shape"])
        if np.issubdtype(det["dtype"], np.integer):
            out.append(rng.integers(-128, 128, size=shape).astype(det["dtype"]))
        else:
            out.append(rng.uniform(*r, size=shape).astype(det["dtype"]))
    return out


def test_zoo_covers_every_required_op_and_option():
    seen = {op for name in MODELS for op in MANIFEST[name]["ops"]}
    assert REQUIRED_OPS <= seen, REQUIRED_OPS - seen
    opts = [(op, o) for n in MODELS for op, o in zip(MANIFEST[n]["ops"], MANIFEST[n]["options"])]
    conv = [o for op, o in opts if op == "CONV_2D"]
    dw = [o for op, o in opts if op == "DEPTHWISE_CONV_2D"]
    for family in (conv, dw):
        assert {o["padding"] for o in family} == {0, 1}            # SAME and VALID
        assert {o["strideH"] for o in family} >= {1, 2}
        assert {o["dilationHFactor"] for o in family} >= {1, 2}
        assert {o["fusedActivationFunction"] for o in family} >= {0, 1, 3}
    assert {o["depthMultiplier"] for o in dw} >= {1, 2}
    fc = [o for op, o in opts if op == "FULLY_CONNECTED"]
    assert {o["fusedActivationFunction"] for o in fc} >= {0, 1, 3}
    assert {o["keepDims"] for op, o in opts if op == "MEAN"} == {True, False}
    assert any(not MANIFEST[n]["per_channel"] and "CONV_2D" in MANIFEST[n]["ops"]
               for n in MODELS)
    assert any(MANIFEST[n]["inputs"][0]["dtype"] == "FLOAT32" for n in MODELS)
    assert any(MANIFEST[n]["outputs"][0]["dtype"] == "FLOAT32" for n in MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_runs_in_tflite_micro_as_recorded(name):
    info = MANIFEST[name]
    path = OPS_DIR / info["file"]
    graph = reference.read_graph(path)
    assert [op.name for op in graph.ops] == info["ops"]
    assert [list(graph.tensors[i].shape) for i in graph.inputs] == \
        [t["shape"] for t in info["inputs"]]
    ref = reference.Reference(path)
    outs = ref.run(seeded_inputs(ref, info))
    assert zlib.crc32(b"".join(o.tobytes() for o in outs)) == info["output_checksum"]
    assert ref.arena_bytes() == pytest.approx(info["arena_bytes"], abs=16)
    assert path.stat().st_size < 8192   # tiny by construction
