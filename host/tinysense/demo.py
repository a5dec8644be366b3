"""`make demo` / `tinysense demo`: the whole chain, live, on the virtual board, the RV32 QEMU
board or a real one.

Starts a gateway (a fresh SQLite database), a node (a fresh virtual board by default),
deploys the firmware, provisions a key, deploys the app with a model, its meta.json and its
held-out recordings, runs the app in eval mode (one frame per window with the replay's true
label: docs/app.md), prints each frame the gateway stores as a table row, then checks:
the node's outputs equal tflite-micro's on the same windows (heldout.npz, recomputed now
with the tflite-micro interpreter), the node's inputs equal the training pipeline's (crc32),
its accuracy equals meta.json's int8 accuracy, and the gateway stored exactly the frames
the node sealed.

The uplink goes over UDP (the virtual board, a board on WiFi), or over the node's console on
the RV32 QEMU board, which has no network: the gateway's serial transport then reads its
socket:// port, where main.py runs the app after a soft reset, and writes the acks back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import socket
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import TextIO

import numpy as np

from tinysense.errors import TinysenseError
from tinysense.formats.app import RECORD_IDS
from tinysense.paths import MODELS_DIR, STATE_DIR

# Record ids and event codes of the app's frames: the node's (firmware/tsnode/report.py).
ID_COUNTS, ID_OUTPUT = RECORD_IDS["ID_COUNTS"], RECORD_IDS["ID_OUTPUT"]
EV_BOOT, EV_CHANGE, EV_HEARTBEAT, EV_CRASH, EV_MEM_FREE, EV_QUEUED, EV_END = (
    RECORD_IDS[k] for k in ("EV_BOOT", "EV_CHANGE", "EV_HEARTBEAT", "EV_CRASH", "EV_MEM_FREE",
                            "EV_QUEUED", "EV_END"))
EV_WINDOW, EV_RECORDING, EV_TRUTH, EV_INPUT_CRC = (
    RECORD_IDS[k] for k in ("EV_WINDOW", "EV_RECORDING", "EV_TRUTH", "EV_INPUT_CRC"))

DEMO_DEVICE_ID = 0x7E5D0001
RECORDINGS = {"activity": "heldout.tsrc", "energy": "heldout.tsrc", "anomaly": "demo.tsrc"}
# Replay speed per model: about 20 s of playing time each (activity 400 s of recordings,
# energy 1,029 days of hourly loads, anomaly 8 recordings of 0.5 s at 2,048 Hz).
SPEEDS = {"activity": 20, "energy": 1000, "anomaly": 0.5}
# On the RV32 QEMU board the node's clock is its instruction count (-icount shift=0), and a
# paced replay busy-waits through it at emulation speed (20 s of node time took ~4 minutes on
# a loaded 2-core host): there the replay is unpaced (speed 0) unless --speed says otherwise.
SERIAL_SPEED = 0
# How the demo names each kind of node in its results.
NODE_KINDS = {"virtual": "virtual board", "board": "board", "qemu-rv32": "RV32 QEMU"}
# Typed on the console once the gateway has it (serial uplink): Ctrl-C (a clean line), Ctrl-B
# (out of the raw REPL, if the host left it there), Ctrl-D (a soft reset at the friendly REPL:
# boot.py, then main.py starts the app, as at power-on).
START_APP = b"\x03\x02\x04"
APP_SILENCE_S = 180.0  # the serial demo gives up on a node that printed nothing for this long


@dataclasses.dataclass(frozen=True)
class WindowReport:
    """One eval-mode frame as the gateway stored it."""

    device_id: int
    counter: int
    window: int
    recording: int
    predicted: int
    confidence: int
    truth: int
    outputs: tuple[int, ...]
    input_crc: int


@dataclasses.dataclass
class DemoResult:
    model: str
    target: str
    windows: list[WindowReport]
    expected_windows: int
    correct: int
    meta_accuracy: float
    output_matches: int  # windows whose every output byte equals tflite-micro's
    input_matches: int  # windows whose input crc32 equals heldout.npz's input
    reference_equals_heldout: bool  # tflite-micro now == heldout.npz outputs
    frames_sealed: int  # by the node (its own count)
    frames_stored: int  # in the gateway's database for the device
    counters_exact: bool  # stored counters == the node's sealed counters, each once
    rejections: dict[str, int]
    node_stats: dict
    db: str
    seconds: float
    node_kind: str = "virtual"  # virtual | board | qemu-rv32 (NODE_KINDS)
    node_arch: str | None = None  # the virtual board's unix port: x86 (32-bit) or x64
    uplink: str = "udp"  # udp | serial
    acks_sent: int = 0  # by the gateway (on the serial line, or over UDP)

    @property
    def accuracy(self) -> float:
        return self.correct / len(self.windows) if self.windows else 0.0

    @property
    def ok(self) -> bool:
        n = self.expected_windows
        return (len(self.windows) == n and self.output_matches == n and self.input_matches == n
                and self.reference_equals_heldout and round(self.accuracy, 4) ==
                round(self.meta_accuracy, 4) and self.counters_exact and
                self.frames_stored == self.frames_sealed)


def window_report(device_id: int, counter: int, decoded: dict) -> WindowReport | None:
    """The eval-mode window in a decoded records batch, or None for other frames."""
    recs = decoded.get("records", [])
    ev = {r["code"]: r["value"] for r in recs if r["type"] == "event"}
    if EV_WINDOW not in ev:
        return None
    out = next(r["values"] for r in recs if r["type"] == "reading" and r["sensor"] == ID_OUTPUT)
    dec = next(r for r in recs if r["type"] in ("inference", "anomaly"))
    if dec["type"] == "inference":
        predicted, conf = dec["class"], dec["confidence"]
    else:
        predicted, conf = int(dec["anomalous"]), int(dec["score"])
    return WindowReport(device_id, counter, ev[EV_WINDOW], ev[EV_RECORDING], predicted, conf,
                        ev[EV_TRUTH], tuple(out), ev[EV_INPUT_CRC] & 0xFFFFFFFF)


def reference_outputs(model: str) -> tuple[np.ndarray, bool]:
    """tflite-micro's outputs on every held-out input now, and whether they equal
    heldout.npz's (made by the training script with the same interpreter)."""
    from tinysense.reference.runner import Reference

    held = np.load(MODELS_DIR / model / "heldout.npz")
    ref = Reference(MODELS_DIR / model / "model.tflite")
    shape = ref.input_details[0]["shape"]
    outs = np.stack([ref.run(x.reshape(shape))[0].reshape(-1) for x in held["inputs"]])
    return outs, bool(np.array_equal(outs, held["outputs"].reshape(len(outs), -1)))


def heldout_rows(model: str) -> np.ndarray:
    """The heldout.npz rows the demo recording plays, in playing order."""
    held = np.load(MODELS_DIR / model / "heldout.npz")
    if model == "anomaly":  # demo.tsrc: two test recordings of each kind (docs/models.md)
        recs = [0, 1, 40, 41, 80, 81, 120, 121]
        return np.concatenate([np.flatnonzero(held["recording"] == r) for r in recs])
    return np.arange(len(held["inputs"]))


def lan_address() -> str:
    """This host's address on the network a board would use (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects the route
            return s.getsockname()[0]
        except OSError:
            raise TinysenseError("cannot find this host's LAN address; pass --gateway-host "
                                 "with the IP the board can reach") from None


class LiveTable:
    """Prints one row per frame the gateway stores (called from the gateway's thread)."""

    def __init__(self, labels: list[str], truth_labels: list[str], out: TextIO,
                 window_truth: list[int] | None = None):
        self.labels, self.truth_labels, self.out = labels, truth_labels, out
        # anomaly: each window's own label (heldout.npz; a burst recording is normal between
        # bursts), named with the model's labels; classifiers: the recording's label
        self.window_truth = window_truth
        self.lock = threading.Lock()
        self.frames: queue.Queue = queue.Queue()

    def header(self) -> None:
        conf = "score" if self.window_truth is not None else "conf"
        print(f"{'device':>8}  {'counter':>7}  {'window':>6}  {'predicted':<10} {conf:>5}  "
              f"{'true':<10} ", file=self.out, flush=True)

    def _name(self, names: list[str], i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    def __call__(self, a) -> None:
        self.frames.put(a)
        if a.duplicate or a.decoded is None:
            return
        w = window_report(a.device_id, a.counter, a.decoded)
        head = f"{a.device_id:08x}  {a.counter:7d}"
        if w is not None:
            pred = self._name(self.labels, w.predicted)
            true = self._name(self.truth_labels, w.truth)
            if self.window_truth is not None:  # anomaly model: the score, the window's label
                t = self.window_truth[w.window] if w.window < len(self.window_truth) else -1
                conf, ok = f"{w.confidence:5d}", w.predicted == t
                true = f"{self._name(self.labels, t)} ({true})"
            else:
                conf, ok = f"{w.confidence * 100 // 256:3d} %", pred == true
            line = f"{head}  {w.window:6d}  {pred:<10} {conf:>5}  {true:<10} " + \
                ("ok" if ok else "MISS")
        else:
            line = f"{head}  {self._other(a.decoded)}"
        with self.lock:
            print(line, file=self.out, flush=True)

    def _other(self, decoded: dict) -> str:
        recs = decoded.get("records", [])
        ev = {r["code"]: r["value"] for r in recs if r["type"] == "event"}
        if EV_BOOT in ev:
            return f"  boot   (crashes in a row before: {ev[EV_BOOT]})"
        if EV_END in ev:
            return f"  end    ({ev[EV_END]} windows)"
        if EV_HEARTBEAT in ev:
            counts = next((r["values"] for r in recs if r["type"] == "reading"
                           and r["sensor"] == ID_COUNTS), [])
            per = ", ".join(f"{self._name(self.labels, i)} {n}" for i, n in enumerate(counts)
                            if n)
            return (f"  summary {ev[EV_HEARTBEAT]} windows since the last: {per or '-'}; "
                    f"heap free {ev.get(EV_MEM_FREE, '?')} B")
        if EV_CRASH in ev:
            return f"  CRASH  {ev[EV_CRASH]} in this boot"
        return f"  {len(recs)} records"


class Console:
    """The node's console lines, as the gateway's serial transport reads them (the serial
    demo): collected for node.log, and watched for the app's end."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.last = time.monotonic()
        self.end: str | None = None  # "app: done {...}", or main.py / the app giving up

    def __call__(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        with self.cond:
            self.lines.append(text)
            self.last = time.monotonic()
            if text.startswith(("app: done ", "main.py: ")) or text.endswith("giving up"):
                self.end = text
            self.cond.notify_all()

    def wait(self, silence: float = APP_SILENCE_S) -> str:
        """The console so far, once the app ended or the node was silent for `silence` s."""
        with self.cond:
            while self.end is None and time.monotonic() - self.last < silence:
                self.cond.wait(1.0)
            return "\n".join(self.lines) + "\n"


_PRE_KEYS = ("kind", "n_channels", "window", "stride", "affine", "zscore", "band_edges")


def node_meta(meta: dict) -> dict:
    """The part of a model's meta.json the node app reads (docs/app.md): labels, output
    shape, preprocessing constants, anomaly score, sample rate. Descriptions stay on the
    host, so the node parses ~1 KB of JSON instead of ~4 KB."""
    slim = {"labels": meta["labels"], "output": {"shape": meta["output"]["shape"]},
            "preprocessing": {k: v for k, v in meta["preprocessing"].items() if k in _PRE_KEYS},
            "sensor": {"rate_hz": meta.get("sensor", {}).get("rate_hz", 1)}}
    if meta.get("score"):
        slim["score"] = {"args": meta["score"]["args"], "threshold": meta["score"]["threshold"]}
    return slim


def _app_config(model: str, speed: float, wifi: tuple[str, str] | None,
                serial: bool = False) -> dict:
    cfg = {
        "model": f"/models/{model}.tsm", "replay": f"/data/{model}.tsrc", "source": "replay",
        "speed": speed, "loop": False, "mode": "eval", "heartbeat_s": 5, "watchdog_s": 0,
        "ack_wait_ms": 30, "end_flush_s": 20, "print": True,
    }
    if wifi:
        cfg["wifi"] = {"ssid": wifi[0], "password": wifi[1]}
    if serial:
        cfg["transport"] = "serial"
    return cfg


def run_demo(target: str = "virtual", board: str | None = "ESP32_GENERIC", *,
             model: str = "activity", speed: float | None = None, device_id: int = DEMO_DEVICE_ID,
             gateway_host: str | None = None, gateway_port: int = 0,
             wifi: tuple[str, str] | None = None, workdir: str | os.PathLike | None = None,
             out: TextIO = sys.stdout) -> DemoResult:
    """Run the demo end to end; print the live table and the checks; return the result.

    Args:
        target: 'virtual' (a fresh virtual board in workdir), 'qemu-rv32' (a fresh RV32
            QEMU board in workdir, uplink over its console; 'qemu' falls back to it when
            Espressif's QEMU is absent), or a serial port / pyserial URL of a real board
            (then the gateway listens on all interfaces).
        board: board id from board_configs/.
        model: activity (default), energy or anomaly.
        speed: replay speed (None: SPEEDS[model], about 20 s of playing; on the RV32 QEMU
            board SERIAL_SPEED, unpaced). 0: unpaced.
        device_id: the node's uplink device id.
        gateway_host: the address the node sends to; default 127.0.0.1 (virtual) or this
            host's LAN address (a board).
        gateway_port: UDP port (0: any free port on the virtual board, 47800 for a board;
            unused on the RV32 board).
        wifi: (ssid, password) for a real board's /app.json.
        workdir: state directory (default STATE_DIR/demo, emptied first): gateway.db,
            the virtual or RV32 board's flash, node.log.
    """
    from tinysense.boards import load_board
    from tinysense.convert import convert_model
    from tinysense.node.deploy import deploy
    from tinysense.gateway.run import GatewayConfig, RunningGateway, set_device_model
    from tinysense.gateway.store import Store, open_db
    from tinysense.node import open_node
    from tinysense.provision import provision
    from tinysense.formats.recording import read_recordings
    from tinysense.targets import Target, resolve_target

    start = time.monotonic()
    if model not in RECORDINGS:
        raise TinysenseError(f"unknown demo model {model!r}; expected one of "
                             + ", ".join(RECORDINGS))
    cfg = load_board(board)
    mdir = MODELS_DIR / model
    meta = json.loads((mdir / "meta.json").read_text())
    tsrc = mdir / RECORDINGS[model]
    truth_labels = read_recordings(tsrc).labels
    held = np.load(mdir / "heldout.npz")
    rows = heldout_rows(model)

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    work = Path(workdir) if workdir else STATE_DIR / "demo"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    db = work / "gateway.db"
    resolved = resolve_target(target, cfg)
    if resolved.kind == "qemu":
        raise TinysenseError("the demo needs an uplink, and Espressif's QEMU has no WiFi; run it "
                             "on the RV32 QEMU board (--target qemu-rv32 --board "
                             "ESP32_GENERIC_C3), the virtual board or a board (a port)")
    kind = resolved.kind
    virtual, serial = kind == "virtual", kind == "qemu-rv32"
    spec, target = target, (kind if virtual or serial else resolved.url)
    if speed is None:
        speed = SERIAL_SPEED if serial else SPEEDS[model]
    host = None if serial else gateway_host or ("127.0.0.1" if virtual else lan_address())
    port = gateway_port or (0 if virtual else 47800)
    bind = f"127.0.0.1:{port}" if virtual else f"0.0.0.0:{port}"

    why = f" ({resolved.reason})" if spec not in (None, target) else ""
    say(f"demo: model {model} ({meta['dataset']['name'] if 'dataset' in meta else model}), "
        f"board {cfg.name}, target {target}{why}")
    if not virtual and not serial and not wifi:
        say("demo: no --wifi-ssid given: the board must already be on a network that reaches "
            f"{host}:{port} (set TINYSENSE_WIFI_SSID / TINYSENSE_WIFI_PASSWORD otherwise)")
    ref_out, ref_same = reference_outputs(model)
    window_truth = [int(x) for x in held["labels"][rows]] if meta.get("score") else None
    table = LiveTable(meta["labels"], truth_labels, out, window_truth)
    gw = vb = rb = None
    console = Console()
    try:
        if not serial:  # UDP: the gateway first, so the node can be told its address
            gw = RunningGateway(GatewayConfig(db=str(db), udp=bind), table)
            port = int(gw.addresses["udp"].rpartition(":")[2])
            say(f"gateway: UDP {host}:{port}, database {db}")
        node_target: str | Target = target
        if virtual:
            from tinysense.targets.virtual import start_board

            vb = start_board(cfg.path, directory=work / "board", parent_bound=True)
            node_target = Target("virtual", vb.url, "a fresh virtual board for the demo")
        elif serial:
            from tinysense.targets.qemu.rv32 import ensure_rv32

            rb, _ = ensure_rv32(cfg, directory=work / "board", parent_bound=True)
            node_target = Target("qemu-rv32", rb.url, "a fresh RV32 QEMU board for the demo")
        with open_node(node_target, cfg) as node:
            say(f"node: {node.target.kind} on {node.target.url}, heap {cfg.heap_budget} B")
            res = deploy(node, progress=None)
            say(f"deploy: {res.summary()}")
            prov = provision(node, device_id, db=db, transport="serial" if serial else "udp",
                             gateway=None if serial else f"{host}:{port}", discard_queue=True)
            if serial:  # the gateway acks on the console line: the node waits for them
                node.put(json.dumps(dict(prov.config, serial_acks=True)).encode(),
                         "/uplink.json")
            say(f"provision: device 0x{prov.device_id:08x}, key version {prov.key_version} "
                "(key in the gateway registry and on the node only)"
                + (", uplink over serial with acks" if serial else ""))
            package = convert_model(mdir / "model.tflite", board=cfg).package
            node.mkdir("/models")
            node.mkdir("/data")
            node.put(package, f"/models/{model}.tsm")
            node.put(json.dumps(node_meta(meta), separators=(",", ":")).encode(),
                     f"/models/{model}.json")
            node.put(tsrc, f"/data/{model}.tsrc")
            node.put(json.dumps(_app_config(model, speed, wifi, serial)).encode(), "/app.json")
            # the registry learns the model (app model_id 1): readers show its class names
            set_device_model(db, prov.device_id, mdir / "meta.json", model_id=1, name=model)
            say(f"app: /models/{model}.tsm ({len(package)} B), {tsrc.name} "
                f"({tsrc.stat().st_size} B), /app.json: eval mode, "
                + (f"speed {speed:g}x" if speed else "unpaced (as fast as the node runs)")
                + ("" if serial else "\n"))
            if not serial:
                node.soft_reset()  # a fresh interpreter: the whole heap for the app
                table.header()
                log = node.exec("import tsnode.app\ntsnode.app.main()", timeout=120)
        if serial:  # the host's session is closed: the gateway takes the console line
            gw = RunningGateway(GatewayConfig(db=str(db), serial=rb.url, serial_acks=True,
                                              serial_console=console), table)
            say(f"gateway: serial {rb.url} (the node's console: frames in, acks out), "
                f"database {db}; a soft reset starts the app from main.py\n")
            table.header()
            gw.serial.write(START_APP)
            log = console.wait()
        (work / "node.log").write_text(log)
        stats = _node_stats(log)
        sealed, last = stats.get("frames", 0), stats.get("last_counter", -1)
        deadline = time.monotonic() + 10
        while _stored(db, device_id) < sealed and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        rejections = gw.close() if gw is not None else {}
        acks = gw.gateway.stats["acks"] if gw is not None else 0
        if vb is not None:
            from tinysense.targets.virtual import stop_board

            stop_board(cfg.path, work / "board")
        if rb is not None:
            from tinysense.targets.qemu.rv32 import stop_rv32

            stop_rv32(cfg, work / "board")

    conn = open_db(str(db))
    try:
        stored = [f for f in Store(conn).frames(device_id=device_id)]
    finally:
        conn.close()
    counters = sorted(f.counter for f in stored)
    windows = []
    for f in stored:
        w = window_report(f.device_id, f.counter, json.loads(f.decoded)) if f.decoded else None
        if w is not None:
            windows.append(w)
    windows.sort(key=lambda w: w.window)
    exp_out = ref_out[rows]
    exp_in = held["inputs"].reshape(len(held["inputs"]), -1)[rows]
    out_ok = sum(1 for w in windows if w.window < len(rows)
                 and tuple(int(v) for v in exp_out[w.window]) == w.outputs)
    in_ok = sum(1 for w in windows if w.window < len(rows)
                and zlib.crc32(exp_in[w.window].astype(np.int8).tobytes()) == w.input_crc)
    if window_truth is not None:  # anomaly: the reference's accuracy on these same windows
        correct = sum(1 for w in windows if w.window < len(rows)
                      and w.predicted == window_truth[w.window])
        meta_acc = float(np.mean((held["scores"][rows] > meta["score"]["threshold"])
                                 == (held["labels"][rows] != 0)))
    else:
        correct = sum(1 for w in windows if meta["labels"][w.predicted] == truth_labels[w.truth])
        meta_acc = meta["metrics"]["int8_accuracy"]
    result = DemoResult(
        model=model, target=target, windows=windows, expected_windows=len(rows),
        correct=correct, meta_accuracy=meta_acc, output_matches=out_ok, input_matches=in_ok,
        reference_equals_heldout=ref_same, frames_sealed=sealed, frames_stored=len(stored),
        counters_exact=counters == list(range(last - sealed + 1, last + 1)),
        rejections=rejections, node_stats=stats, db=str(db),
        seconds=time.monotonic() - start, node_kind=kind, uplink="serial" if serial else "udp",
        acks_sent=acks, node_arch=_virtual_arch(cfg) if virtual else None)
    print_result(result, out)
    return result


def _node_stats(log: str) -> dict:
    for line in reversed(log.splitlines()):
        if line.startswith("app: done "):
            return json.loads(line[len("app: done "):])
    tail = "\n".join(log.strip().splitlines()[-5:])
    raise TinysenseError(f"the app on the node did not finish; its last lines:\n{tail}")


def _stored(db: Path, device_id: int) -> int:
    from tinysense.gateway.store import Store, open_db

    conn = open_db(str(db))
    try:
        return Store(conn).count_frames(device_id)
    finally:
        conn.close()


def _infer_time(r: DemoResult) -> str:
    """The node's last inference time; on the RV32 QEMU board its emulated time, which is
    an instruction count (QEMU -icount shift=0: 1 instruction = 1 ns of ticks_us)."""
    us = r.node_stats.get("infer_us")
    if r.node_kind != "qemu-rv32" or not isinstance(us, int):
        return f"{us if us is not None else '?'} us"
    from tinysense.targets.qemu.rv32 import C3_MHZ, c3_lower_bound_ms, instructions

    count = instructions(us / 1000)
    return (f"{us} us of emulated time = {count:,} instructions (-icount shift=0: 1 "
            f"instruction = 1 ns; >= {c3_lower_bound_ms(count):.2f} ms on a {C3_MHZ} MHz "
            "ESP32-C3)")


def _heap(st: dict) -> str:
    """Live heap peak and the headroom left at it (the whole GC heap: free + allocated at
    the end)."""
    peak = st.get("live_peak")
    if not isinstance(peak, int) or "mem_free" not in st:
        return f"live heap peak {peak if peak is not None else '?'} B"
    heap = st["mem_free"] + st["mem_alloc"]
    return f"live heap peak {peak} B of {heap} B ({heap - peak} B free at the peak)"


def _virtual_arch(cfg) -> str | None:
    from tinysense.targets.virtual import unix_port, unix_port_arch

    try:
        return unix_port_arch(unix_port(cfg).exe)
    except TinysenseError:
        return None


def _kind_label(r) -> str:
    """'32-bit virtual board' / '64-bit virtual board' / 'RV32 QEMU' / 'board'."""
    label = NODE_KINDS.get(r.node_kind, r.node_kind)
    bits = {"x86": "32-bit", "x64": "64-bit"}.get(r.node_arch or "")
    return f"{bits} {label}" if r.node_kind == "virtual" and bits else label


def print_result(r: DemoResult, out: TextIO = sys.stdout) -> None:
    def mark(good: bool) -> str:
        return "PASS" if good else "FAIL"

    n = r.expected_windows
    st = r.node_stats
    lines = [
        "",
        f"gateway: stored {r.frames_stored} frames from the node, which sealed "
        f"{r.frames_sealed} (counters each exactly once: {mark(r.counters_exact)}); "
        f"rejections: {', '.join(f'{k}={v}' for k, v in r.rejections.items()) or 'none'}"
        + (f"; {r.acks_sent} acks written back on the node's console" if r.uplink == "serial"
           else ""),
        f"windows reported: {len(r.windows)} of {n}",
        f"accuracy on the node: {r.correct}/{len(r.windows)} = {r.accuracy:.4f}; "
        f"{'meta.json int8' if r.model != 'anomaly' else 'tflite-micro (heldout.npz scores)'}"
        f" accuracy {r.meta_accuracy:.4f}: "
        f"{mark(round(r.accuracy, 4) == round(r.meta_accuracy, 4))}",
        f"node outputs == tflite-micro outputs, window for window: {r.output_matches}/{n} "
        f"{mark(r.output_matches == n)}",
        f"node inputs == training pipeline inputs (crc32): {r.input_matches}/{n} "
        f"{mark(r.input_matches == n)}",
        f"tflite-micro now == heldout.npz outputs: {mark(r.reference_equals_heldout)}",
        f"node ({_kind_label(r)}): inference {_infer_time(r)}, "
        f"{st.get('infer_alloc', '?')} B allocated per inference, {_heap(st)}, "
        f"{st.get('crashes', '?')} crashes",
        f"demo {'PASSED' if r.ok else 'FAILED'} in {r.seconds:.1f} s "
        f"(frames: `tinysense uplinks --db {r.db}`)",
    ]
    print("\n".join(lines), file=out, flush=True)
