"""Regenerate the .tsm golden vectors (after a deliberate format change and version bump).

    python tests/vectors/tsm/make_vectors.py
"""

import json
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from tinysense.convert import convert_model, write_package

HERE = Path(__file__).resolve().parent
MODEL = HERE.parents[1] / "conformance" / "tflm_hello_world_int8.tflite"
# a STATE tensor (int16) and the SVDF record: tests/ops/svdf_rank1.tflite (make_flat_models.py)
SVDF_MODEL = HERE.parents[1] / "ops" / "svdf_rank1.tflite"
# int16 input, int32 output, REQUANT and SOFTMAX_OUT16 records: tests/ops/int16_ends_fc.tflite
INT16_MODEL = HERE.parents[1] / "ops" / "int16_ends_fc.tflite"


def main() -> None:
    write_package(convert_model(MODEL), HERE / "hello_world.tsm")
    interp = runtime.Interpreter.from_file(str(MODEL))
    vectors = []
    for v in (-128, -100, -1, 0, 1, 50, 127):
        x = np.array([[v]], np.int8)
        interp.set_input(x, 0)
        interp.invoke()
        vectors.append({"input": x.tobytes().hex(), "output": interp.get_output(0).tobytes().hex()})
    (HERE / "hello_world.json").write_text(json.dumps(
        {"model": "tests/conformance/tflm_hello_world_int8.tflite", "vectors": vectors},
        indent=1) + "\n")
    write_package(convert_model(SVDF_MODEL), HERE / "svdf.tsm")
    interp = runtime.Interpreter.from_file(str(SVDF_MODEL))
    rng = np.random.default_rng(5)
    vectors = []
    for _ in range(6):   # in a row: each output depends on the inputs before it (the state)
        x = rng.integers(-128, 128, (1, 24)).astype(np.int8)
        interp.set_input(x, 0)
        interp.invoke()
        vectors.append({"input": x.tobytes().hex(), "output": interp.get_output(0).tobytes().hex()})
    (HERE / "svdf.json").write_text(json.dumps(
        {"model": "tests/ops/svdf_rank1.tflite", "in_a_row": True, "vectors": vectors},
        indent=1) + "\n")
    write_package(convert_model(INT16_MODEL), HERE / "int16_ends.tsm")
    interp = runtime.Interpreter.from_file(str(INT16_MODEL))
    rng = np.random.default_rng(6)
    vectors = []
    for k in range(6):   # int16 codes, little-endian; int32 outputs, little-endian
        x = (rng.integers(-32768, 32768, (1, 32)) >> (2 * k)).astype("<i2")
        interp.set_input(x, 0)
        interp.invoke()
        vectors.append({"input": x.tobytes().hex(),
                        "output": interp.get_output(0).astype("<i4").tobytes().hex()})
    (HERE / "int16_ends.json").write_text(json.dumps(
        {"model": "tests/ops/int16_ends_fc.tflite", "input_dtype": "int16",
         "output_dtype": "int32", "vectors": vectors}, indent=1) + "\n")


if __name__ == "__main__":
    main()
