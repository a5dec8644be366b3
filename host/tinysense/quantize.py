"""`tinysense quantize`: a float model to a full-integer .tflite that `convert` takes.

    from tinysense.quantize import quantize_model
    result = quantize_model("model.keras", calibration="calib.npz", out="model_int8.tflite")
    print(result.summary())

TensorFlow's converter does the quantization (int8, or "16x8": int16 activations with int8
weights), calibrated on the given windows; then the float model and the quantized one (run
in tflite-micro's interpreter, what the node is byte-exact with) are compared on held-out
windows: top-1 agreement, max and mean absolute error of the dequantized outputs. Needs the
`train` extra (TensorFlow); without it, one line says how to install it.

Inputs: a Keras model (.keras / .h5) or a SavedModel directory (a float .tflite is refused
with a line saying so: TensorFlow's converter quantizes a model's source graph). Calibration and held-out data: .npz files whose array `x`
(else `inputs`, else the only array) holds windows shaped as the model's input without the
batch dimension (or with a batch of 1 each).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import numpy as np

from tinysense.errors import TinysenseError

SCHEMES = ("int8", "16x8")
INSTALL_HINT = ("tinysense quantize needs TensorFlow (the `train` extra): pip install "
                "'tinysense[train]'; in a checkout `make train-setup`, then "
                "`.venv-train/bin/tinysense quantize ...`")


@dataclasses.dataclass
class QuantizeResult:
    out: Path
    scheme: str
    calibration_windows: int
    heldout_windows: int
    top1_agreement: float | None   # classifiers (outputs of more than one value) only
    max_abs_error: float
    mean_abs_error: float
    fit: str

    def summary(self) -> str:
        agree = ("" if self.top1_agreement is None else
                 f"top-1 agreement {self.top1_agreement:.1%}, ")
        return (f"quantized ({self.scheme}) -> {self.out}: calibrated on "
                f"{self.calibration_windows} windows; on {self.heldout_windows} held-out "
                f"windows float vs quantized: {agree}max |error| {self.max_abs_error:.4g}, "
                f"mean |error| {self.mean_abs_error:.4g}; {self.fit}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        return d


def _tf():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TensorFlow's C++ banner lines
    try:
        import tensorflow as tf
    except ImportError:
        raise TinysenseError(INSTALL_HINT) from None
    return tf


def load_windows(path: str | Path, what: str) -> np.ndarray:
    """The float windows of an .npz file (array `x`, else `inputs`, else its only array)."""
    p = Path(path)
    try:
        with np.load(p) as z:
            names = list(z.files)
            name = "x" if "x" in names else "inputs" if "inputs" in names else (
                names[0] if len(names) == 1 else None)
            if name is None:
                raise TinysenseError(f"{what} {p}: which array? name it `x` (has "
                                     f"{', '.join(names)})")
            x = np.asarray(z[name], dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise TinysenseError(f"cannot read the {what} {p}: {exc}") from None
    if x.ndim < 1 or len(x) == 0:
        raise TinysenseError(f"{what} {p}: no windows in array {name!r}")
    if not np.all(np.isfinite(x)):
        raise TinysenseError(f"{what} {p}: array {name!r} holds NaN or infinite values")
    return x


def _load_float(tf, path: Path):
    """(a callable float model: windows -> outputs, a TFLiteConverter, input shape)."""
    if path.is_dir():
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds
            raise TinysenseError(f"{path}: not a SavedModel directory ({exc})") from None
        fn = loaded.signatures.get("serving_default")
        if fn is None:
            raise TinysenseError(f"{path}: the SavedModel has no serving_default signature")
        spec = list(fn.structured_input_signature[1].values())[0]
        shape = tuple(spec.shape[1:])

        def run(x):
            return list(fn(tf.constant(x)).values())[0].numpy()

        return run, tf.lite.TFLiteConverter.from_saved_model(str(path)), shape
    if path.suffix in (".keras", ".h5"):
        try:
            model = tf.keras.models.load_model(str(path), compile=False)
        except Exception as exc:  # noqa: BLE001
            raise TinysenseError(f"{path}: not a Keras model TensorFlow can load ({exc})") \
                from None
        shape = tuple(model.input_shape[1:])
        return (lambda x: model.predict(x, verbose=0),
                tf.lite.TFLiteConverter.from_keras_model(model), shape)
    raise TinysenseError(f"{path}: give a Keras model (.keras, .h5) or a SavedModel directory")


def _shape_windows(x: np.ndarray, shape: tuple, what: str) -> np.ndarray:
    want = tuple(int(d) for d in shape)
    if x.shape[1:] == want:
        return x
    if x.ndim == len(want) + 2 and x.shape[1] == 1 and x.shape[2:] == want:
        return x[:, 0]
    raise TinysenseError(f"{what}: windows of shape {x.shape[1:]}, the model takes {want}")


def quantize_model(model: str | Path, calibration: str | Path, out: str | Path, *,
                   scheme: str = "int8", heldout: str | Path | None = None,
                   board: str | None = "ESP32_GENERIC", progress=None) -> QuantizeResult:
    """Quantize `model` calibrated on `calibration`; write `out`; report agreement and fit."""
    if scheme not in SCHEMES:
        raise TinysenseError(f"--scheme {scheme}: one of {', '.join(SCHEMES)}")
    path = Path(model)
    if not path.exists():
        raise TinysenseError(f"no model at {path}")
    if path.suffix == ".tflite":
        raise TinysenseError(f"{path}: quantizing a float .tflite needs its source model; give "
                             "the Keras model or SavedModel it was converted from")
    if not path.is_dir() and path.suffix not in (".keras", ".h5"):
        raise TinysenseError(f"{path}: give a Keras model (.keras, .h5) or a SavedModel "
                             "directory")
    say = progress or (lambda _text: None)
    calib = load_windows(calibration, "calibration data")
    held = load_windows(heldout, "held-out data") if heldout else calib
    tf = _tf()
    say(f"loading {path}")
    with contextlib.redirect_stdout(sys.stderr):
        run_float, conv, shape = _load_float(tf, path)
    calib = _shape_windows(calib, shape, "calibration data")
    held = _shape_windows(held, shape, "held-out data")

    say(f"quantizing ({scheme}) on {len(calib)} calibration windows")
    data = full_integer(conv, calib, scheme)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as exc:
        raise TinysenseError(f"cannot write {out}: {exc.strerror}") from None
    say(f"comparing float and quantized on {len(held)} held-out windows (tflite-micro)")
    with contextlib.redirect_stdout(sys.stderr):
        want = np.asarray(run_float(held), dtype=np.float64).reshape(len(held), -1)
    got = _run_quantized(data, held).reshape(len(held), -1)
    err = np.abs(want - got)
    top1 = float(np.mean(want.argmax(1) == got.argmax(1))) if want.shape[1] > 1 else None
    return QuantizeResult(out, scheme, len(calib), len(held), top1, float(err.max()),
                          float(err.mean()), _fit(out, board))


def full_integer(conv, calib: np.ndarray, scheme: str = "int8") -> bytes:
    """Run a TFLiteConverter (from_keras_model / from_saved_model) as full-integer
    quantization calibrated on float windows: int8 in, out and inside, or 16x8 (int16
    activations, in and out). The example models' training scripts use it too."""
    import tensorflow as tf

    def representative():
        for x in calib:
            yield [x[None].astype(np.float32)]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    if scheme == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        conv.inference_input_type = tf.int16
        conv.inference_output_type = tf.int16
    try:
        with contextlib.redirect_stdout(sys.stderr):   # Keras prints its export to stdout
            return conv.convert()
    except Exception as exc:  # noqa: BLE001 - the converter's errors are long and varied
        first = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        raise TinysenseError(f"TensorFlow's converter failed: {first[0][:300]}") from None


def _run_quantized(data: bytes, windows: np.ndarray) -> np.ndarray:
    """The quantized model's dequantized outputs in tflite-micro's interpreter (its input
    quantized as tflite's QUANTIZE does: round half away from zero, then clamp)."""
    from tinysense.reference.runner import Reference

    ref = Reference(data)
    g = ref.graph
    tin, tout = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    if not tin.scales or not tout.scales:
        raise TinysenseError("the converter wrote a model with a float input or output")
    info = np.iinfo(tin.numpy_dtype)
    outs = []
    for x in windows:
        v = x[None].astype(np.float32) / np.float32(tin.scales[0])
        r = np.where(v >= 0, np.floor(v + 0.5), -np.floor(-v + 0.5)) + tin.zero_points[0]
        q = np.clip(r, info.min, info.max).astype(tin.numpy_dtype)
        y = np.asarray(ref.run([q])[0], np.float64)
        outs.append((y - tout.zero_points[0]) * float(tout.scales[0]))
    return np.stack(outs)


def _fit(path: Path, board: str | None) -> str:
    """The converter's fit verdict for the board, or why it cannot convert yet."""
    if board is None:
        return "fit not checked"
    from tinysense.convert.pipeline import convert_model

    try:
        rep = convert_model(path, board).report
    except TinysenseError as exc:
        return f"convert: {str(exc).splitlines()[0]}"
    return (f"{board}: {'fits' if rep.fits else 'does NOT fit'} (heap "
            f"{rep.heap_needed:,} of {rep.heap_budget or 0:,} B)")
