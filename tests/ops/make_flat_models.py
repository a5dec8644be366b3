"""Build the op-zoo models TensorFlow's converter is not needed for: single-op int8 .tflite
files written directly as flatbuffers (tests/node/tflite_build.py), for the ops added after
the TensorFlow-built zoo (issue 13). No TensorFlow needed:

    .venv/bin/python tests/ops/make_flat_models.py          # all; or name some

Each model's shapes, scales, zero points and options are written out below (quantization
chosen by hand, constants drawn from `numpy.random.default_rng(zlib.crc32(name))`); each is
described into models.json exactly as make_op_models.py does (ops, options, tensors, the
tflite-micro arena, the CRC of the reference outputs for the seeded input), with
`"generator": "tflite_build"`.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "node"))
sys.path.insert(0, str(HERE))

from make_op_models import Spec, describe  # noqa: E402
from tflite_build import T, build  # noqa: E402

from tinysense import reference  # noqa: E402


def leaky_relu(alpha, s_in=0.05, zp_in=-10, s_out=0.03, zp_out=20, shape=(1, 4, 4, 16)):
    def make(rng):
        return build("LEAKY_RELU", [T(shape, scale=s_in, zero_point=zp_in),
                                    T(shape, scale=s_out, zero_point=zp_out)],
                     [0], [1], ("LeakyReluOptions", {"Alpha": alpha}))
    return make, ["LEAKY_RELU"]


# name -> (make(rng) -> .tflite bytes, ops it must contain)
MODELS = {
    "leaky_relu": leaky_relu(0.2),
    "leaky_relu_same_scale": leaky_relu(0.01, s_out=0.05, zp_out=-10),
    "leaky_relu_alpha_above_one": leaky_relu(1.5, s_out=0.08, zp_out=-128),
    "leaky_relu_negative_alpha": leaky_relu(-0.5, s_in=0.02, zp_in=0, s_out=0.02, zp_out=0,
                                            shape=(2, 128)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these models (default: all)")
    args = parser.parse_args(argv)
    manifest_path = HERE / "models.json"
    manifest = json.loads(manifest_path.read_text())
    for name in args.names or sorted(MODELS):
        make, expect = MODELS[name]
        buf = make(np.random.default_rng(zlib.crc32(name.encode())))
        n_in = len(reference.read_graph(buf).inputs)   # int8 inputs: the range is unused
        info = describe(name, buf, Spec(name, None, [()] * n_in, expect))
        info["generator"] = "tflite_build"
        (HERE / f"{name}.tflite").write_bytes(buf)
        manifest[name] = info
        print(f"{name}: {len(buf)} bytes, ops {' '.join(info['ops'])}", flush=True)
    meta = manifest.pop("_meta")
    ordered = {"_meta": meta, **{k: manifest[k] for k in sorted(manifest)}}
    manifest_path.write_text(json.dumps(ordered, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
