"""Shared training helpers: seeds, the device's feature code, int8 conversion, meta.json.

Training scripts import the node's own preprocessing, firmware/tsnode/sensors/features.py,
by path (FEATURES below). This is the one place host-side code reads firmware code: the
models must be trained on exactly the numbers the node computes (emlearn's practice), so
the training calls that code instead of re-implementing it. Nothing under host/ does this.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent
REPO = MODELS_DIR.parent
sys.path.insert(0, str(REPO / "firmware"))
from tsnode.sensors import features as FEATURES  # noqa: E402, F401 (the device code)
from tsnode.sensors import pipeline as PIPELINE  # noqa: E402

sys.path.pop(0)

# Ops the tinysense engine implements (docs/engine.md); a model using others is rejected.
ENGINE_OPS = {
    "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "MEAN", "ADD", "MUL", "CONCATENATION", "RESHAPE", "PAD", "SOFTMAX", "LOGISTIC", "TANH",
    "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE",
}

_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress line with the seconds since the script started."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


def seed_everything(seed: int):
    """Fix every seed and make TensorFlow deterministic; returns the tf module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["PYTHONHASHSEED"] = str(seed)
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    return tf


def node_inputs(pre: dict, recordings) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs exactly as the node makes them: tsnode.sensors.pipeline.Pipeline(pre)
    fed every frame of every recording, reset at each recording's start.

    recordings: arrays of shape (frames, channels). Returns (int8 inputs (windows, n),
    index of the recording each window came from).
    """
    p = PIPELINE.Pipeline(pre)
    rows, owner = [], []
    for r, rec in enumerate(recordings):
        p.reset()
        for frame in np.asarray(rec).reshape(len(rec), -1).tolist():
            if p.push(frame):
                rows.append(np.frombuffer(bytes(p.input), np.int8))
                owner.append(r)
    return np.stack(rows), np.array(owner)


def convert_int8(model, representative: np.ndarray) -> bytes:
    """Full-integer quantize a Keras model: int8 weights, activations, input and output.

    `representative` is the float calibration data (its min/max sets the input scale).
    """
    import tensorflow as tf

    from tinysense.quantize import full_integer   # what `tinysense quantize` runs

    return full_integer(tf.lite.TFLiteConverter.from_keras_model(model), representative)


def grid_calibration(data: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Calibration data plus one sample spanning the int8 grid, so the converter picks
    exactly (or within float rounding) the input scale and zero point we designed for."""
    span = np.full((1,) + data.shape[1:], (-128 - zero_point) * scale, np.float32)
    span.reshape(-1)[1::2] = (127 - zero_point) * scale
    return np.concatenate([span, data.astype(np.float32)])


def check_ops(model: bytes) -> list[str]:
    """The model's op names in order; raises if one is outside ENGINE_OPS."""
    from tinysense.reference import read_graph

    ops = [op.name for op in read_graph(model).ops]
    bad = sorted(set(ops) - ENGINE_OPS)
    if bad:
        raise SystemExit(f"converted model uses ops the engine lacks: {bad} (ops: {ops})")
    return ops


def io_quant(model: bytes) -> dict:
    """Input/output tensor shape, dtype, scale and zero point from the .tflite."""
    from tinysense.reference import read_graph

    g = read_graph(model)
    out = {}
    for key, idx in (("input", g.inputs[0]), ("output", g.outputs[0])):
        t = g.tensors[idx]
        out[key] = {"shape": list(t.shape), "dtype": t.dtype.lower(),
                    "scale": float(t.scales[0]), "zero_point": int(t.zero_points[0])}
    return out


def run_tflm(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the tflite-micro interpreter (the reference) for int8 inputs, one by one."""
    from tinysense.reference import Reference

    ref = Reference(model)
    shape = ref.input_details[0]["shape"]
    return np.stack([ref.run(x.reshape(shape).astype(np.int8))[0].reshape(-1)
                     for x in inputs])


def fit_logged(tf, model, x, y, *, lr: float, loss: str, epochs: int, batch_size: int,
               every: int, note: str = "") -> None:
    """Compile with Adam(lr) (plus accuracy for a classifier), then fit with a progress line
    every `every` epochs."""
    classifier = loss == "sparse_categorical_crossentropy"
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=loss,
                  **({"metrics": ["accuracy"]} if classifier else {}))
    log(f"training {model.count_params()} parameters for {epochs} epochs{note}")

    def progress(e, logs):
        if (e + 1) % every == 0:
            log(f"epoch {e + 1}: loss {logs['loss']:.3f} acc {logs['accuracy']:.3f}"
                if classifier else f"epoch {e + 1}: loss {logs['loss']:.4f}")

    cb = tf.keras.callbacks.LambdaCallback(on_epoch_end=progress)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
              callbacks=[cb])


def convert_checked(model, x_train: np.ndarray, scale: float, zero_point: int):
    """convert_int8 calibrated on x_train plus the designed input grid, then check_ops and
    io_quant: returns (tflite bytes, op names, io_quant dict)."""
    tfl = convert_int8(model, grid_calibration(x_train, scale, zero_point))
    return tfl, check_ops(tfl), io_quant(tfl)


def classifier_eval(model, tfl: bytes, x_test, q_test, y_test, q_train, y_train):
    """Float and int8 (tflite-micro) accuracy of a classifier on the held-out set.

    Returns (tflite-micro outputs for q_test, int8 predictions, {float_accuracy,
    int8_accuracy, int8_float_agreement, int8_train_accuracy} as unrounded floats)."""
    float_pred = model.predict(x_test, verbose=0).argmax(1)
    out_test = run_tflm(tfl, q_test)
    int8_pred = out_test.argmax(1)
    train_pred = run_tflm(tfl, q_train).argmax(1)
    return out_test, int8_pred, {
        "float_accuracy": float((float_pred == y_test).mean()),
        "int8_accuracy": float((int8_pred == y_test).mean()),
        "int8_float_agreement": float((float_pred == int8_pred).mean()),
        "int8_train_accuracy": float((train_pred == y_train).mean()),
    }


def model_fields(tfl: bytes, io: dict, ops: list[str], model) -> dict:
    """meta.json's fields describing the .tflite (same keys and order for every model)."""
    return {
        "input": io["input"],
        "output": io["output"],
        "tflite": "model.tflite",
        "tflite_sha256": sha256(tfl),
        "tflite_bytes": len(tfl),
        "arena_bytes_tflm": arena_bytes(tfl),
        "parameters": int(model.count_params()),
        "ops": ops,
    }


def write_test_vectors(path: Path, tfl: bytes, held_out: np.ndarray, seed: int) -> None:
    """test_vectors.npz: 12 evenly spaced held-out inputs plus all -128, all 127 and two
    random inputs (seeded), with tflite-micro's outputs for each."""
    pick = np.linspace(0, len(held_out) - 1, 12).astype(int)
    rng = np.random.default_rng(seed)
    n_in = held_out.shape[1]
    extra = np.stack([np.full(n_in, -128, np.int8), np.full(n_in, 127, np.int8),
                      rng.integers(-128, 128, n_in, dtype=np.int8),
                      rng.integers(-128, 128, n_in, dtype=np.int8)])
    vec_in = np.concatenate([held_out[pick], extra])
    save_npz(path, inputs=vec_in, outputs=run_tflm(tfl, vec_in))


def test_vectors_note(what: str) -> str:
    """meta.json's description of the file write_test_vectors made."""
    return ("test_vectors.npz: inputs (int8) -> outputs (int8) from tflite-micro; "
            f"12 held-out {what} + all -128, all 127, 2 random")


def arena_bytes(model: bytes) -> int:
    from tinysense.reference import arena_bytes as _arena

    return int(_arena(model))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def provenance(script: str, seed: int, seconds: float) -> dict:
    import tensorflow as tf

    return {"script": script, "command": f"python {script}", "seed": seed,
            "tensorflow": tf.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "train_seconds": round(seconds, 1),
            "converter": "TFLiteConverter full-integer (TFLITE_BUILTINS_INT8, int8 in/out)",
            "reference": "tflite-micro Python interpreter (PyPI tflite-micro)"}


def write_meta(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")


def save_npz(path: Path, **arrays) -> None:
    """An .npz (np.load reads it) with fixed zip timestamps, so reruns give identical bytes."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
