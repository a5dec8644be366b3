"""An over-the-air update on a running node, measured: `python -m tinysense.bench.ota`.

A private virtual board (the 32-bit build when `make nodes` made it, with the board's heap
budget) runs the app from main.py on the activity model, sending to a real gateway over UDP
(or MQTT); an update (the anomaly model with its own app config) is pushed; the node takes
it in chunks while it runs, verifies it, resets, runs its self-test, switches and confirms.
Prints the bundle, the time to each step as the gateway saw it, and the node's free heap
(the app's MEM_FREE events, each after a collection) before, during and after the update.
tests/hil/test_ota_e2e.py runs the same rig and checks what it saw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinysense.paths import REPO_ROOT

MODELS = REPO_ROOT / "models"
DEVICE = 0x0A7A0001


@dataclass
class OtaRun:
    board: str
    transport: str
    node_arch: str
    bundle_bytes: int
    chunk: int
    status: dict                     # `ota status --json` for the device at the end
    frames: list[dict]               # every stored frame's decoded payload, in order
    steps_s: dict[str, float] = field(default_factory=dict)   # step -> seconds after push
    mem_free: list[tuple[str, int]] = field(default_factory=list)  # (phase, bytes free)

    def report(self) -> str:
        lines = [f"OTA on the {self.node_arch} virtual board ({self.board}, over "
                 f"{self.transport}): bundle {self.bundle_bytes:,} B in {self.chunk}-byte "
                 f"chunks"]
        lines += [f"  {step:10} {t:6.1f} s after the push" for step, t in self.steps_s.items()]
        for phase in ("before", "receiving", "after"):
            vals = [v for p, v in self.mem_free if p == phase]
            if vals:
                lines.append(f"  heap free {phase:9}: min {min(vals):,} B over {len(vals)} "
                             "heartbeats")
        return "\n".join(lines)


def _status(db: Path) -> list[dict]:
    from tinysense.gateway.store import open_db
    from tinysense.gateway.updates import UpdateQueue

    conn = open_db(db)
    try:
        return UpdateQueue(conn).status(DEVICE)
    finally:
        conn.close()


def _frames(db: Path) -> list[dict]:
    from tinysense.gateway.store import Store, open_db

    conn = open_db(db)
    try:
        return [json.loads(f.decoded) for f in Store(conn).frames(device_id=DEVICE)
                if f.decoded]
    finally:
        conn.close()


def _wait_heartbeats(db: Path, n: int, timeout: float) -> None:
    from tinysense.formats.app import RECORD_IDS

    code = RECORD_IDS["EV_MEM_FREE"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for f in _frames(db) for r in f["records"]
               if r["type"] == "event" and r["code"] == code) >= n:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the app sent no {n} heartbeats in {timeout:g} s")


def run_ota(workdir: Path, *, board: str = "ESP32_GENERIC", transport: str = "udp",
            mqtt: str | None = None, timeout: float = 240) -> OtaRun:
    """Run the update end to end in `workdir` (gateway.db, the board's flash)."""
    from tinysense.boards import load_board
    from tinysense.convert import convert_model
    from tinysense.demo import node_meta
    from tinysense.formats.app import RECORD_IDS
    from tinysense.formats.ota import EV_OTA_STEP, STEPS
    from tinysense.gateway.updates import DEFAULT_CHUNK
    from tinysense.gateway.run import GatewayConfig, RunningGateway
    from tinysense.node import open_node
    from tinysense.node.deploy import deploy
    from tinysense.provision import provision
    from tinysense.targets import Target
    from tinysense.targets.virtual import start_board, stop_board, unix_port, unix_port_arch

    cfg = load_board(board)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "gateway.db"
    gw_cfg = (GatewayConfig(db=str(db), udp="127.0.0.1:0") if transport == "udp" else
              GatewayConfig(db=str(db), mqtt=f"mqtt://{mqtt}?client_id=gw-ota"))
    gw = RunningGateway(gw_cfg, None)
    vb = None
    pushed = None
    seen: dict[str, float] = {}
    try:
        addr = gw.addresses["udp"] if transport == "udp" else mqtt
        vb = start_board(cfg.path, directory=workdir / "board", parent_bound=True)
        with open_node(Target("virtual", vb.url, "the OTA bench's board"), cfg) as node:
            deploy(node, progress=None)
            provision(node, DEVICE, db=db, transport=transport, gateway=addr,
                      discard_queue=True)
            meta = json.loads((MODELS / "activity" / "meta.json").read_text())
            node.mkdir("/models")
            node.mkdir("/data")
            node.put(convert_model(MODELS / "activity" / "model.tflite", board=cfg).package,
                     "/models/activity.tsm")
            node.put(json.dumps(node_meta(meta)).encode(), "/models/activity.json")
            node.put(MODELS / "activity" / "heldout.tsrc", "/data/heldout.tsrc")
            node.put(MODELS / "anomaly" / "demo.tsrc", "/data/anomaly.tsrc")
            common = {"source": "replay", "speed": 0, "loop": True, "heartbeat_s": 1,
                      "ack_wait_ms": 30, "watchdog_s": 0}
            node.put(json.dumps(dict(common, model="/models/activity.tsm",
                                     replay="/data/heldout.tsrc", model_id=1)).encode(),
                     "/app.json")
            if node.exists("/noapp"):
                node.remove("/noapp")
            app2 = workdir / "app2.json"
            app2.write_text(json.dumps(dict(common, replay="/data/anomaly.tsrc", model_id=9,
                                            max_windows=400)))
            node.transport.exit_raw_repl()   # a soft reset at the friendly REPL runs main.py
            node.transport.serial.write(b"\x04")
            _wait_heartbeats(db, 2, timeout)   # the app runs on its model: push now
            push = subprocess.run(
                [sys.executable, "-m", "tinysense", "ota", "push", "--device", str(DEVICE),
                 str(MODELS / "anomaly" / "model.tflite"), "--meta",
                 str(MODELS / "anomaly" / "meta.json"), "--config", str(app2), "--db",
                 str(db)], capture_output=True, text=True, timeout=300)
            if push.returncode != 0:
                raise RuntimeError(f"ota push failed: {push.stderr.strip()}")
            pushed = time.monotonic()
            deadline = pushed + timeout
            last = None
            while time.monotonic() < deadline:
                st = _status(db)
                last = st[0] if st else None
                step = last and last["last"]["step"]
                if step and step not in seen:   # seconds since the push committed it
                    seen[step] = time.time() - last["last"]["created"]
                if last and last["active"] and last["active"]["confirmed"]:
                    break
                time.sleep(0.05)
            with contextlib.suppress(Exception):
                node.transport.serial.write(b"\x03\x03")
    finally:
        gw.close()
        if vb is not None:
            stop_board(cfg.path, workdir / "board")
    frames = _frames(db)
    mem_free = RECORD_IDS["EV_MEM_FREE"]
    # heap free per phase: before the node takes the offer, while receiving, after the switch
    phase, mem = "before", []
    for f in frames:
        for r in f["records"]:
            if r["type"] != "event":
                continue
            if r["code"] == EV_OTA_STEP:
                name = STEPS.get(r["value"])
                if name in ("offered", "received"):
                    phase = "receiving"
                elif name in ("active", "confirmed"):
                    phase = "after"
            elif r["code"] == mem_free:   # in the summary of each heartbeat
                mem.append((phase, r["value"]))
    arch = unix_port_arch(unix_port(cfg).exe) or "?"
    return OtaRun(board, transport, arch, last["last"]["bytes"] if last else 0, DEFAULT_CHUNK,
                  last or {}, frames, {k: round(v, 2) for k, v in seen.items()}, mem)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ESP32_GENERIC")
    ap.add_argument("--workdir", default=None, help="default: a temporary directory")
    args = ap.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = run_ota(Path(args.workdir or tmp), board=args.board)
    print(run.report())
    return 0 if run.status.get("active", {}) and run.status["active"]["confirmed"] else 1


if __name__ == "__main__":
    sys.exit(main())
