"""Train the anomaly model: an int8 autoencoder on FFT band energies of machine vibration.

Run: python models/anomaly/train.py   (needs the `train` extra: TensorFlow)
Writes model.tflite, meta.json, test_vectors.npz, heldout.npz and demo.tsrc here.

Signals come from generator.py (deterministic). Each 256-sample window becomes 32 log2
band energies with the node's own integer FFT (features.BandEnergies), standardized per
band and quantized (features.Affine). The autoencoder learns healthy windows only; the
score is the integer reconstruction error (features.recon_error), compared with the
threshold in meta.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402
import generator as G  # noqa: E402

F = C.FEATURES
SEED = 3
WINDOW = 256
STRIDE = 256
EDGES = [1 + 4 * i for i in range(32)] + [128]  # 32 bands of 4 bins (8 Hz each), no DC
N_BANDS = len(EDGES) - 1
INPUT_SCALE = 8 / 128  # int8 codes span +-8 standard deviations of healthy band energy
INPUT_ZP = 0
ERR_SHIFT = 12
EPOCHS = 150
SPLITS = {  # recordings per kind and first seed
    "train": ({"normal": 150}, 0),
    "val": ({"normal": 30}, 1000),
    "test": ({k: 40 for k in G.KINDS}, 2000),
}


def windows_features(recs):
    """(band features (windows, 32) Q4 ints, window labels 0/1, kind, recording index)."""
    w = F.Windower(1, WINDOW, STRIDE)
    be = F.BandEnergies(EDGES)
    buf = [0] * WINDOW
    feats, labels, kinds, owner = [], [], [], []
    for r, (kind, x, mask) in enumerate(recs):
        w.reset()
        for i, v in enumerate(x.tolist()):
            if w.push((v,)):
                w.window(buf)
                feats.append(be.compute(buf, [0] * N_BANDS))
                labels.append(int(mask[i + 1 - WINDOW:i + 1].any()))
                kinds.append(kind)
                owner.append(r)
    return (np.array(feats), np.array(labels, np.uint8), np.array(kinds, np.uint8),
            np.array(owner, np.uint16))


def preprocessing(feats_train: np.ndarray, scale: float, zp: int) -> dict:
    """meta.json's preprocessing section; tsnode.sensors.pipeline.Pipeline runs it."""
    affine = F.Affine.from_stats(feats_train.mean(0).tolist(),
                                 np.maximum(feats_train.std(0), 1.0).tolist(), scale, zp)
    return {
        "kind": "band_energies", "n_channels": 1, "window": WINDOW, "stride": STRIDE,
        "windows": "per recording, non-overlapping",
        "function": "tsnode.sensors.features.BandEnergies.compute, then Affine.quantize "
                    "(one frame of 32 channels)",
        "band_edges": EDGES,
        "band_energy": "fixed-point 256-point FFT (Q14 twiddles, >>1 per stage), "
                       "sum of re^2+im^2 per band, ilog2_q4(energy + 1)",
        "affine": affine.to_dict(),
        "normalization": "per band (e - mean) / max(std, 1) over healthy training windows "
                         "(Q4 log2 units), then / input scale + zero point",
    }


def quantize(pre: dict, split_data) -> np.ndarray:
    recs, owner_expected = split_data[0], split_data[4]
    q, owner = C.node_inputs(pre, [x[:, None] for _, x, _ in recs])
    assert np.array_equal(owner, owner_expected)
    return q


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def int8_scores(q_in, q_out, io) -> np.ndarray:
    s_in, zp_in = io["input"]["scale"], io["input"]["zero_point"]
    s_out, zp_out = io["output"]["scale"], io["output"]["zero_point"]
    mul = int(round(s_out / s_in * (1 << ERR_SHIFT)))
    return np.array([F.recon_error(bytes(a.astype(np.int8).tobytes()),
                                   bytes(b.astype(np.int8).tobytes()), N_BANDS, zp_in, zp_out,
                                   mul, ERR_SHIFT) for a, b in zip(q_in, q_out)]), mul


def build(tf):
    L = tf.keras.layers
    return tf.keras.Sequential([
        L.Input((N_BANDS,)),
        L.Dense(16, activation="relu"),
        L.Dense(6, activation="relu"),
        L.Dense(16, activation="relu"),
        L.Dense(N_BANDS),
    ])


def main() -> None:
    t_start = time.monotonic()
    tf = C.seed_everything(SEED)
    data = {}
    for split, (counts, seed0) in SPLITS.items():
        recs = G.dataset(counts, seed0)
        data[split] = (recs,) + windows_features(recs)
        C.log(f"{split}: {len(recs)} recordings, {len(data[split][1])} windows "
              f"({int(data[split][2].sum())} faulty)")
    feats_train = data["train"][1]
    q = {"train": quantize(preprocessing(feats_train, INPUT_SCALE, INPUT_ZP), data["train"])}
    x_train = (q["train"].astype(np.float32) - INPUT_ZP) * INPUT_SCALE

    model = build(tf)
    C.fit_logged(tf, model, x_train, x_train, lr=2e-3, loss="mse", epochs=EPOCHS,
                 batch_size=32, every=30, note=" on healthy windows")

    tfl, ops, io = C.convert_checked(model, x_train, INPUT_SCALE, INPUT_ZP)
    C.log(f"converted: {len(tfl)} bytes, ops {ops}, input {io['input']}, "
          f"output {io['output']}")
    pre = preprocessing(feats_train, io["input"]["scale"], io["input"]["zero_point"])
    q = {s: quantize(pre, data[s]) for s in data}
    s_in, zp_in = io["input"]["scale"], io["input"]["zero_point"]

    out = {s: C.run_tflm(tfl, q[s]) for s in ("val", "test")}
    scores = {}
    for s in ("val", "test"):
        scores[s], mul = int8_scores(q[s], out[s], io)
    threshold = int(scores["val"].max())
    y_test = data["test"][2]
    x_test = (q["test"].astype(np.float32) - zp_in) * s_in
    float_scores = ((model.predict(x_test, verbose=0) - x_test) ** 2).mean(1)
    auc_float = auc(float_scores, y_test)
    auc_int8 = auc(scores["test"], y_test)
    flag = scores["test"] > threshold
    tpr = float(flag[y_test == 1].mean())
    fpr = float(flag[y_test == 0].mean())
    per_kind = {G.KINDS[k]: round(float(flag[(data["test"][3] == k) & (y_test == 1)].mean()), 4)
                for k in range(1, len(G.KINDS))}
    C.log(f"held-out: AUC float {auc_float:.4f}, AUC int8 (tflite-micro) {auc_int8:.4f}; "
          f"threshold {threshold}: TPR {tpr:.4f} FPR {fpr:.4f} per kind {per_kind}")

    (HERE / "model.tflite").write_bytes(tfl)
    C.write_test_vectors(HERE / "test_vectors.npz", tfl, q["test"], SEED)
    C.save_npz(HERE / "heldout.npz", inputs=q["test"], labels=y_test,
               kind=data["test"][3], recording=data["test"][4], outputs=out["test"],
               scores=scores["test"].astype(np.int64))
    from tinysense.formats.recording import Recordings, write_recordings

    # two held-out recordings of each kind, for replay on the node and the parity test
    demo_ids = [i for k in range(len(G.KINDS)) for i in range(k * 40, k * 40 + 2)]
    recs = data["test"][0]
    tsrc = Recordings(rate_hz=G.RATE_HZ, labels=list(G.KINDS),
                      items=[(recs[i][0], recs[i][1][:, None]) for i in demo_ids])
    tsrc_size = write_recordings(HERE / "demo.tsrc", tsrc)

    meta = {
        "name": "anomaly",
        "task": "anomaly",
        "description": "Machine-vibration anomaly detector: int8 autoencoder on 32 log2 FFT "
                       "band energies, scored by reconstruction error.",
        "labels": ["normal", "anomaly"],
        **C.model_fields(tfl, io, ops, model),
        "sensor": {"kind": "accelerometer axis (adc or imu)", "rate_hz": G.RATE_HZ,
                   "channels": ["vibration"], "counts": "int16 counts (generator.py)"},
        "preprocessing": pre,
        "score": {"function": "tsnode.sensors.features.recon_error",
                  "args": {"n": N_BANDS, "zp_in": zp_in, "zp_out": io["output"]["zero_point"],
                           "mul": mul, "shift": ERR_SHIFT},
                  "threshold": threshold,
                  "rule": "anomaly when score > threshold (threshold = the largest score of "
                          "120 healthy validation windows, seeds 1000..1029)"},
        "dataset": {"name": "generated machine vibration", "generator": "models/anomaly/"
                    "generator.py", "rate_hz": G.RATE_HZ, "frames_per_recording":
                    G.RECORD_FRAMES, "splits": {s: {"recordings": c, "first_seed": s0}
                                                for s, (c, s0) in SPLITS.items()}},
        "split": "train: healthy only; val: healthy (threshold); test: 40 recordings of each "
                 "kind, a window is faulty if it overlaps the fault (bursts are local)",
        "metrics": {"float_auc": round(auc_float, 4), "int8_auc": round(auc_int8, 4),
                    "int8_tpr_at_threshold": round(tpr, 4),
                    "int8_fpr_at_threshold": round(fpr, 4),
                    "int8_tpr_per_kind": per_kind,
                    "n_windows": int(len(y_test)), "n_faulty": int(y_test.sum())},
        "files": {"test_vectors": C.test_vectors_note("windows"),
                  "heldout": "heldout.npz: every held-out window (inputs int8, labels, kind, "
                  "recording, tflite-micro outputs, int8 scores)",
                  "recordings": f"demo.tsrc: 2 held-out recordings of each kind, {tsrc_size} "
                  "bytes (test recordings 0, 1, 40, 41, 80, 81, 120, 121)",
                  "recordings_sha256": C.sha256((HERE / "demo.tsrc").read_bytes())},
        "made_by": C.provenance("models/anomaly/train.py", SEED, time.monotonic() - t_start),
    }
    C.write_meta(HERE / "meta.json", meta)
    C.log(f"wrote {HERE}/model.tflite ({len(tfl)} B), meta.json, test_vectors.npz, "
          f"heldout.npz, demo.tsrc")


if __name__ == "__main__":
    main()
