"""Train the energy model: an int8 MLP on ItalyPowerDemand (a day's 24 hourly loads -> season).

Run: python models/energy/train.py   (needs the `train` extra: TensorFlow, sktime)
Writes model.tflite, meta.json, test_vectors.npz, heldout.npz and heldout.tsrc here.

ItalyPowerDemand (Keogh et al., UCR archive): Italian electrical power demand in 1997, one
series per day of 24 hourly readings; class 1 = October..March, class 2 = April..September.
The node standardizes each day by its own mean and std (features.zscore_quantize), so the
meter's units and scale do not matter; samples reach it as int16 counts (here the
dataset's values x 1000).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import _common as C  # noqa: E402

F = C.FEATURES
SEED = 11
WINDOW = 24           # one day of hourly readings
INPUT_SCALE = 4 / 128  # int8 codes span +-4 standard deviations
INPUT_ZP = 0
EPOCHS = 300
COUNTS_PER_UNIT = 1000
LABEL_NAMES = {"1": "oct-mar", "2": "apr-sep"}


def preprocessing(scale: float, zp: int) -> dict:
    """meta.json's preprocessing section; tsnode.sensors.pipeline.Pipeline runs it."""
    return {
        "kind": "zscore_window", "n_channels": 1, "window": WINDOW, "stride": WINDOW,
        "windows": "one window per day (recording)",
        "layout": "(1, 24): the day's readings in time order",
        "function": "tsnode.sensors.features.zscore_quantize",
        "zscore": {"inv_scale_q8": int(round(256 / scale)), "zero_point": zp},
        "normalization": "each day by its own mean and population std (integer "
                         "isqrt), then / input scale + zero point",
    }


def quantize(days: np.ndarray, scale: float, zp: int) -> np.ndarray:
    q, owner = C.node_inputs(preprocessing(scale, zp), [d[:, None] for d in days])
    assert list(owner) == list(range(len(days)))
    return q


def build(tf):
    L = tf.keras.layers
    return tf.keras.Sequential([
        L.Input((WINDOW,)),
        L.Dense(16, activation="relu"),
        L.Dense(8, activation="relu"),
        L.Dense(2),
        L.Softmax(),
    ])


def main() -> None:
    t_start = time.monotonic()
    tf = C.seed_everything(SEED)
    from sktime.datasets import load_italy_power_demand

    C.log("loading ItalyPowerDemand (sktime's bundled files)")
    days, ys = {}, {}
    for split in ("train", "test"):
        x, y = load_italy_power_demand(split=split, return_type="numpy3D")
        days[split] = np.clip(np.rint(x[:, 0, :] * COUNTS_PER_UNIT), -32768, 32767
                              ).astype(np.int16)
        ys[split] = np.asarray(y)
    keys = sorted(set(ys["train"]))
    labels = [LABEL_NAMES[k] for k in keys]
    y_idx = {s: np.array([keys.index(v) for v in ys[s]]) for s in ys}
    C.log(f"days: train {len(days['train'])}, test {len(days['test'])}")

    q_train = quantize(days["train"], INPUT_SCALE, INPUT_ZP)
    x_train = (q_train.astype(np.float32) - INPUT_ZP) * INPUT_SCALE
    model = build(tf)
    C.fit_logged(tf, model, x_train, y_idx["train"], lr=3e-3,
                 loss="sparse_categorical_crossentropy", epochs=EPOCHS, batch_size=8, every=50)

    tfl, ops, io = C.convert_checked(model, x_train, INPUT_SCALE, INPUT_ZP)
    s_in, zp_in = io["input"]["scale"], io["input"]["zero_point"]
    C.log(f"converted: {len(tfl)} bytes, ops {ops}, input {io['input']}")
    q_test = quantize(days["test"], s_in, zp_in)
    q_train = quantize(days["train"], s_in, zp_in)
    x_test = (q_test.astype(np.float32) - zp_in) * s_in
    out_test, _, acc = C.classifier_eval(model, tfl, x_test, q_test, y_idx["test"],
                                         q_train, y_idx["train"])
    C.log(f"held-out days: float acc {acc['float_accuracy']:.4f}, int8 acc (tflite-micro) "
          f"{acc['int8_accuracy']:.4f}, float/int8 agree {acc['int8_float_agreement']:.4f}")

    (HERE / "model.tflite").write_bytes(tfl)
    C.write_test_vectors(HERE / "test_vectors.npz", tfl, q_test, SEED)
    C.save_npz(HERE / "heldout.npz", inputs=q_test, labels=y_idx["test"].astype(np.uint8),
               outputs=out_test)
    from tinysense.formats.recording import Recordings, write_recordings

    tsrc = Recordings(rate_hz=1, labels=labels,
                      items=[(int(y_idx["test"][i]), days["test"][i][:, None])
                             for i in range(len(days["test"]))])
    tsrc_size = write_recordings(HERE / "heldout.tsrc", tsrc)

    meta = {
        "name": "energy",
        "task": "classification",
        "description": "Season (Oct-Mar vs Apr-Sep) from one day's 24 hourly electricity "
                       "demand readings: small MLP, int8.",
        "labels": labels,
        **C.model_fields(tfl, io, ops, model),
        "sensor": {"kind": "adc or meter", "channels": ["demand"],
                   "counts": f"any linear unit; the dataset's values x {COUNTS_PER_UNIT}",
                   "rate": "one reading per hour (replay files say 1 Hz: play them fast)"},
        "preprocessing": preprocessing(s_in, zp_in),
        "decision": "argmax of the int8 output (first on ties); confidence (q + 128) / 256",
        "dataset": {"name": "ItalyPowerDemand", "source": "sktime.datasets."
                    "load_italy_power_demand (files bundled in sktime 1.2.0)",
                    "days": {"train": int(len(q_train)), "test": int(len(q_test))}},
        "split": "official train/test split; all metrics on the 1029 test days, never seen in "
                 "training or calibration",
        "metrics": {**{k: round(v, 4) for k, v in acc.items()},
                    "n_windows": int(len(q_test))},
        "files": {"test_vectors": C.test_vectors_note("days"),
                  "heldout": "heldout.npz: every held-out day (inputs int8, labels, "
                  "tflite-micro outputs)",
                  "recordings": f"heldout.tsrc: the test days as int16 counts, {tsrc_size} "
                  "bytes", "recordings_sha256": C.sha256((HERE / "heldout.tsrc").read_bytes())},
        "made_by": C.provenance("models/energy/train.py", SEED, time.monotonic() - t_start),
    }
    C.write_meta(HERE / "meta.json", meta)
    C.log(f"wrote {HERE}/model.tflite ({len(tfl)} B), meta.json, test_vectors.npz, "
          f"heldout.npz, heldout.tsrc")


if __name__ == "__main__":
    main()
