"""The committed example models: meta.json matches the .tflite, and the tflite-micro
interpreter reproduces the committed test vectors and the reported held-out metrics.

No TensorFlow here: the reference is PyPI tflite-micro, as everywhere in tinysense.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from tinysense.formats.recording import read_recordings
from tinysense.reference import read_graph

MODELS = Path(__file__).resolve().parents[2] / "models"
NAMES = ["activity", "energy", "anomaly"]
ENGINE_OPS = {
    "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "MEAN", "ADD", "MUL", "CONCATENATION", "RESHAPE", "PAD", "SOFTMAX", "LOGISTIC", "TANH",
    "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE",
}
# ESP32_GENERIC: ~112 KB heap incl. MicroPython's own use; the model must stay well below.
WEIGHTS_PLUS_ARENA_MAX = 40_000


def _meta(name: str) -> dict:
    return json.loads((MODELS / name / "meta.json").read_text())


def _tflite(name: str) -> bytes:
    return (MODELS / name / _meta(name)["tflite"]).read_bytes()


def _run_all(model: bytes, inputs: np.ndarray) -> np.ndarray:
    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    shape = interp.get_input_details(0)["shape"]
    outs = []
    for x in inputs:
        interp.set_input(x.reshape(shape).astype(np.int8), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs)


@pytest.mark.parametrize("name", NAMES)
def test_meta_matches_tflite(name):
    meta, model = _meta(name), _tflite(name)
    assert meta["tflite_sha256"] == hashlib.sha256(model).hexdigest()
    assert meta["tflite_bytes"] == len(model)
    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    for key, det in (("input", interp.get_input_details(0)),
                     ("output", interp.get_output_details(0))):
        scales = det["quantization_parameters"]["scales"]
        zps = det["quantization_parameters"]["zero_points"]
        assert list(det["shape"]) == meta[key]["shape"], key
        assert det["dtype"] == np.int8 and meta[key]["dtype"] == "int8", key
        assert len(scales) == 1 and float(scales[0]) == meta[key]["scale"], key
        assert int(zps[0]) == meta[key]["zero_point"], key
    ops = [op.name for op in read_graph(model).ops]
    assert ops == meta["ops"]
    assert set(ops) <= ENGINE_OPS, sorted(set(ops) - ENGINE_OPS)
    assert meta["made_by"]["tensorflow"] and meta["made_by"]["seed"] is not None


@pytest.mark.parametrize("name", NAMES)
def test_models_fit_the_esp32_generic_budget(name):
    meta = _meta(name)
    assert meta["tflite_bytes"] + meta["arena_bytes_tflm"] < WEIGHTS_PLUS_ARENA_MAX


@pytest.mark.parametrize("name", NAMES)
def test_vectors_reproduce_byte_exact(name):
    vec = np.load(MODELS / name / "test_vectors.npz")
    assert vec["inputs"].dtype == np.int8 and vec["outputs"].dtype == np.int8
    assert len(vec["inputs"]) >= 12
    got = _run_all(_tflite(name), vec["inputs"])
    np.testing.assert_array_equal(got, vec["outputs"])


@pytest.mark.parametrize("name", ["activity", "energy"])
def test_classifier_accuracy_reproduces(name):
    meta = _meta(name)
    held = np.load(MODELS / name / "heldout.npz")
    assert len(held["inputs"]) == meta["metrics"]["n_windows"]
    out = _run_all(_tflite(name), held["inputs"])
    np.testing.assert_array_equal(out, held["outputs"])
    acc = float((out.argmax(1) == held["labels"]).mean())
    assert round(acc, 4) == meta["metrics"]["int8_accuracy"]


def _recon_error(q_in, q_out, zp_in, zp_out, mul, shift):
    """numpy restatement of features.recon_error (docs/models.md), independent of it."""
    x = q_in.astype(np.int64) - zp_in
    o = ((q_out.astype(np.int64) - zp_out) * mul + (1 << (shift - 1))) >> shift
    return ((x - o) ** 2).sum(axis=1)


def _auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def test_anomaly_auc_and_threshold_reproduce():
    meta = _meta("anomaly")
    held = np.load(MODELS / "anomaly" / "heldout.npz")
    out = _run_all(_tflite("anomaly"), held["inputs"])
    np.testing.assert_array_equal(out, held["outputs"])
    a = meta["score"]["args"]
    assert a["zp_in"] == meta["input"]["zero_point"]
    assert a["zp_out"] == meta["output"]["zero_point"]
    assert a["mul"] == round(meta["output"]["scale"] / meta["input"]["scale"] * 2 ** a["shift"])
    scores = _recon_error(held["inputs"], out, a["zp_in"], a["zp_out"], a["mul"], a["shift"])
    np.testing.assert_array_equal(scores, held["scores"])
    labels = held["labels"]
    m = meta["metrics"]
    assert round(_auc(scores, labels), 4) == m["int8_auc"]
    flag = scores > meta["score"]["threshold"]
    assert round(float(flag[labels == 1].mean()), 4) == m["int8_tpr_at_threshold"]
    assert round(float(flag[labels == 0].mean()), 4) == m["int8_fpr_at_threshold"]
    assert m["int8_auc"] > 0.95


@pytest.mark.parametrize("name, tsrc", [("activity", "heldout.tsrc"),
                                        ("energy", "heldout.tsrc"),
                                        ("anomaly", "demo.tsrc")])
def test_recordings_match_meta(name, tsrc):
    meta = _meta(name)
    path = MODELS / name / tsrc
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["files"]["recordings_sha256"]
    rec = read_recordings(path)
    if name != "anomaly":
        assert rec.labels == meta["labels"]
        held = np.load(MODELS / name / "heldout.npz")
        labels = [lab for lab, _ in rec.items]
        per_window = (np.array(labels)[held["recording"]] if "recording" in held
                      else np.array(labels))
        np.testing.assert_array_equal(per_window, held["labels"])
    if name == "activity":
        assert rec.rate_hz == meta["sensor"]["rate_hz"] and rec.n_channels == 6
        assert len(rec.items) == meta["dataset"]["recordings"]["test"]
