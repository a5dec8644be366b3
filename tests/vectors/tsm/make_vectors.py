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


if __name__ == "__main__":
    main()
