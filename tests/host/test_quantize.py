"""`tinysense quantize`: a float Keras model through quantize (TensorFlow, in the train venv
`make train-setup` builds), convert and validate (byte-exact on the virtual board); and the
one line a user without TensorFlow gets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

TRAIN_PY = REPO / ".venv-train" / "bin" / "python"
# the TensorFlow tests need the train venv, which `make test` builds and `make test-fast` not
train = pytest.mark.slow


@pytest.fixture(scope="module")
def train_python() -> str:
    if not TRAIN_PY.exists():
        pytest.fail("needs the train venv: run `make train-setup` (make test does)",
                    pytrace=False)
    return str(TRAIN_PY)


def test_without_tensorflow_it_says_how_to_install_it(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    code = ("import sys; sys.modules['tensorflow'] = None\n"   # import tensorflow -> error
            "from tinysense.cli import main\n"
            f"sys.exit(main(['quantize', {str(tmp_path / 'm.keras')!r}, '-o', "
            f"{str(tmp_path / 'q.tflite')!r}, '--calibration', "
            f"{str(REPO / 'models' / 'activity' / 'heldout.npz')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "tinysense: error: tinysense quantize needs TensorFlow (the `train` extra): pip install "
        "'tinysense[train]'; in a checkout `make train-setup`, then "
        "`.venv-train/bin/tinysense quantize ...`"]


@train
def test_a_keras_model_through_quantize_convert_and_validate(train_python, tmp_path):
    work = tmp_path / "tiny"
    made = subprocess.run([train_python, str(REPO / "tests" / "train" / "tiny_keras.py"),
                           str(work)], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    out = {}
    for scheme in ("int8", "16x8"):
        q = subprocess.run(
            [train_python, "-m", "tinysense", "quantize", str(work / "model.keras"), "-o",
             str(work / f"q_{scheme}.tflite"), "--calibration", str(work / "calib.npz"),
             "--heldout", str(work / "heldout.npz"), "--scheme", scheme, "--json", "-"],
            capture_output=True, text=True, timeout=600)
        assert q.returncode == 0, q.stderr[-2000:]
        out[scheme] = json.loads(q.stdout)
        assert out[scheme]["heldout_windows"] == 120 and out[scheme]["calibration_windows"] == 200
        assert out[scheme]["top1_agreement"] >= 0.9, out[scheme]
        assert out[scheme]["max_abs_error"] < 0.2
    assert out["int8"]["fit"].startswith("ESP32_GENERIC: fits")
    from tinysense.reference.graph import read_graph

    g = read_graph(work / "q_16x8.tflite")
    assert g.tensors[g.inputs[0]].dtype == "INT16"
    from tinysense.validate.core import validate_model

    result = validate_model(work / "q_int8.tflite", target="virtual", board="ESP32_GENERIC",
                            vectors=6, progress=None)
    assert result.bit_exact and result.vectors >= 6


@train
def test_bad_inputs_are_one_line(train_python, tmp_path):
    import numpy as np

    np.savez(tmp_path / "two.npz", a=np.zeros((2, 3)), b=np.zeros(2))
    np.savez(tmp_path / "nan.npz", x=np.full((2, 3), np.nan))
    cases = [
        ([str(tmp_path / "none.keras")], "no model at"),
        ([str(REPO / "models" / "activity" / "model.tflite")], "needs its source model"),
        ([str(REPO / "README.md")], "give a Keras model"),
    ]
    for args, message in cases:
        p = subprocess.run([train_python, "-m", "tinysense", "quantize", *args, "-o",
                            str(tmp_path / "q.tflite"), "--calibration",
                            str(tmp_path / "two.npz")], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 1 and message in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
    from tinysense.errors import TinysenseError
    from tinysense.quantize import load_windows

    for name, message in (("two.npz", "which array"), ("nan.npz", "NaN")):
        with pytest.raises(TinysenseError, match=message):
            load_windows(tmp_path / name, "calibration data")
