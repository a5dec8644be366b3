"""An over-the-air update end to end on a private virtual board: the app runs from main.py,
sends over UDP, or MQTT through a real mosquitto, to a real gateway; `tinysense ota push` queues a new model (the anomaly
model, with its own app config); the node takes it in chunks, verifies it, resets, runs its
self-test, switches, and its next frames come from the new model; `ota status --json` shows
it active with its hash, confirmed after its first heartbeat."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.node
MODELS = REPO / "models"
DEVICE = 0x0A7A0001


def _stored(db, since_counter=-1):
    from tinysense.gateway.store import Store, open_db

    conn = open_db(db)
    try:
        return [json.loads(f.decoded) for f in Store(conn).frames(device_id=DEVICE)
                if f.decoded and f.counter > since_counter]
    finally:
        conn.close()


def _status(db) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "tinysense", "ota", "status", "--device",
                           str(DEVICE), "--json", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(params=["udp", pytest.param("mqtt", marks=pytest.mark.mosquitto)])
def transport(request):
    """(transport, GatewayConfig for it, the node's gateway address or None: the UDP one)."""
    from tinysense.gateway.run import GatewayConfig

    if request.param == "udp":
        return "udp", GatewayConfig(udp="127.0.0.1:0"), None
    host, port = request.getfixturevalue("mosquitto")
    return ("mqtt", GatewayConfig(mqtt=f"mqtt://{host}:{port}?client_id=gw-ota"),
            f"{host}:{port}")


def test_an_update_pushed_to_a_running_node(tmp_path, transport):
    from tinysense.boards import load_board
    from tinysense.convert import convert_model
    from tinysense.demo import node_meta
    from tinysense.gateway.run import RunningGateway
    from tinysense.node import open_node
    from tinysense.node.deploy import deploy
    from tinysense.provision import provision
    from tinysense.targets import Target
    from tinysense.targets.virtual import start_board, stop_board

    kind, gw_config, addr = transport
    cfg = load_board("ESP32_GENERIC")
    db = tmp_path / "gateway.db"
    gw_config.db = str(db)
    gw = RunningGateway(gw_config, None)
    vb = None
    try:
        addr = addr or gw.addresses["udp"]
        vb = start_board(cfg.path, directory=tmp_path / "board", parent_bound=True)
        with open_node(Target("virtual", vb.url, "test"), cfg) as node:
            deploy(node, progress=None)
            provision(node, DEVICE, db=db, transport=kind, gateway=addr, discard_queue=True)
            meta = json.loads((MODELS / "activity" / "meta.json").read_text())
            node.mkdir("/models")
            node.mkdir("/data")
            node.put(convert_model(MODELS / "activity" / "model.tflite", board=cfg).package,
                     "/models/activity.tsm")
            node.put(json.dumps(node_meta(meta)).encode(), "/models/activity.json")
            node.put(MODELS / "activity" / "heldout.tsrc", "/data/heldout.tsrc")
            node.put(MODELS / "anomaly" / "demo.tsrc", "/data/anomaly.tsrc")
            node.put(json.dumps({"model": "/models/activity.tsm", "source": "replay",
                                 "replay": "/data/heldout.tsrc", "speed": 0, "loop": True,
                                 "heartbeat_s": 1, "ack_wait_ms": 30, "watchdog_s": 0,
                                 "model_id": 1}).encode(), "/app.json")
            if node.exists("/noapp"):
                node.remove("/noapp")
            # the update: the anomaly model with its own app config (model id 9)
            app2 = tmp_path / "app2.json"
            app2.write_text(json.dumps({"source": "replay", "replay": "/data/anomaly.tsrc",
                                        "speed": 0, "loop": True, "heartbeat_s": 1,
                                        "ack_wait_ms": 30, "watchdog_s": 0, "model_id": 9,
                                        "max_windows": 400}))
            push = subprocess.run(
                [sys.executable, "-m", "tinysense", "ota", "push", "--device", str(DEVICE),
                 str(MODELS / "anomaly" / "model.tflite"), "--meta",
                 str(MODELS / "anomaly" / "meta.json"), "--config", str(app2), "--db",
                 str(db)], capture_output=True, text=True, timeout=300)
            assert push.returncode == 0, push.stderr
            assert "update 1 queued" in push.stdout
            node.transport.exit_raw_repl()   # a soft reset at the friendly REPL runs main.py
            node.transport.serial.write(b"\x04")
            deadline = time.monotonic() + 240
            last = None
            while time.monotonic() < deadline:
                st = _status(db)
                last = st[0] if st else None
                if last and last["active"] and last["active"]["confirmed"]:
                    break
                time.sleep(1)
            assert last and last["active"], last
            with contextlib.suppress(Exception):
                node.transport.serial.write(b"\x03\x03")
    finally:
        gw.close()
        if vb is not None:
            stop_board(cfg.path, tmp_path / "board")
    assert last["active"]["confirmed"] and last["last"]["state"] == "done"
    package = convert_model(MODELS / "anomaly" / "model.tflite", board=cfg).package
    assert last["active"]["model_sha256"] == hashlib.sha256(package).hexdigest()
    frames = _stored(db)
    kinds = [(r["type"], r.get("model")) for f in frames for r in f["records"]
             if r["type"] in ("inference", "anomaly")]
    first_new = kinds.index(("anomaly", 9))
    assert ("inference", 1) in kinds[:first_new]            # the old model before the switch
    assert set(kinds[first_new:]) == {("anomaly", 9)}       # only the new one after it
    from tinysense.formats.ota import EV_OTA_STEP, STEP_CODES

    steps = [r["value"] for f in frames for r in f["records"]
             if r["type"] == "event" and r["code"] == EV_OTA_STEP]

    for name in ("offered", "received", "verified", "active", "confirmed"):
        assert STEP_CODES[name] in steps, name
