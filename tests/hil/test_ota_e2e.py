"""An over-the-air update end to end on a private virtual board (tinysense.bench.ota's rig):
the app runs from main.py, sending over UDP, or MQTT through a real mosquitto, to a real
gateway; `tinysense ota push` queues a new model (the anomaly model, with its own app
config); the node takes it in chunks, verifies it, resets, runs its self-test, switches, and
its next frames come from the new model; `ota status --json` shows it active with its hash,
confirmed after its first heartbeat."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.node
MODELS = REPO / "models"


@pytest.fixture(params=["udp", pytest.param("mqtt", marks=pytest.mark.mosquitto)])
def transport(request):
    """(transport, the broker's HOST:PORT for MQTT)."""
    if request.param == "udp":
        return "udp", None
    host, port = request.getfixturevalue("mosquitto")
    return "mqtt", f"{host}:{port}"


def test_an_update_pushed_to_a_running_node(tmp_path, transport):
    from tinysense.bench.ota import run_ota
    from tinysense.boards import load_board
    from tinysense.convert import convert_model
    from tinysense.formats.ota import EV_OTA_STEP, STEP_CODES

    kind, mqtt = transport
    run = run_ota(tmp_path, transport=kind, mqtt=mqtt)
    last = run.status
    assert last and last["active"] and last["active"]["confirmed"], last
    assert last["last"]["state"] == "done"
    package = convert_model(MODELS / "anomaly" / "model.tflite",
                            board=load_board("ESP32_GENERIC")).package
    assert last["active"]["model_sha256"] == hashlib.sha256(package).hexdigest()
    # `ota status --json` (the CLI) says the same
    proc = subprocess.run([sys.executable, "-m", "tinysense", "ota", "status", "--device",
                           str(last["device"]), "--json", "--db", str(tmp_path / "gateway.db")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["active"] == last["active"]
    kinds = [(r["type"], r.get("model")) for f in run.frames for r in f["records"]
             if r["type"] in ("inference", "anomaly")]
    first_new = kinds.index(("anomaly", 9))
    assert ("inference", 1) in kinds[:first_new]            # the old model before the switch
    assert set(kinds[first_new:]) == {("anomaly", 9)}       # only the new one after it
    steps = [r["value"] for f in run.frames for r in f["records"]
             if r["type"] == "event" and r["code"] == EV_OTA_STEP]
    for name in ("offered", "received", "verified", "active", "confirmed"):
        assert STEP_CODES[name] in steps, name
    assert [p for p, _ in run.mem_free].count("after") >= 1
