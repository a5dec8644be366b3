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
from tflite_build import T, build, build_graph  # noqa: E402

from tinysense import reference  # noqa: E402


def leaky_relu(alpha, s_in=0.05, zp_in=-10, s_out=0.03, zp_out=20, shape=(1, 4, 4, 16)):
    def make(rng):
        return build("LEAKY_RELU", [T(shape, scale=s_in, zero_point=zp_in),
                                    T(shape, scale=s_out, zero_point=zp_out)],
                     [0], [1], ("LeakyReluOptions", {"Alpha": alpha}))
    return make, ["LEAKY_RELU"]


Q = dict(scale=0.04, zero_point=-7)   # data-movement ops keep the input's quantization


def _i32(*values):
    v = np.asarray(values, np.int32)
    return T((len(v),), "int32", data=v)


def strided_slice(shape, out, begin, end, strides, begin_mask=0, end_mask=0, shrink=0):
    def make(rng):
        return build("STRIDED_SLICE", [T(shape, **Q), _i32(*begin), _i32(*end),
                                       _i32(*strides), T(out, **Q)], [0, 1, 2, 3], [4],
                     ("StridedSliceOptions", {"BeginMask": begin_mask, "EndMask": end_mask,
                                              "ShrinkAxisMask": shrink}))
    return make, ["STRIDED_SLICE"]


def transpose(shape, perm):
    def make(rng):
        return build("TRANSPOSE", [T(shape, **Q), _i32(*perm),
                                   T(tuple(shape[p] for p in perm), **Q)], [0, 1], [2])
    return make, ["TRANSPOSE"]


def resize_nearest(shape, size, align=False, half=False):
    def make(rng):
        n, _h, _w, c = shape
        return build("RESIZE_NEAREST_NEIGHBOR", [T(shape, **Q), _i32(*size),
                                                 T((n, size[0], size[1], c), **Q)], [0, 1], [2],
                     ("ResizeNearestNeighborOptions", {"AlignCorners": align,
                                                       "HalfPixelCenters": half}))
    return make, ["RESIZE_NEAREST_NEIGHBOR"]


def binary(op, a_shape, b_shape, act=0, const_b=False, qa=(0.03, -5), qb=(0.011, 17),
           qy=(0.05, 3)):
    """SUB / MAXIMUM / MINIMUM: b broadcast when its shape has ones; const_b: b a constant."""
    def make(rng):
        out = tuple(max(x, y) for x, y in zip(a_shape, b_shape))
        b = T(b_shape, scale=qb[0], zero_point=qb[1],
              data=rng.integers(-128, 128, b_shape).astype(np.int8) if const_b else None)
        opts = {"SUB": ("SubOptions", {"FusedActivationFunction": act})}.get(op)
        return build(op, [T(a_shape, scale=qa[0], zero_point=qa[1]), b,
                          T(out, scale=qy[0], zero_point=qy[1])], [0, 1], [2], opts)
    return make, [op]


def hard_swish(s_in, zp_in, s_out, zp_out, shape=(1, 4, 4, 16)):
    def make(rng):
        return build("HARD_SWISH", [T(shape, scale=s_in, zero_point=zp_in),
                                    T(shape, scale=s_out, zero_point=zp_out)], [0], [1])
    return make, ["HARD_SWISH"]


def slice_(shape, begin, size):
    def make(rng):
        out = tuple(d - b if s == -1 else s for d, b, s in zip(shape, begin, size))
        return build("SLICE", [T(shape, **Q), _i32(*begin), _i32(*size), T(out, **Q)],
                     [0, 1, 2], [3])
    return make, ["SLICE"]


def split(shape, axis, n):
    def make(rng):
        part = list(shape)
        part[axis] //= n
        return build("SPLIT", [_i32(axis), T(shape, **Q)] + [T(tuple(part), **Q)] * n,
                     [0, 1], list(range(2, 2 + n)), ("SplitOptions", {"NumSplits": n}))
    return make, ["SPLIT"]


def split_v(shape, axis, sizes):
    def make(rng):
        outs = [T(tuple(shape[:axis]) + (s,) + tuple(shape[axis + 1:]), **Q) for s in sizes]
        return build("SPLIT_V", [T(shape, **Q), _i32(*sizes), _i32(axis)] + outs,
                     [0, 1, 2], list(range(3, 3 + len(sizes))),
                     ("SplitVOptions", {"NumSplits": len(sizes)}))
    return make, ["SPLIT_V"]


def gather(shape, axis, indices):
    def make(rng):
        a = axis % len(shape)
        out = tuple(shape[:a]) + (len(indices),) + tuple(shape[a + 1:])
        return build("GATHER", [T(shape, **Q), _i32(*indices), T(out, **Q)], [0, 1], [2],
                     ("GatherOptions", {"Axis": axis}))
    return make, ["GATHER"]


def prelu(shape, alpha_shape, const_alpha=True, qa=(0.004, 30)):
    def make(rng):
        alpha = T(alpha_shape, scale=qa[0], zero_point=qa[1],
                  data=rng.integers(-128, 128, alpha_shape).astype(np.int8)
                  if const_alpha else None)
        return build("PRELU", [T(shape, scale=0.05, zero_point=-12), alpha,
                               T(shape, scale=0.03, zero_point=-60)], [0, 1], [2])
    return make, ["PRELU"]


def reduce(op, shape, axes, keep, qy=Q):
    def make(rng):
        nd = len(shape)
        red = {a % nd for a in axes}
        out = tuple(1 if a in red else d for a, d in enumerate(shape)) if keep else \
            tuple(d for a, d in enumerate(shape) if a not in red)
        return build(op, [T(shape, **Q), _i32(*axes), T(out, **qy)], [0, 1], [2],
                     ("ReducerOptions", {"KeepDims": keep}))
    return make, [op]


def svdf(n_in, units, rank, mem, state="int16", act=0, batch=1):
    """SVDF with an int16 (or int8, zero point 9) state and weights_time; scales picked so
    the state and the output spread over their ranges for uniform int8 inputs."""
    def make(rng):
        nf = units * rank
        s16 = state == "int16"
        s_in, s_wf, s_wt = 0.06, 0.01, 0.002 if s16 else 0.02
        s_st = s_in * s_wf * 5400 * n_in ** 0.5 / (8000 if s16 else 30)
        f = np.float32
        wt = rng.integers(-3000, 3001, (nf, mem)).astype(np.int16) if s16 else \
            rng.integers(-127, 128, (nf, mem)).astype(np.int8)
        acc = (1700 if s16 else 73) * (8000 if s16 else 30) * (rank * mem) ** 0.5
        t = [T((batch, n_in), scale=s_in, zero_point=-3),
             T((nf, n_in), scale=s_wf, data=rng.integers(-127, 128, (nf, n_in)).astype(np.int8)),
             T((nf, mem), state, scale=s_wt, data=wt),
             T((units,), "int32", scale=float(f(f(s_st) * f(s_wt))),
               data=rng.integers(-int(acc), int(acc) + 1, units).astype(np.int32)),
             T((batch, nf * mem), state, scale=s_st, zero_point=0 if s16 else 9, variable=True),
             T((batch, units), scale=float(s_st * s_wt * acc / 40), zero_point=5)]
        return build("SVDF", t, [0, 1, 2, 3, 4], [5],
                     ("SVDFOptions", {"Rank": rank, "FusedActivationFunction": act}))
    return make, ["SVDF"]


def shape_pack_reshape(cast=False):
    """What Keras exports for `reshape(x, (batch, -1))`: SHAPE, STRIDED_SLICE (the batch),
    PACK with a constant, RESHAPE; then an int8 op. cast: the shape goes through CAST
    (int32 -> int32 here), as exporters do around int64 shapes."""
    def make(rng):
        t = [T((2, 3, 4), **Q),                          # 0 input
             T((3,), "int32"),                           # 1 SHAPE(x)
             _i32(0), _i32(1), _i32(1),                  # 2-4 begin, end, strides
             T((), "int32"),                             # 5 batch
             T((), "int32", data=np.asarray(12, np.int32)),   # 6 constant -1 stand-in
             T((2,), "int32"),                           # 7 PACK
             T((2, 12), **Q),                            # 8 RESHAPE
             T((2, 12), scale=0.03, zero_point=5),       # 9 LEAKY_RELU
             T((3,), "int32")]                           # 10 CAST(shape)
        shape_src = 10 if cast else 1
        ops = [("SHAPE", [0], [1], ("ShapeOptions", {"OutType": 2}))]
        if cast:
            ops.append(("CAST", [1], [10], None))
        ops += [("STRIDED_SLICE", [shape_src, 2, 3, 4], [5],
                 ("StridedSliceOptions", {"ShrinkAxisMask": 1})),
                ("PACK", [5, 6], [7], ("PackOptions", {"ValuesCount": 2, "Axis": 0})),
                ("RESHAPE", [0, 7], [8], None),
                ("LEAKY_RELU", [8], [9], ("LeakyReluOptions", {"Alpha": 0.1}))]
        return build_graph(t, ops, [0], [9])
    return make, ["SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"] + ["CAST"] * cast


def quantize(dt_in, dt_out, s_in, zp_in, s_out, zp_out, shape=(1, 40)):
    """QUANTIZE with an int16 or int32 end (a REQUANT record)."""
    def make(rng):
        return build("QUANTIZE", [T(shape, dt_in, scale=s_in, zero_point=zp_in),
                                  T(shape, dt_out, scale=s_out, zero_point=zp_out)], [0], [1])
    return make, ["QUANTIZE"]


def softmax_int16_out(shape, s_in, zp_in, beta=1.0):
    def make(rng):
        return build("SOFTMAX", [T(shape, scale=s_in, zero_point=zp_in),
                                 T(shape, "int16", scale=1 / 65536, zero_point=-32768)],
                     [0], [1], ("SoftmaxOptions", {"Beta": beta}))
    return make, ["SOFTMAX"]


def softmax_int16(shape, s_in, beta=1.0):
    def make(rng):
        return build("SOFTMAX", [T(shape, "int16", scale=s_in, zero_point=0),
                                 T(shape, "int16", scale=1 / 32768, zero_point=0)],
                     [0], [1], ("SoftmaxOptions", {"Beta": beta}))
    return make, ["SOFTMAX"]


def int16_ends():
    """A keyword model's ends around one FULLY_CONNECTED: int16 input -> QUANTIZE to int8 ->
    FC -> SOFTMAX to int16 -> QUANTIZE to int32 (as tflite-micro's keyword_scrambled)."""
    def make(rng):
        t = [T((1, 32), "int16", scale=6.25e-4, zero_point=0),
             T((1, 32), scale=0.06, zero_point=-128),
             T((4, 32), scale=0.01, data=rng.integers(-127, 128, (4, 32)).astype(np.int8)),
             T((4,), "int32", scale=0.0006, data=rng.integers(-2000, 2000, 4).astype(np.int32)),
             T((1, 4), scale=0.05, zero_point=3),
             T((1, 4), "int16", scale=1 / 65536, zero_point=-32768),
             T((1, 4), "int32", scale=1 / 32767, zero_point=0)]
        ops = [("QUANTIZE", [0], [1], None),
               ("FULLY_CONNECTED", [1, 2, 3], [4], ("FullyConnectedOptions", {})),
               ("SOFTMAX", [4], [5], ("SoftmaxOptions", {"Beta": 1.0})),
               ("QUANTIZE", [5], [6], None)]
        return build_graph(t, ops, [0], [6])
    return make, ["QUANTIZE", "FULLY_CONNECTED", "SOFTMAX"]


# name -> (make(rng) -> .tflite bytes, ops it must contain)
MODELS = {
    "hard_swish": hard_swish(0.05, -20, 0.035, -110),   # input -5.4..7.4, reluish exponent 3
    "hard_swish_wide_input": hard_swish(0.2, 10, 0.12, -125, shape=(2, 128)),  # exponent 5
    "hard_swish_narrow_input": hard_swish(0.004, 0, 0.003, -60),  # -0.5..0.5, exponent -1
    "leaky_relu": leaky_relu(0.2),
    "leaky_relu_same_scale": leaky_relu(0.01, s_out=0.05, zp_out=-10),
    "leaky_relu_alpha_above_one": leaky_relu(1.5, s_out=0.08, zp_out=-128),
    "leaky_relu_negative_alpha": leaky_relu(-0.5, s_in=0.02, zp_in=0, s_out=0.02, zp_out=0,
                                            shape=(2, 128)),
    "strided_slice": strided_slice((1, 8, 8, 6), (1, 3, 8, 2), [0, 1, 0, 1], [1, 7, 8, 5],
                                   [1, 2, 1, 2]),
    "strided_slice_masks_negative": strided_slice((1, 6, 5, 4), (1, 6, 2, 4), [0, 0, -1, 3],
                                                  [1, 0, 0, 0], [1, 1, -2, -1],
                                                  begin_mask=0b0011, end_mask=0b1011),
    "strided_slice_shrink_last_step": strided_slice((1, 10, 16), (1, 16), [0, -1, 0],
                                                    [1, 0, 16], [1, 1, 1], shrink=0b010),
    "sub": binary("SUB", (1, 6, 6, 4), (1, 6, 6, 4)),
    "sub_relu6_broadcast_channel": binary("SUB", (1, 5, 5, 8), (1, 1, 1, 8), act=3),
    "sub_const_broadcast_rows": binary("SUB", (2, 3, 16), (2, 1, 16), const_b=True,
                                       qy=(0.02, -40)),
    "maximum": binary("MAXIMUM", (1, 6, 6, 4), (1, 6, 6, 4)),
    "maximum_broadcast_channel": binary("MAXIMUM", (1, 5, 5, 8), (1, 1, 1, 8)),
    "minimum_const_broadcast": binary("MINIMUM", (2, 3, 16), (1, 3, 1), const_b=True),
    "minimum": binary("MINIMUM", (3, 40), (3, 40)),
    "prelu_per_channel": prelu((1, 5, 5, 8), (1, 1, 8)),
    "prelu_per_element": prelu((1, 3, 4, 6), (3, 4, 6), qa=(0.01, -100)),
    "prelu_alpha_input": prelu((2, 40), (40,), const_alpha=False),
    "sum_hw_keepdims": reduce("SUM", (1, 4, 5, 6), [1, 2], True, qy=dict(scale=0.6,
                                                                             zero_point=4)),
    "sum_last_axis": reduce("SUM", (3, 4, 10), [-1], False, qy=dict(scale=0.2, zero_point=-9)),
    "reduce_max_hw": reduce("REDUCE_MAX", (1, 4, 5, 6), [1, 2], False),
    "reduce_max_axis1_keepdims": reduce("REDUCE_MAX", (2, 7, 5), [1], True),
    "shape_pack_reshape": shape_pack_reshape(),
    "shape_cast_pack_reshape": shape_pack_reshape(cast=True),
    "slice": slice_((1, 8, 8, 6), [0, 2, 1, 0], [1, 4, 6, 3]),
    "slice_to_end_2d": slice_((10, 12), [3, 5], [-1, 4]),
    "split_channels": split((1, 4, 4, 12), 3, 3),
    "split_rows_2d": split((6, 10), 0, 2),
    "split_v_time": split_v((1, 12, 8), 1, [2, 7, 3]),
    "gather_rows": gather((10, 16), 0, [9, 0, 3, 3, 7]),
    "gather_channels_negative_axis": gather((1, 4, 4, 8), -1, [7, 1, 2, 6, 0]),
    "transpose_nhwc_to_nchw": transpose((1, 4, 5, 6), (0, 3, 1, 2)),
    "transpose_2d": transpose((7, 12), (1, 0)),
    "transpose_3d": transpose((3, 4, 5), (2, 0, 1)),
    "resize_nearest_2x": resize_nearest((1, 4, 5, 3), (8, 10)),
    "resize_nearest_align_corners": resize_nearest((1, 5, 4, 2), (9, 7), align=True),
    "resize_nearest_half_pixel_down": resize_nearest((1, 9, 7, 2), (4, 3), half=True),
    "svdf_rank1": svdf(24, 8, 1, 10),
    "svdf_rank2_relu": svdf(16, 6, 2, 5, act=1),
    "svdf_int8_state": svdf(20, 4, 1, 6, state="int8"),
    "svdf_batch2": svdf(12, 5, 1, 4, batch=2),
    "quantize_int16_to_int8": quantize("int16", "int8", 6.25e-4, 0, 0.059, -128),
    "quantize_int8_to_int16": quantize("int8", "int16", 0.05, -20, 0.002, 0),
    "quantize_int16_requant": quantize("int16", "int16", 3e-4, 5, 7e-5, -100),
    "quantize_int16_to_int32": quantize("int16", "int32", 1.5259e-5, -32768, 3.0518e-5, 0),
    "softmax_int8_to_int16": softmax_int16_out((2, 33), 0.07, 2, beta=0.5),
    "softmax_int16": softmax_int16((3, 12), 3e-4, beta=2.0),
    "int16_ends_fc": int16_ends(),
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
