"""The example models end to end on the unix port, within the ESP32_GENERIC heap: replayed
held-out recordings -> the node's Pipeline -> the engine -> outputs byte-identical to the
tflite-micro reference's (heldout.npz), so the node's accuracy / AUC is the reported one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, run_micropython

from tinysense.convert import convert_model

pytestmark = pytest.mark.node
MODELS = REPO / "models"
HEAP = "112K"  # ESP32_GENERIC's heap budget (board_configs/ESP32_GENERIC.toml)

SCRIPT = """
import json, gc
from array import array
from tsnode.engine.model import Model
from tsnode.sensors import features as F
from tsnode.sensors.pipeline import Pipeline
from tsnode.sensors.replay import ReplaySource

gc.collect()
base = gc.mem_alloc()  # interpreter + imported modules (viper code lives in the heap too)
with open({meta!r}) as f:
    meta = json.load(f)
pipe = Pipeline(meta["preprocessing"])
score = meta.get("score")
args = score["args"] if score else None
del meta
gc.collect()
with open({tsm!r}, "rb") as f:
    model = Model(f.read())
src = ReplaySource({tsrc!r}, speed=0)
frame = array("h", [0] * src.n_channels)
gc.collect()
while src.read(frame):
    if src.new_recording:
        pipe.reset()
    if pipe.push(frame):
        model.set_inputs(pipe.input)
        model.run()
        out = model.output_bytes()
        extra = ""
        if args:
            extra = " %d" % F.recon_error(pipe.input, out, args["n"], args["zp_in"],
                                          args["zp_out"], args["mul"], args["shift"])
        print(src.recording, "".join("%02x" % b for b in out) + extra)
gc.collect()
print("HEAP", base, gc.mem_alloc() - base, gc.mem_free())
"""


def _run(name: str, tsrc: str, tmp_path):
    tsm = tmp_path / f"{name}.tsm"
    tsm.write_bytes(convert_model(MODELS / name / "model.tflite",
                                  board="ESP32_GENERIC").package)
    out = run_micropython(SCRIPT.format(meta=str(MODELS / name / "meta.json"), tsm=str(tsm),
                                        tsrc=str(MODELS / name / tsrc)), heap=HEAP)
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    assert lines[-1][0] == "HEAP"
    _base, held, free = (int(v) for v in lines[-1][1:])
    # model + pipeline + source hold little and leave most of the heap to the app/uplink
    assert held < 20_000 and free > 60_000, (held, free)
    rows = lines[:-1]
    owner = np.array([int(r[0]) for r in rows])
    outs = np.stack([np.frombuffer(bytes.fromhex(r[1]), np.int8) for r in rows])
    scores = np.array([int(r[2]) for r in rows]) if len(rows[0]) > 2 else None
    return owner, outs, scores


@pytest.mark.parametrize("name", ["activity", "energy"])
def test_classifier_on_node_equals_reference(name, tmp_path):
    meta = json.loads((MODELS / name / "meta.json").read_text())
    held = np.load(MODELS / name / "heldout.npz")
    owner, outs, _ = _run(name, "heldout.tsrc", tmp_path)
    np.testing.assert_array_equal(outs, held["outputs"])
    if "recording" in held:
        np.testing.assert_array_equal(owner, held["recording"])
    acc = float((outs.argmax(1) == held["labels"]).mean())
    assert round(acc, 4) == meta["metrics"]["int8_accuracy"]


def test_anomaly_on_node_equals_reference(tmp_path):
    held = np.load(MODELS / "anomaly" / "heldout.npz")
    _, outs, scores = _run("anomaly", "demo.tsrc", tmp_path)
    demo_recs = [0, 1, 40, 41, 80, 81, 120, 121]  # demo.tsrc (meta.json files.recordings)
    rows = np.concatenate([np.flatnonzero(held["recording"] == r) for r in demo_recs])
    np.testing.assert_array_equal(outs, held["outputs"][rows])
    np.testing.assert_array_equal(scores, held["scores"][rows])
