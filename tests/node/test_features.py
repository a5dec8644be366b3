"""Golden parity of the shared features (tsnode.sensors.features / pipeline): the unix port
and CPython compute identical int8 inputs for the models' recordings, equal to the inputs
the models were trained and evaluated on (heldout.npz), and identical results on random
and adversarial cases of every feature function."""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest
from conftest import REPO, run_micropython

from tinysense.formats.recording import read_recordings

pytestmark = pytest.mark.node
MODELS = REPO / "models"
NODE_DIR = REPO / "tests" / "node"
PATH = [str(REPO / "firmware"), str(NODE_DIR)]


@pytest.fixture(scope="module")
def cpython_features():
    """The firmware's features/pipeline modules imported on CPython, as training does."""
    sys.path.insert(0, str(REPO / "firmware"))
    try:
        features = importlib.import_module("tsnode.sensors.features")
        pipeline = importlib.import_module("tsnode.sensors.pipeline")
        runner = importlib.import_module("features_mp")
    finally:
        sys.path.remove(str(REPO / "firmware"))
    yield features, pipeline, runner
    for name in [m for m in sys.modules if m == "tsnode" or m.startswith("tsnode.")
                 or m == "features_mp"]:
        del sys.modules[name]  # leave no firmware module behind in the host's process


def _node_replay(name: str, tsrc: str) -> tuple[np.ndarray, np.ndarray]:
    out = run_micropython(f"import features_mp\nfeatures_mp.replay({str(MODELS / name)!r}, "
                          f"{tsrc!r})", path=PATH, heap="112K")
    rows = [line.split() for line in out.split("\n") if line.strip()]
    owner = np.array([int(r[0]) for r in rows])
    inputs = np.stack([np.frombuffer(bytes.fromhex(r[1]), np.int8) for r in rows])
    return owner, inputs


def _cpython_replay(pipeline, name: str, tsrc: str) -> tuple[np.ndarray, np.ndarray]:
    meta = json.loads((MODELS / name / "meta.json").read_text())
    p = pipeline.Pipeline(meta["preprocessing"])
    owner, rows = [], []
    for r, (_, frames) in enumerate(read_recordings(MODELS / name / tsrc).items):
        p.reset()
        for frame in frames.tolist():
            if p.push(frame):
                rows.append(np.frombuffer(bytes(p.input), np.int8))
                owner.append(r)
    return np.array(owner), np.stack(rows)


@pytest.mark.parametrize("name", ["activity", "energy"])
def test_model_inputs_identical_on_node_cpython_and_heldout(name, cpython_features):
    held = np.load(MODELS / name / "heldout.npz")
    node_owner, node_in = _node_replay(name, "heldout.tsrc")
    cp_owner, cp_in = _cpython_replay(cpython_features[1], name, "heldout.tsrc")
    np.testing.assert_array_equal(node_in, cp_in)
    np.testing.assert_array_equal(node_owner, cp_owner)
    np.testing.assert_array_equal(node_in, held["inputs"].reshape(len(node_in), -1))
    if "recording" in held:
        np.testing.assert_array_equal(node_owner, held["recording"])


def test_anomaly_inputs_and_scores_identical(cpython_features, tmp_path):
    meta = json.loads((MODELS / "anomaly" / "meta.json").read_text())
    held = np.load(MODELS / "anomaly" / "heldout.npz")
    node_owner, node_in = _node_replay("anomaly", "demo.tsrc")
    cp_owner, cp_in = _cpython_replay(cpython_features[1], "anomaly", "demo.tsrc")
    np.testing.assert_array_equal(node_in, cp_in)
    # demo.tsrc holds test recordings 0, 1, 40, 41, 80, 81, 120, 121 (meta.json files)
    demo_recs = [0, 1, 40, 41, 80, 81, 120, 121]
    rows = np.concatenate([np.flatnonzero(held["recording"] == r) for r in demo_recs])
    np.testing.assert_array_equal(node_in, held["inputs"][rows])
    args = meta["score"]["args"]
    cases = [{"op": "recon", "a": (held["inputs"][i].astype(np.uint8)).tolist(),
              "b": (held["outputs"][i].astype(np.uint8)).tolist(), "zp_in": args["zp_in"],
              "zp_out": args["zp_out"], "mul": args["mul"], "shift": args["shift"]}
             for i in rows]
    node = _node_cases(cases, tmp_path)
    assert node == held["scores"][rows].tolist()


def _node_cases(cases: list[dict], tmp_path) -> list:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    out = run_micropython(f"import features_mp\nfeatures_mp.cases({str(path)!r})",
                          path=PATH, heap="512K")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _cases() -> list[dict]:
    rng = np.random.default_rng(2024)
    i16 = lambda n: rng.integers(-32768, 32768, n).tolist()  # noqa: E731
    ext = lambda n: rng.choice([-32768, -32767, -1, 0, 1, 32766, 32767], n).tolist()  # noqa: E731
    cases = []
    for n_ch in (1, 3, 6, 32):
        for muls in ([1] * n_ch, rng.integers(1, 1 << 22, n_ch).tolist(),
                     [[(1 << 29) + 1, 1 << 31, 1 << 16, 65535][i % 4] for i in range(n_ch)],
                     rng.integers(100, 5000, n_ch).tolist()):
            for x in (i16(n_ch * 7), ext(n_ch * 5)):
                cases.append({"op": "affine", "offs": rng.integers(-3000, 3000, n_ch).tolist(),
                              "muls": muls, "zp": int(rng.choice([-128, -3, 0, 9, 127])),
                              "x": x})
    for n in (2, 24, 50):
        for x in (i16(n), ext(n), [1234] * n, [0] * (n - 1) + [32767],
                  rng.integers(-40, 40, n).tolist()):
            cases.append({"op": "zscore", "x": x, "zp": int(rng.integers(-128, 128)),
                          "inv": int(rng.choice([8, 256, 8192, 65535]))})
    t = np.arange(256)
    signals = [i16(256), ext(256), [-32768] * 256, [32767] * 256,
               [32767 if (k // 4) % 2 else -32768 for k in range(256)],
               [32767 if k == 0 else 0 for k in range(256)],
               np.rint(30000 * np.sin(2 * np.pi * 37 * t / 256)).astype(int).tolist(),
               np.rint(20000 * np.cos(2 * np.pi * 128 * t / 256)).astype(int).tolist(),
               rng.integers(-3, 4, 256).tolist()]
    for x in signals:
        cases.append({"op": "fft", "x": x})
        cases.append({"op": "bands", "x": x, "edges": [1 + 4 * i for i in range(32)] + [128]})
        cases.append({"op": "bands", "x": x, "edges": [0, 1, 2, 10, 64, 128]})
    cases.append({"op": "ilog2", "x": [1, 2, 3, 15, 16, 17, 31, 32, 33, 255, 256, 257, 1000,
                                       (1 << 30) - 1, 1 << 30, (1 << 40) + 12345, 10 ** 15]
                  + rng.integers(1, 1 << 31, 40).tolist()})
    cases.append({"op": "isqrt", "x": [0, 1, 2, 3, 4, 8, 9, 10, 99, 100, (1 << 31) - 1,
                                       (1 << 62) + 1, 10 ** 30, (10 ** 15 + 1) ** 2,
                                       (10 ** 15 + 1) ** 2 - 1]
                  + rng.integers(0, 1 << 62, 40, dtype=np.int64).tolist()})
    for _ in range(6):
        cases.append({"op": "recon", "a": rng.integers(0, 256, 32).tolist(),
                      "b": rng.integers(0, 256, 32).tolist(),
                      "zp_in": int(rng.integers(-128, 128)),
                      "zp_out": int(rng.integers(-128, 128)),
                      "mul": int(rng.integers(1, 1 << 16)), "shift": int(rng.integers(1, 20))})
    for x in ([128, 128, 128], [0, 255, 127, 127], [255, 254, 128], rng.integers(0, 256, 10)
              .tolist()):
        cases.append({"op": "argmax", "x": x})
    cases.append({"op": "windows", "n_ch": 2, "size": 5, "stride": 3,
                  "frames": [[i, -i] for i in range(23)]})
    cases.append({"op": "windows", "n_ch": 1, "size": 4, "stride": 4,
                  "frames": [[v] for v in ext(17)]})
    return cases


def test_feature_functions_identical_on_random_and_adversarial_cases(cpython_features,
                                                                     tmp_path):
    runner = cpython_features[2]
    cases = _cases()
    node = _node_cases(cases, tmp_path)
    assert len(node) == len(cases)
    for c, got in zip(cases, node):
        want = json.loads(json.dumps(runner.run_case(c)))
        assert got == want, c["op"]


def test_fixed_point_results_are_close_to_float_math(cpython_features):
    features = cpython_features[0]
    assert list(features._SIN_Q14) == [round(16384 * math.sin(2 * math.pi * k / 256))
                                       for k in range(65)]
    rng = np.random.default_rng(5)
    x = rng.integers(-20000, 20000, 256)
    be = features.BandEnergies([0, 1])
    be.fft(x.tolist())
    ref = np.fft.fft(x) / 256
    assert np.abs(np.array(be._re) + 1j * np.array(be._im) - ref).max() < 4
    for v in (3, 100, 12345, 10 ** 9):
        assert abs(features.ilog2_q4(v) / 16 - math.log2(v)) < 0.1
    # Affine equals its definition, clamp8(zp + floor((x - off) * mul / 2**16 + 1/2)), for
    # any multiplier, including ones so large that the product guard clamps x - off
    for mul in (1, 77, 65536, 1 << 22, (1 << 29) + 1, 1 << 31):
        x = rng.integers(-32768, 32768, 64).tolist() + [-1, 0, 1, 2, -2]
        a = features.Affine([3], [mul], -5)
        got = np.frombuffer(bytes(a.quantize(x, len(x), bytearray(len(x)))), np.int8)
        want = [max(-128, min(127, -5 + (((v - 3) * mul + (1 << 15)) >> 16))) for v in x]
        assert got.tolist() == want, mul
    # Windower: the windows are exactly the slices frames[k*stride : k*stride + size]
    frames = rng.integers(-32768, 32768, (40, 3))
    w = features.Windower(3, 7, 5)
    got = [list(w.window([0] * 21)) for f in frames.tolist() if w.push(f)]
    assert got == [frames[k:k + 7].reshape(-1).tolist() for k in range(0, 34, 5)]
    z = rng.integers(-500, 500, 24)
    out = bytearray(24)
    features.zscore_quantize(z.tolist(), 24, round(256 / (4 / 128)), 0, out)
    want = np.clip(np.rint((z - z.mean()) / z.std() / (4 / 128)), -128, 127)
    assert np.abs(np.frombuffer(bytes(out), np.int8) - want).max() <= 1
