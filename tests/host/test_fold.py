"""Shape arithmetic folded at convert time (tinysense.convert.fold): SHAPE, CAST,
STRIDED_SLICE, PACK feeding a RESHAPE leave no record for the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinysense.convert import convert_model
from tinysense.convert.fold import fold_constants
from tinysense.convert.reader import read_model

OPS_DIR = Path(__file__).resolve().parents[1] / "ops"


@pytest.mark.parametrize("name", ["shape_pack_reshape", "shape_cast_pack_reshape"])
def test_shape_ops_fold_to_the_static_shape(name):
    model = read_model(OPS_DIR / f"{name}.tflite")
    folded = fold_constants(model)
    names = [op.name for op in model.operators]
    assert sorted(names[i] for i in folded) == sorted(
        n for n in names if n in ("SHAPE", "CAST", "STRIDED_SLICE", "PACK"))
    reshape = next(op for op in model.operators if op.name == "RESHAPE")
    assert model.tensors[reshape.inputs[1]].data.tolist() == [2, 12]
    assert [op["name"] for op in convert_model(OPS_DIR / f"{name}.tflite").report.ops] == \
        ["LEAKY_RELU"]


def test_int8_ops_on_constants_are_not_folded():
    """Only int32/int64 outputs fold: quantized arithmetic stays the engine's."""
    model = read_model(OPS_DIR / "sub_const_broadcast_rows.tflite")
    assert fold_constants(model) == set()
    assert all(t.data is None for t in model.tensors if t.dtype == "int8"
               and t.index in model.operators[0].outputs)
    assert np.asarray(model.tensors[model.operators[0].inputs[1]].data).dtype == np.int8
