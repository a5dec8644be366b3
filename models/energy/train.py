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
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    C.log(f"training {model.count_params()} parameters for {EPOCHS} epochs")
    cb = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: (
        C.log(f"epoch {e + 1}: loss {logs['loss']:.3f} acc {logs['accuracy']:.3f}")
        if (e + 1) % 50 == 0 else None))
    model.fit(x_train, y_idx["train"], epochs=EPOCHS, batch_size=8, shuffle=True, verbose=0,
              callbacks=[cb])

    tfl = C.convert_int8(model, C.grid_calibration(x_train, INPUT_SCALE, INPUT_ZP))
    ops = C.check_ops(tfl)
    io = C.io_quant(tfl)
    s_in, zp_in = io["input"]["scale"], io["input"]["zero_point"]
    C.log(f"converted: {len(tfl)} bytes, ops {ops}, input {io['input']}")
    q_test = quantize(days["test"], s_in, zp_in)
    q_train = quantize(days["train"], s_in, zp_in)
    x_test = (q_test.astype(np.float32) - zp_in) * s_in
    float_pred = model.predict(x_test, verbose=0).argmax(1)
    float_acc = float((float_pred == y_idx["test"]).mean())
    out_test = C.run_tflm(tfl, q_test)
    int8_pred = out_test.argmax(1)
    int8_acc = float((int8_pred == y_idx["test"]).mean())
    agree = float((float_pred == int8_pred).mean())
    train_int8_acc = float((C.run_tflm(tfl, q_train).argmax(1) == y_idx["train"]).mean())
    C.log(f"held-out days: float acc {float_acc:.4f}, int8 acc (tflite-micro) {int8_acc:.4f}, "
          f"float/int8 agree {agree:.4f}")

    (HERE / "model.tflite").write_bytes(tfl)
    pick = np.linspace(0, len(q_test) - 1, 12).astype(int)
    rng = np.random.default_rng(SEED)
    extra = np.stack([np.full(WINDOW, -128, np.int8), np.full(WINDOW, 127, np.int8),
                      rng.integers(-128, 128, WINDOW, dtype=np.int8),
                      rng.integers(-128, 128, WINDOW, dtype=np.int8)])
    vec_in = np.concatenate([q_test[pick], extra])
    C.save_npz(HERE / "test_vectors.npz", inputs=vec_in, outputs=C.run_tflm(tfl, vec_in))
    C.save_npz(HERE / "heldout.npz", inputs=q_test, labels=y_idx["test"].astype(np.uint8),
               outputs=out_test)
    from tinysense.recordings import Recordings, write_recordings

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
        "input": io["input"],
        "output": io["output"],
        "tflite": "model.tflite",
        "tflite_sha256": C.sha256(tfl),
        "tflite_bytes": len(tfl),
        "arena_bytes_tflm": C.arena_bytes(tfl),
        "parameters": int(model.count_params()),
        "ops": ops,
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
        "metrics": {"float_accuracy": round(float_acc, 4), "int8_accuracy": round(int8_acc, 4),
                    "int8_float_agreement": round(agree, 4),
                    "int8_train_accuracy": round(train_int8_acc, 4),
                    "n_windows": int(len(q_test))},
        "files": {"test_vectors": "test_vectors.npz: inputs (int8) -> outputs (int8) from "
                  "tflite-micro; 12 held-out days + all -128, all 127, 2 random",
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
