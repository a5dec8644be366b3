"""Train the activity model: a small int8 1-D CNN on BasicMotions (6-axis IMU, 4 classes).

Run: python models/activity/train.py   (needs the `train` extra: TensorFlow, sktime)
Writes model.tflite, meta.json, test_vectors.npz, heldout.npz and heldout.tsrc here.
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
SEED = 7
WINDOW = 50          # frames (5 s at 10 Hz)
STRIDE = 25          # frames
RATE_HZ = 10
INPUT_SCALE = 4 / 128  # int8 codes span +-4 standard deviations
INPUT_ZP = 0
EPOCHS = 120
# sensor units: the MPU6050's raw counts at the driver's default ranges
ACCEL_RANGE_G, ACCEL_COUNTS_PER_G = 8, 4096
GYRO_RANGE_DPS, GYRO_COUNTS_PER_DPS = 2000, 16.4
G = 9.80665
CHANNELS = ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"]


def to_counts(x: np.ndarray) -> np.ndarray:
    """BasicMotions (m/s^2, rad/s) -> MPU6050 counts (+-8 g, +-2000 deg/s), int16.

    x: (recordings, 6, frames) -> (recordings, frames, 6)."""
    scale = np.array([ACCEL_COUNTS_PER_G / G] * 3 + [GYRO_COUNTS_PER_DPS * 180 / np.pi] * 3)
    counts = np.rint(x.transpose(0, 2, 1) * scale)
    return np.clip(counts, -32768, 32767).astype(np.int16)


def raw_windows(recordings: np.ndarray) -> np.ndarray:
    """Every window's raw counts (for the normalization statistics), via the node's Windower."""
    out = []
    w = F.Windower(6, WINDOW, STRIDE)
    for rec in recordings:
        w.reset()
        for frame in rec.tolist():
            if w.push(frame):
                out.append(w.window([0] * (6 * WINDOW)))
    return np.array(out).reshape(-1, 6)


def preprocessing(stats, scale: float, zp: int) -> dict:
    """meta.json's preprocessing section; tsnode.sensors.pipeline.Pipeline runs it."""
    affine = F.Affine.from_stats(stats[0], stats[1], scale, zp)
    return {
        "kind": "affine_window", "n_channels": 6, "window": WINDOW, "stride": STRIDE,
        "windows": "per recording: first after WINDOW frames, then every STRIDE frames; "
                   "reset at a recording boundary",
        "layout": "frame-major (time, channel) = NHWC (1, window, 1, 6)",
        "function": "tsnode.sensors.features.Affine.quantize",
        "affine": affine.to_dict(),
        "normalization": "per channel (x - mean) / std over the training windows, "
                         "then / input scale + zero point, all in Q16 integers",
    }


def build(tf):
    L = tf.keras.layers
    return tf.keras.Sequential([
        L.Input((WINDOW, 1, 6)),
        L.Conv2D(12, (5, 1), strides=(2, 1), padding="same", activation="relu"),
        L.Conv2D(16, (5, 1), strides=(2, 1), padding="same", activation="relu"),
        L.Conv2D(16, (3, 1), padding="same", activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(4),
        L.Softmax(),
    ])


def main() -> None:
    t_start = time.monotonic()
    tf = C.seed_everything(SEED)
    from sktime.datasets import load_basic_motions

    C.log("loading BasicMotions (sktime's bundled files)")
    xs, ys = {}, {}
    for split in ("train", "test"):
        x, y = load_basic_motions(split=split, return_type="numpy3D")
        xs[split], ys[split] = to_counts(x), np.asarray(y)
    labels = sorted(set(ys["train"]))
    y_idx = {s: np.array([labels.index(v) for v in ys[s]]) for s in ys}

    flat = raw_windows(xs["train"])
    stats = (flat.mean(0).tolist(), flat.std(0).tolist())
    q_train, own_train = C.node_inputs(preprocessing(stats, INPUT_SCALE, INPUT_ZP),
                                       xs["train"])
    yw_train = y_idx["train"][own_train]
    C.log(f"windows: train {len(q_train)} (window {WINDOW}, stride {STRIDE})")
    x_train = (q_train.astype(np.float32) - INPUT_ZP) * INPUT_SCALE
    x_train = x_train.reshape(-1, WINDOW, 1, 6)

    model = build(tf)
    C.fit_logged(tf, model, x_train, yw_train, lr=3e-3, loss="sparse_categorical_crossentropy",
                 epochs=EPOCHS, batch_size=16, every=20)

    tfl, ops, io = C.convert_checked(model, x_train, INPUT_SCALE, INPUT_ZP)
    C.log(f"converted: {len(tfl)} bytes, ops {ops}, input {io['input']}")
    # the node quantizes with the model's actual input parameters
    s_in, zp_in = io["input"]["scale"], io["input"]["zero_point"]
    pre = preprocessing(stats, s_in, zp_in)
    q_train, _ = C.node_inputs(pre, xs["train"])
    q_test, own_test = C.node_inputs(pre, xs["test"])
    owner = {"test": own_test}
    yw_test = y_idx["test"][own_test]
    x_test = ((q_test.astype(np.float32) - zp_in) * s_in).reshape(-1, WINDOW, 1, 6)
    out_test, int8_pred, acc = C.classifier_eval(model, tfl, x_test, q_test, yw_test,
                                                 q_train, yw_train)
    rec_votes = [np.bincount(int8_pred[owner["test"] == r], minlength=4).argmax()
                 for r in range(len(y_idx["test"]))]
    rec_acc = float((np.array(rec_votes) == y_idx["test"]).mean())
    C.log(f"held-out windows: float acc {acc['float_accuracy']:.4f}, int8 acc (tflite-micro) "
          f"{acc['int8_accuracy']:.4f}, float/int8 agree {acc['int8_float_agreement']:.4f}; "
          f"per recording (vote) {rec_acc:.4f}")

    (HERE / "model.tflite").write_bytes(tfl)
    C.write_test_vectors(HERE / "test_vectors.npz", tfl, q_test, SEED)
    C.save_npz(HERE / "heldout.npz", inputs=q_test, labels=yw_test.astype(np.uint8),
               recording=owner["test"].astype(np.uint16), outputs=out_test)
    from tinysense.formats.recording import Recordings, write_recordings

    tsrc = Recordings(rate_hz=RATE_HZ, labels=labels,
                      items=[(int(y_idx["test"][i]), xs["test"][i])
                             for i in range(len(xs["test"]))])
    tsrc_size = write_recordings(HERE / "heldout.tsrc", tsrc)

    meta = {
        "name": "activity",
        "task": "classification",
        "description": "Activity from a wrist 6-axis IMU (accelerometer + gyroscope): "
                       "small 1-D CNN (Conv2D with (k,1) kernels), int8.",
        "labels": labels,
        **C.model_fields(tfl, io, ops, model),
        "sensor": {
            "kind": "mpu6050", "rate_hz": RATE_HZ, "channels": CHANNELS,
            "accel_range_g": ACCEL_RANGE_G, "accel_counts_per_g": ACCEL_COUNTS_PER_G,
            "gyro_range_dps": GYRO_RANGE_DPS, "gyro_counts_per_dps": GYRO_COUNTS_PER_DPS,
            "from_dataset": "accel m/s^2 * 4096/9.80665, gyro rad/s * 16.4*180/pi, rounded",
        },
        "preprocessing": pre,
        "decision": "argmax of the int8 output (first on ties); confidence (q + 128) / 256",
        "dataset": {"name": "BasicMotions", "source": "sktime.datasets.load_basic_motions "
                    "(files bundled in sktime 1.2.0)", "recordings": {"train": 40, "test": 40},
                    "frames_per_recording": 100, "rate_hz": RATE_HZ},
        "split": "official train/test split; all metrics on the 40 test recordings "
                 f"({len(q_test)} windows), never seen in training or calibration",
        "metrics": {"float_accuracy": round(acc["float_accuracy"], 4),
                    "int8_accuracy": round(acc["int8_accuracy"], 4),
                    "int8_float_agreement": round(acc["int8_float_agreement"], 4),
                    "int8_accuracy_per_recording_vote": round(rec_acc, 4),
                    "int8_train_accuracy": round(acc["int8_train_accuracy"], 4),
                    "n_windows": int(len(q_test))},
        "files": {"test_vectors": C.test_vectors_note("windows"),
                  "heldout": "heldout.npz: every held-out window (inputs int8, labels, "
                  "recording, tflite-micro outputs)",
                  "recordings": f"heldout.tsrc: the 40 test recordings as MPU6050 counts "
                  f"(docs/formats/recording.md), {tsrc_size} bytes",
                  "recordings_sha256": C.sha256((HERE / "heldout.tsrc").read_bytes())},
        "made_by": C.provenance("models/activity/train.py", SEED,
                                time.monotonic() - t_start),
    }
    C.write_meta(HERE / "meta.json", meta)
    C.log(f"wrote {HERE}/model.tflite ({len(tfl)} B), meta.json, test_vectors.npz, "
          f"heldout.npz, heldout.tsrc")


if __name__ == "__main__":
    main()
