"""Build the op-test model zoo: tiny full-integer int8 .tflite models, one per op and option.

Run with the `train` extra installed (TensorFlow), from the repository root:

    pip install -e '.[test,train]'
    python tests/ops/make_op_models.py            # writes tests/ops/*.tflite + models.json

Each model is a small tf.function with seeded random constant weights, converted by
TFLiteConverter with full-integer quantization (a seeded representative dataset, int8 input
and output unless the model exists to test QUANTIZE/DEQUANTIZE at the edges). Each result
is checked to contain the op it is named after and to run in the tflite-micro interpreter.
models.json records every model's ops and tensors so tests need no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "host"))

REPRESENTATIVE_SAMPLES = 64


@dataclass
class Spec:
    """One zoo model: the float graph, its input shapes, and what the .tflite must contain."""

    name: str
    build: object                     # (rng) -> fn(*inputs) using tf ops, constants inside
    inputs: list[tuple[int, ...]]
    expect: list[str]                 # op names that must appear in the converted model
    float_input: bool = False         # keep a float32 input (QUANTIZE float->int8 first)
    float_output: bool = False        # keep a float32 output (DEQUANTIZE last)
    per_tensor: bool = False          # per-tensor weights (disable per-channel quantization)
    input_range: tuple[float, float] | list[tuple[float, float]] = (-3.0, 3.0)  # per input
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


# --- graph builders (tf imported lazily so `--help` works without TensorFlow) -------------
def _tf():
    import tensorflow as tf
    return tf


def _w(rng, *shape, scale=0.5):
    return _tf().constant(rng.normal(0.0, scale, size=shape).astype(np.float32))


def _act(x, act):
    tf = _tf()
    if act == "relu":
        return tf.nn.relu(x)
    if act == "relu6":
        return tf.nn.relu6(x)
    return x


_PAD = {"SAME": 0, "VALID": 1}
_ACT = {None: 0, "relu": 1, "relu6": 3}


def _expects(build, op, **opts):
    """Attach the builtin options the converted op must have (checked after conversion)."""
    build.opts = {op: opts}
    return build


def fc(units, bias=True, act=None):
    def build(rng, inputs):
        tf = _tf()
        w = _w(rng, inputs[0][-1], units)
        b = _w(rng, units, scale=0.3)

        def fn(x):
            y = tf.matmul(x, w)
            if bias:
                y = y + b
            return _act(y, act)
        return fn
    return _expects(build, "FULLY_CONNECTED", fusedActivationFunction=_ACT[act])


def conv(cout, k=(3, 3), stride=1, padding="SAME", dilation=1, act=None, zero_channel=None):
    """CONV_2D; stride an int or (h, w); zero_channel: an output channel whose weights and
    bias are all zero (its per-channel scale is degenerate)."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride

    def build(rng, inputs):
        tf = _tf()
        w = _w(rng, k[0], k[1], inputs[0][-1], cout, scale=0.4)
        b = _w(rng, cout, scale=0.2)
        if zero_channel is not None:
            mask = np.ones(cout, np.float32)
            mask[zero_channel] = 0.0
            w, b = w * mask, b * mask

        def fn(x):
            y = tf.nn.conv2d(x, w, strides=[1, sh, sw, 1], padding=padding, dilations=dilation)
            return _act(tf.nn.bias_add(y, b), act)
        return fn
    return _expects(build, "CONV_2D", strideH=sh, strideW=sw, padding=_PAD[padding],
                    dilationHFactor=dilation, dilationWFactor=dilation,
                    fusedActivationFunction=_ACT[act])


def dwconv(mult=1, k=(3, 3), stride=1, padding="SAME", dilation=1, act=None):
    def build(rng, inputs):
        tf = _tf()
        cin = inputs[0][-1]
        w = _w(rng, k[0], k[1], cin, mult, scale=0.4)
        b = _w(rng, cin * mult, scale=0.2)

        def fn(x):
            y = tf.nn.depthwise_conv2d(x, w, strides=[1, stride, stride, 1], padding=padding,
                                       dilations=[dilation, dilation])
            return _act(tf.nn.bias_add(y, b), act)
        return fn
    return _expects(build, "DEPTHWISE_CONV_2D", strideH=stride, strideW=stride,
                    padding=_PAD[padding], dilationHFactor=dilation, dilationWFactor=dilation,
                    depthMultiplier=mult, fusedActivationFunction=_ACT[act])


def pool(kind, size=2, stride=2, padding="VALID"):
    def build(rng, inputs):
        tf = _tf()
        op = tf.nn.avg_pool2d if kind == "avg" else tf.nn.max_pool2d
        return lambda x: op(x, ksize=size, strides=stride, padding=padding)
    return _expects(build, "AVERAGE_POOL_2D" if kind == "avg" else "MAX_POOL_2D",
                    filterHeight=size, filterWidth=size, strideH=stride, strideW=stride,
                    padding=_PAD[padding])


def mean(axis, keepdims):
    def build(rng, inputs):
        tf = _tf()
        return lambda x: tf.reduce_mean(x, axis=axis, keepdims=keepdims)
    return _expects(build, "MEAN", keepDims=keepdims)


def binary(kind, act=None, const_shape=None):
    """ADD/MUL of two graph inputs, or of an input and a constant of const_shape."""
    def build(rng, inputs):
        tf = _tf()
        op = tf.add if kind == "add" else tf.multiply
        if const_shape is not None:
            c = _w(rng, *const_shape, scale=1.0)
            return lambda x: _act(op(x, c), act)
        return lambda x, y: _act(op(x, y), act)
    return _expects(build, kind.upper(), fusedActivationFunction=_ACT[act])


def concat(axis, n_inputs=2):
    def build(rng, inputs):
        tf = _tf()
        if n_inputs == 1:   # concatenate the input with a scaled copy: different scales
            return lambda x: tf.concat([x, x * 2.5], axis=axis)
        return lambda *xs: tf.concat(list(xs), axis=axis)
    return build


def reshape(shape):
    def build(rng, inputs):
        tf = _tf()
        return lambda x: tf.reshape(x, shape)
    return build


def pad(paddings, value=0.0):
    """PAD, or PADV2 when the pad value is not zero."""
    def build(rng, inputs):
        tf = _tf()
        return lambda x: tf.pad(x, paddings, constant_values=value)
    return build


def unary(kind, beta=1.0):
    def build(rng, inputs):
        tf = _tf()
        ops = {"softmax": lambda x: tf.nn.softmax(x * beta if beta != 1.0 else x),
               "logistic": tf.sigmoid, "tanh": tf.tanh,
               "relu": tf.nn.relu, "relu6": tf.nn.relu6}
        return ops[kind]
    return build


def requantize_logistic(rng, inputs):
    """LOGISTIC's fixed output scale differs from the concatenation's: the converter inserts a
    QUANTIZE int8->int8 (requantize) between them."""
    tf = _tf()
    return lambda x: tf.concat([tf.sigmoid(x), x], axis=-1)


def requantize_tanh_mul(rng, inputs):
    """RELU, MUL by a constant, TANH, and a requantizing QUANTIZE that changes the zero point."""
    tf = _tf()
    return lambda x: tf.concat([tf.tanh(x), tf.nn.relu(x) * 4.0], axis=-1)


def mini_net(rng, inputs):
    """A small net mixing ops, so tensors are reused across ops in the arena."""
    tf = _tf()
    w1 = _w(rng, 3, 3, inputs[0][-1], 8, scale=0.4)
    b1 = _w(rng, 8, scale=0.2)
    wd = _w(rng, 3, 3, 8, 1, scale=0.4)
    bd = _w(rng, 8, scale=0.2)
    w2 = _w(rng, 1, 1, 8, 6, scale=0.4)
    b2 = _w(rng, 6, scale=0.2)
    wf = _w(rng, 6, 4, scale=0.5)
    bf = _w(rng, 4, scale=0.2)

    def fn(x):
        y = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w1, 2, "SAME"), b1))
        z = tf.nn.relu6(tf.nn.bias_add(
            tf.nn.depthwise_conv2d(y, wd, [1, 1, 1, 1], "SAME"), bd))
        y = tf.nn.relu(y + z)
        y = tf.nn.bias_add(tf.nn.conv2d(y, w2, 1, "VALID"), b2)
        y = tf.reduce_mean(y, axis=[1, 2])
        return tf.nn.softmax(tf.matmul(y, wf) + bf)
    return fn


IMG = (1, 8, 8, 3)

SPECS = [
    # FULLY_CONNECTED: per-tensor weights (tflite-micro's default for dense layers here)
    Spec("fully_connected", fc(5), [(1, 12)], ["FULLY_CONNECTED"], per_tensor=True),
    Spec("fully_connected_no_bias", fc(7, bias=False), [(1, 9)], ["FULLY_CONNECTED"],
         per_tensor=True),
    Spec("fully_connected_relu", fc(6, act="relu"), [(1, 10)], ["FULLY_CONNECTED"],
         per_tensor=True),
    Spec("fully_connected_relu6", fc(6, act="relu6"), [(1, 10)], ["FULLY_CONNECTED"],
         per_tensor=True),
    Spec("fully_connected_batch3", fc(4), [(3, 11)], ["FULLY_CONNECTED"], per_tensor=True),
    Spec("fully_connected_positive_input", fc(6, act="relu"), [(1, 13)], ["FULLY_CONNECTED"],
         per_tensor=True, input_range=(0.0, 6.0)),
    # CONV_2D: per-channel weights unless named per_tensor
    Spec("conv_2d_same", conv(4), [IMG], ["CONV_2D"]),
    Spec("conv_2d_valid", conv(4, padding="VALID"), [IMG], ["CONV_2D"]),
    Spec("conv_2d_stride2_same", conv(5, stride=2), [(1, 9, 9, 3)], ["CONV_2D"]),
    Spec("conv_2d_stride2_valid", conv(5, stride=2, padding="VALID"), [(1, 9, 9, 3)],
         ["CONV_2D"]),
    Spec("conv_2d_dilation2", conv(4, dilation=2), [IMG], ["CONV_2D"]),
    Spec("conv_2d_dilation2_valid", conv(3, dilation=2, padding="VALID"), [(1, 9, 8, 2)],
         ["CONV_2D"]),
    Spec("conv_2d_relu", conv(4, act="relu"), [IMG], ["CONV_2D"]),
    Spec("conv_2d_relu6", conv(4, act="relu6"), [IMG], ["CONV_2D"]),
    Spec("conv_2d_1x1", conv(7, k=(1, 1)), [(1, 6, 6, 5)], ["CONV_2D"]),
    Spec("conv_2d_odd_channels", conv(7, padding="SAME"), [(1, 7, 5, 5)], ["CONV_2D"]),
    Spec("conv_2d_5x1", conv(3, k=(5, 1)), [(1, 10, 4, 2)], ["CONV_2D"]),
    Spec("conv_2d_5x1_stride2_valid", conv(3, k=(5, 1), stride=2, padding="VALID"),
         [(1, 11, 4, 3)], ["CONV_2D"]),
    Spec("conv_2d_per_tensor", conv(4), [IMG], ["CONV_2D"], per_tensor=True),
    Spec("conv_2d_stride_2x1", conv(4, stride=(2, 1)), [(1, 9, 7, 3)], ["CONV_2D"]),
    Spec("conv_2d_zero_channel", conv(5, zero_channel=2), [IMG], ["CONV_2D"]),
    # DEPTHWISE_CONV_2D
    Spec("depthwise_conv_2d_same", dwconv(), [IMG], ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_valid", dwconv(padding="VALID"), [IMG], ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_mult2", dwconv(mult=2), [IMG], ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_mult2_valid", dwconv(mult=2, padding="VALID"), [(1, 7, 6, 3)],
         ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_stride2", dwconv(stride=2), [(1, 9, 9, 4)], ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_stride2_valid", dwconv(stride=2, padding="VALID"), [(1, 9, 9, 4)],
         ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_dilation2", dwconv(dilation=2), [(1, 9, 9, 3)],
         ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_relu6", dwconv(act="relu6"), [IMG], ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_relu_5x1", dwconv(k=(5, 1), act="relu"), [(1, 10, 4, 5)],
         ["DEPTHWISE_CONV_2D"]),
    Spec("depthwise_conv_2d_1ch_mult8_stride2", dwconv(mult=8, stride=2), [(1, 9, 7, 1)],
         ["DEPTHWISE_CONV_2D"]),
    # pooling
    Spec("average_pool_2d_valid", pool("avg"), [IMG], ["AVERAGE_POOL_2D"]),
    Spec("average_pool_2d_same_3x3_s2", pool("avg", 3, 2, "SAME"), [(1, 9, 8, 3)],
         ["AVERAGE_POOL_2D"]),
    Spec("average_pool_2d_same_3x3_s1", pool("avg", 3, 1, "SAME"), [(1, 5, 5, 2)],
         ["AVERAGE_POOL_2D"]),
    Spec("max_pool_2d_valid", pool("max"), [IMG], ["MAX_POOL_2D"]),
    Spec("max_pool_2d_same_3x3_s2", pool("max", 3, 2, "SAME"), [(1, 9, 8, 3)],
         ["MAX_POOL_2D"]),
    Spec("max_pool_2d_valid_3x3_s1", pool("max", 3, 1, "VALID"), [(1, 6, 5, 4)],
         ["MAX_POOL_2D"]),
    # MEAN
    Spec("mean_hw_keepdims", mean([1, 2], True), [IMG], ["MEAN"]),
    Spec("mean_hw", mean([1, 2], False), [IMG], ["MEAN"]),
    Spec("mean_last_axis", mean([-1], False), [(1, 4, 5, 6)], ["MEAN"]),
    Spec("mean_axis1_keepdims", mean([1], True), [(1, 6, 4, 3)], ["MEAN"]),
    # ADD / MUL
    Spec("add", binary("add"), [IMG, IMG], ["ADD"], input_range=[(-3.0, 3.0), (-1.0, 0.5)]),
    Spec("add_relu", binary("add", act="relu"), [IMG, IMG], ["ADD"],
         input_range=[(-3.0, 3.0), (-6.0, 1.0)]),
    Spec("add_broadcast_channel", binary("add"), [IMG, (1, 1, 1, 3)], ["ADD"],
         input_range=[(-3.0, 3.0), (-0.2, 0.4)]),
    Spec("add_broadcast_const", binary("add", const_shape=(1, 1, 8, 3)), [IMG], ["ADD"]),
    Spec("mul", binary("mul"), [IMG, IMG], ["MUL"], input_range=[(-3.0, 3.0), (-0.5, 2.0)]),
    Spec("mul_broadcast_channel", binary("mul"), [IMG, (1, 1, 1, 3)], ["MUL"],
         input_range=[(-3.0, 3.0), (0.0, 4.0)]),
    Spec("mul_const", binary("mul", const_shape=(3,)), [IMG], ["MUL"]),
    # CONCATENATION
    Spec("concatenation_channels", concat(-1), [IMG, (1, 8, 8, 2)], ["CONCATENATION"]),
    Spec("concatenation_width", concat(2), [IMG, (1, 8, 3, 3)], ["CONCATENATION"]),
    Spec("concatenation_height", concat(1), [IMG, (1, 2, 8, 3)], ["CONCATENATION"]),
    Spec("concatenation_2d_three", concat(1, 3), [(1, 5), (1, 3), (1, 4)],
         ["CONCATENATION"]),
    Spec("concatenation_requantize", concat(-1, 1), [(1, 4, 4, 3)], ["CONCATENATION"]),
    # shape ops
    Spec("reshape", reshape([1, 48]), [(1, 4, 4, 3)], ["RESHAPE"]),
    Spec("reshape_4d", reshape([1, 2, 6, 4]), [(1, 4, 4, 3)], ["RESHAPE"]),
    Spec("pad", pad([[0, 0], [1, 2], [2, 1], [0, 0]]), [(1, 5, 5, 3)], ["PAD"]),
    Spec("pad_channels", pad([[0, 0], [0, 0], [1, 1], [2, 3]]), [(1, 3, 4, 2)], ["PAD"]),
    Spec("pad_v2_value", pad([[0, 0], [1, 1], [0, 2], [0, 0]], value=1.5), [(1, 4, 4, 3)],
         ["PADV2"]),
    # activations
    Spec("softmax", unary("softmax"), [(1, 10)], ["SOFTMAX"]),
    Spec("softmax_4d", unary("softmax"), [(1, 3, 4, 6)], ["SOFTMAX"]),
    Spec("softmax_wide_range", unary("softmax"), [(1, 16)], ["SOFTMAX"],
         input_range=(-20.0, 20.0)),
    Spec("logistic", unary("logistic"), [(1, 32)], ["LOGISTIC"], input_range=(-8.0, 8.0)),
    Spec("tanh", unary("tanh"), [(1, 32)], ["TANH"], input_range=(-4.0, 4.0)),
    Spec("relu", unary("relu"), [(1, 4, 4, 3)], ["RELU"]),
    Spec("relu6", unary("relu6"), [(1, 4, 4, 3)], ["RELU6"], input_range=(-2.0, 9.0)),
    # quantize / dequantize at the edges and inside
    Spec("quantize_float_input", fc(5), [(1, 12)], ["QUANTIZE", "FULLY_CONNECTED"],
         float_input=True, per_tensor=True),
    Spec("dequantize_float_output", fc(5), [(1, 12)], ["FULLY_CONNECTED", "DEQUANTIZE"],
         float_output=True, per_tensor=True),
    Spec("quantize_dequantize_float_io", conv(3), [(1, 5, 5, 2)],
         ["QUANTIZE", "CONV_2D", "DEQUANTIZE"], float_input=True, float_output=True),
    Spec("quantize_requantize", requantize_logistic, [(1, 8)],
         ["LOGISTIC", "QUANTIZE", "CONCATENATION"]),
    Spec("quantize_requantize_zero_point", requantize_tanh_mul, [(1, 8)],
         ["RELU", "MUL", "TANH", "QUANTIZE", "CONCATENATION"]),
    # several ops together
    Spec("mini_net", mini_net, [(1, 10, 10, 2)],
         ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]),
]


def _ranges(spec: Spec) -> list[tuple[float, float]]:
    if isinstance(spec.input_range, list):
        return spec.input_range
    return [spec.input_range] * len(spec.inputs)


def convert(spec: Spec) -> bytes:
    """Full-integer quantization of spec's float graph with TFLiteConverter."""
    tf = _tf()
    rng = np.random.default_rng(_seed(spec.name))
    fn = spec.build(rng, spec.inputs)
    sig = [tf.TensorSpec(s, tf.float32) for s in spec.inputs]
    concrete = tf.function(fn, input_signature=sig).get_concrete_function()
    ranges = _ranges(spec)
    data_rng = np.random.default_rng(_seed(spec.name) + 1)

    def representative():
        for i in range(REPRESENTATIVE_SAMPLES):
            if i < 2:   # pin the calibrated range to the declared one
                yield [np.full(s, r[i], np.float32) for s, r in zip(spec.inputs, ranges)]
            else:
                yield [data_rng.uniform(*r, size=s).astype(np.float32)
                       for s, r in zip(spec.inputs, ranges)]

    conv_ = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    conv_.optimizations = [tf.lite.Optimize.DEFAULT]
    conv_.representative_dataset = representative
    conv_.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv_.inference_input_type = tf.float32 if spec.float_input else tf.int8
    conv_.inference_output_type = tf.float32 if spec.float_output else tf.int8
    if spec.per_tensor:
        conv_._experimental_disable_per_channel = True
        conv_._experimental_disable_per_channel_quantization_for_dense_layers = True
    return conv_.convert()


def _options(buf: bytes) -> list[dict]:
    """The builtin options of every op (plain values only), via tflite-micro's schema."""
    from tflite_micro.python.tflite_micro import runtime

    model = runtime.convert_bytearray_to_object(buf)
    out = []
    for op in model.subgraphs[0].operators:
        opts = vars(op.builtinOptions) if op.builtinOptions is not None else {}
        out.append({k: v for k, v in opts.items() if isinstance(v, (bool, int, float))})
    return out


def describe(name: str, buf: bytes, spec: Spec) -> dict:
    """What tests need to know about a converted model, checked against tflite-micro."""
    from tinysense import reference

    graph = reference.read_graph(buf)
    ops = [op.name for op in graph.ops]
    missing = [e for e in spec.expect if e not in ops]
    if missing:
        raise SystemExit(f"{name}: converted model lacks {missing}; it has {ops}")
    options = _options(buf)
    for op_name, want in getattr(spec.build, "opts", {}).items():
        got = next((o for n, o in zip(ops, options) if n == op_name), None)
        wrong = {k: (v, (got or {}).get(k)) for k, v in want.items()
                 if (got or {}).get(k) != v}
        if wrong:
            raise SystemExit(f"{name}: {op_name} options differ (want, got): {wrong}")
    ref = reference.Reference(buf)
    rng = np.random.default_rng(7)
    inputs = []
    for det, r in zip(ref.input_details, _ranges(spec)):
        shape = tuple(int(d) for d in det["shape"])
        if np.issubdtype(det["dtype"], np.integer):
            inputs.append(rng.integers(-128, 128, size=shape).astype(det["dtype"]))
        else:
            inputs.append(rng.uniform(*r, size=shape).astype(det["dtype"]))
    outs = ref.run(inputs)
    per_channel = any(len(t.scales) > 1 for t in graph.tensors)

    def tdesc(i):
        t = graph.tensors[i]
        return {"shape": list(t.shape), "dtype": t.dtype, "scale": t.scales[0] if t.scales
                else None, "zero_point": t.zero_points[0] if t.zero_points else None}

    return {
        "file": f"{name}.tflite", "ops": ops, "options": options, "per_channel": per_channel,
        "inputs": [tdesc(i) for i in graph.inputs], "outputs": [tdesc(i) for i in graph.outputs],
        "arena_bytes": ref.arena_bytes(), "float_input_ranges": [list(r) for r in _ranges(spec)],
        "output_checksum": zlib.crc32(b"".join(o.tobytes() for o in outs)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these models (default: all)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    import tensorflow as tf

    manifest_path = args.out / "models.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.pop("_meta", None)
    specs = [s for s in SPECS if not args.names or s.name in args.names]
    for n, spec in enumerate(specs, 1):
        buf = convert(spec)
        info = describe(spec.name, buf, spec)
        (args.out / f"{spec.name}.tflite").write_bytes(buf)
        manifest[spec.name] = info
        print(f"[{n}/{len(specs)}] {spec.name}: {len(buf)} bytes, ops {' '.join(info['ops'])}",
              flush=True)
    meta = {"tensorflow": tf.__version__, "numpy": np.__version__,
            "seed": "zlib.crc32(name) for weights, +1 for the representative data",
            "representative_samples": REPRESENTATIVE_SAMPLES}
    ordered = {"_meta": meta, **{k: manifest[k] for k in sorted(manifest)}}
    manifest_path.write_text(json.dumps(ordered, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
