"""The node app (firmware/tsnode/app.py) on the MicroPython unix port: config defaults and
errors, decisions, events vs heartbeat summaries, eval mode, crash recovery. Frames go
through the real uplink (serial transport: TSF1 lines on stdout) and are opened and decoded
by the host codec, so every assertion is about what a gateway would receive."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import (KERNELS, REPO, micropython_env, micropython_exe, natmod_dir,
                      run_micropython, unix_kind_exe)

from tinysense.convert import convert_model
from tinysense.targets.virtual import unix_port_arch
from tinysense.uplink import decode_batch, open_frame

pytestmark = pytest.mark.node
MODELS = REPO / "models"
APP_MP = Path(__file__).resolve().parent / "app_mp"
KEY = bytes(range(16))
DEVICE = 0x51
# record ids / event codes (firmware/tsnode/report.py, docs/app.md)
ID_COUNTS, ID_OUTPUT = 200, 201
EV_BOOT, EV_CHANGE, EV_HEARTBEAT, EV_CRASH, EV_END = 1, 2, 3, 4, 7
EV_WINDOW, EV_RECORDING, EV_TRUTH, EV_INPUT_CRC = 16, 17, 18, 19


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    """Each model converted for ESP32_GENERIC, with its meta.json beside it."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name in ("activity", "anomaly"):
        (d / f"{name}.tsm").write_bytes(
            convert_model(MODELS / name / "model.tflite", board="ESP32_GENERIC").package)
        (d / f"{name}.json").write_text((MODELS / name / "meta.json").read_text())
        out[name] = d / f"{name}.tsm"
    return out


def run_app(tmp_path: Path, app: dict, *, uplink: bool = True, crash_reads=(),
            check: bool = True, fake_mpu: bool = False, natmod: Path | None = None,
            heap: str = "512K", exe: str | None = None) -> tuple[list[dict], dict, str, int]:
    """Run the app; return (decoded frames in order, app stats, stdout, exit status).
    natmod: a directory with tsnn.mpy for the unix port's arch, put on the path; heap: the
    GC heap (-X heapsize); exe: the unix port (default: the one the node tests run)."""
    root = tmp_path / "node"
    root.mkdir(exist_ok=True)
    args = {"root": str(root), "app": app, "key": KEY.hex() if uplink else None,
            "device_id": DEVICE, "crash_reads": list(crash_reads), "fake_mpu": fake_mpu}
    env = micropython_env([str(REPO / "firmware"), str(APP_MP), str(APP_MP.parent)]
                          + ([str(natmod)] if natmod else []))
    # arguments in a file: the unix-port wrapper crashes on argv strings over ~256 bytes
    (tmp_path / "args.json").write_text(json.dumps(args))
    proc = subprocess.run([exe or micropython_exe(), "-X", f"heapsize={heap}",
                           str(APP_MP / "app_run.py"),
                           str(tmp_path / "args.json")], env=env, capture_output=True,
                          text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"app failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    frames, stats = [], {}
    for line in proc.stdout.splitlines():
        if line.startswith("TSF1 "):
            header, plain = open_frame(KEY, base64.b64decode(line[5:]))
            assert header.device_id == DEVICE
            batch = decode_batch(plain)
            frames.append({"counter": header.counter, "records": batch.records})
        elif line.startswith("app: done "):
            stats = json.loads(line[len("app: done "):])
    return frames, stats, proc.stdout + proc.stderr, proc.returncode


def events(frame: dict) -> dict[int, int]:
    return {r["code"]: r["value"] for r in frame["records"] if r["type"] == "event"}


def reading(frame: dict, sensor: int) -> list[int] | None:
    return next((r["values"] for r in frame["records"]
                 if r["type"] == "reading" and r["sensor"] == sensor), None)


def base_cfg(packages, name: str, **over) -> dict:
    tsrc = "demo.tsrc" if name == "anomaly" else "heldout.tsrc"
    cfg = {"model": str(packages[name]), "replay": str(MODELS / name / tsrc), "speed": 0,
           "loop": False, "print": False, "heartbeat_s": 0}
    cfg.update(over)
    return cfg


# --- config ------------------------------------------------------------------------------

CONFIG_SCRIPT = r"""
import json
from tsnode import config as C
d = C.merge(None)
print(json.dumps(d))
for bad in ({"modle": 1}, {"mode": "fast"}, {"heartbeat_s": -1}, {"speed": "x"},
            {"model_id": 300}, {"threshold": 1.5}, {"wifi": "net"}, {"kernels": "fast"}):
    try:
        C.merge(bad)
        print("ACCEPTED", bad)
    except C.ConfigError as e:
        print("ERR", e)
print(json.dumps(C.load("{missing}")))
with open("{bad}", "w") as f:
    f.write("{not json")
try:
    C.load("{bad}")
except C.ConfigError as e:
    print("ERR", e)
with open("{part}", "w") as f:
    f.write('{"mode": "eval", "wifi": {"ssid": "lab"}, "model": "/rom/m.tsm"}')
print(json.dumps(C.load("{part}")))
"""


def test_config_defaults_and_one_line_errors(tmp_path):
    script = CONFIG_SCRIPT.replace("{missing}", str(tmp_path / "none.json")).replace(
        "{bad}", str(tmp_path / "bad.json")).replace("{part}", str(tmp_path / "part.json"))
    lines = run_micropython(script).splitlines()
    defaults = json.loads(lines[0])
    # safe defaults: the activity model, replay on the virtual board / the board's sensor,
    # events + heartbeat, an uplink, a watchdog on a board
    assert defaults["model"] == "/models/activity.tsm"
    assert defaults["meta"] == "/models/activity.json"
    assert defaults["source"] == "auto" and defaults["mode"] == "events"
    assert defaults["heartbeat_s"] == 60 and defaults["watchdog_s"] == 30
    assert defaults["uplink"] is True and defaults["wifi"] == {"ssid": "", "password": ""}
    assert defaults["kernels"] == "auto"
    errors = [ln for ln in lines[1:9]]
    assert all(ln.startswith("ERR app.json: ") for ln in errors), errors
    assert "unknown key 'modle'" in errors[0]
    assert "mode is 'fast', expected one of events, eval" in errors[1]
    assert "heartbeat_s is -1" in errors[2]
    assert "model_id and min_confidence are 0..255" in errors[4]
    assert "kernels is 'fast', expected one of auto, native, viper" in errors[7]
    assert json.loads(lines[9]) == defaults  # no file: all defaults
    assert lines[10].startswith("ERR ") and "not valid JSON" in lines[10]
    part = json.loads(lines[11])
    assert part["mode"] == "eval" and part["model"] == "/rom/m.tsm"
    assert part["meta"] == "/rom/m.json"
    assert part["wifi"] == {"ssid": "lab", "password": ""}  # merged, not replaced


# --- decisions ---------------------------------------------------------------------------

DECIDE_SCRIPT = """
from tsnode.decide import Decider
meta = {"labels": ["a", "b", "c"], "output": {"shape": [1, 3]}}
d = Decider(meta, min_confidence=200)
def out(*codes):
    return bytes((c & 0xFF) for c in codes)
seq = [out(100, -100, -128), out(100, 100, -128), out(-128, 60, 0), out(-128, 80, 0),
       out(-128, -128, 100), out(120, 0, 0)]
for t, o in enumerate(seq):
    k = d.decide(b"", o)
    print(k, d.confidence, d.event_due(t * 1000), d.state)
print(list(d.counts), d.windows)
d.reset_summary()
print(list(d.counts), d.windows, d.windows_total)
am = {"labels": ["normal", "anomaly"], "output": {"shape": [1, 2]},
      "score": {"args": {"n": 2, "zp_in": 0, "zp_out": 0, "mul": 4096, "shift": 12},
                "threshold": 100}}
a = Decider(am, repeat_ms=5000)
for t, (x, y) in enumerate([(0, 0), (20, 0), (20, 0), (20, 0), (0, 0), (30, 0)]):
    a.decide(bytes([x, 0]), bytes([y, 0]))
    print(a.cls, a.score, a.event_due(t * 3000))
"""


def test_decider_classes_confidence_events_and_anomaly_threshold():
    lines = run_micropython(DECIDE_SCRIPT).splitlines()
    # class, confidence (code + 128), event?, state
    assert lines[0] == "0 228 True 0"  # the first decision is always an event
    assert lines[1] == "0 228 False 0"  # tie 100/100: first index, no change
    assert lines[2] == "1 188 False 0"  # a change below min_confidence is only counted
    assert lines[3] == "1 208 True 1"  # a confident change is an event
    assert lines[4] == "2 228 True 2"
    assert lines[5] == "0 248 True 0"
    assert lines[6] == "[3, 2, 1] 6"  # per-class counts since the summary
    assert lines[7] == "[0, 0, 0] 0 6"
    # anomaly: score = sum of squared differences (20^2 = 400 > 100)
    assert lines[8] == "0 0 True"  # first decision
    assert lines[9] == "1 400 True"  # normal -> anomaly
    assert lines[10] == "1 400 False"  # 3 s after the event: not yet repeat_ms (5 s)
    assert lines[11] == "1 400 True"  # 6 s after it: the anomaly is reported again
    assert lines[12] == "0 0 True"  # back to normal
    assert lines[13] == "1 900 True"


# --- events, summaries, eval mode ----------------------------------------------------------

def test_events_follow_class_changes_and_summaries_count_every_window(packages, tmp_path):
    held = np.load(MODELS / "activity" / "heldout.npz")
    pred = held["outputs"].argmax(1)
    changes = [int(pred[0])] + [int(b) for a, b in zip(pred, pred[1:]) if a != b]
    frames, stats, out, _ = run_app(tmp_path, base_cfg(packages, "activity",
                                                       heartbeat_s=0.5, speed=100))
    assert stats["windows"] == len(pred) == 120 and stats["crashes"] == 0
    assert stats["infer_alloc"] == 0  # copy in, run, decide: no heap allocation
    assert [f["counter"] for f in frames] == list(range(len(frames)))  # every frame, in order
    assert EV_BOOT in events(frames[0]) and EV_END in events(frames[-1])
    assert events(frames[-1])[EV_END] == 120
    ev = [f for f in frames if EV_CHANGE in events(f)]
    got = [next(r["class"] for r in f["records"] if r["type"] == "inference") for f in ev]
    assert got == changes  # one event per class change (min_confidence 0), nothing else
    assert [events(f)[EV_CHANGE] for f in ev] == [-1] + changes[:-1]  # the previous class
    summaries = [f for f in frames if EV_HEARTBEAT in events(f)]
    assert 5 <= len(summaries) <= 10  # 4 s of replay at 100x real time, 0.5 s heartbeats
    counts = np.sum([reading(f, ID_COUNTS) for f in summaries], axis=0)
    assert list(counts) == list(np.bincount(pred, minlength=4))  # every window counted once
    assert sum(events(f)[EV_HEARTBEAT] for f in summaries) == 120
    # bandwidth follows what happens: far fewer frames than windows
    assert len(frames) == 2 + len(ev) + len(summaries) < 120


@pytest.mark.parametrize("kernels", KERNELS)
def test_eval_mode_sends_every_window_with_its_true_label(packages, tmp_path, kernels):
    """Every window's output bytes as tflite-micro gives them, with app.json's `kernels`
    set to viper and to native (tsnn.mpy for the unix port's arch on the path)."""
    held = np.load(MODELS / "activity" / "heldout.npz")
    natmod = natmod_dir(unix_port_arch(micropython_exe())) if kernels == "native" else None
    frames, stats, out, _ = run_app(tmp_path, base_cfg(packages, "activity", mode="eval",
                                                       kernels=kernels), natmod=natmod)
    assert f"app: {kernels} kernels" in out
    win = [f for f in frames if EV_WINDOW in events(f)]
    assert [events(f)[EV_WINDOW] for f in win] == list(range(120))
    assert [events(f)[EV_TRUTH] for f in win] == [int(x) for x in held["labels"]]
    assert [events(f)[EV_RECORDING] for f in win] == [int(x) for x in held["recording"]]
    outs = np.array([reading(f, ID_OUTPUT) for f in win])
    np.testing.assert_array_equal(outs, held["outputs"])  # every output byte
    import zlib
    crcs = [zlib.crc32(x.astype(np.int8).tobytes()) for x in held["inputs"]]
    assert [events(f)[EV_INPUT_CRC] & 0xFFFFFFFF for f in win] == crcs
    assert stats["infer_alloc"] == 0


def test_anomaly_events_at_threshold_crossings(packages, tmp_path):
    meta = json.loads((MODELS / "anomaly" / "meta.json").read_text())
    held = np.load(MODELS / "anomaly" / "heldout.npz")
    rows = np.concatenate([np.flatnonzero(held["recording"] == r)
                           for r in (0, 1, 40, 41, 80, 81, 120, 121)])
    flags = [int(s > meta["score"]["threshold"]) for s in held["scores"][rows]]
    crossings = [flags[0]] + [b for a, b in zip(flags, flags[1:]) if a != b]
    frames, stats, _, _ = run_app(tmp_path, base_cfg(packages, "anomaly", heartbeat_s=0))
    assert stats["windows"] == len(rows) == 32
    ev = [f for f in frames if EV_CHANGE in events(f)]
    recs = [next(r for r in f["records"] if r["type"] == "anomaly") for f in ev]
    assert [int(r["anomalous"]) for r in recs] == crossings
    scores = [int(s) for s in held["scores"][rows]]
    assert all(int(r["score"]) in scores for r in recs)  # integer scores, exact as float32


# --- crash recovery --------------------------------------------------------------------------

def test_a_crash_in_the_loop_is_counted_reported_and_the_loop_goes_on(packages, tmp_path):
    frames, stats, out, _ = run_app(tmp_path, base_cfg(packages, "activity", mode="eval"),
                                    crash_reads=[130, 1500])
    assert stats["crashes"] == 2
    assert "injected sensor fault at read 130" in out and "restarting the loop" in out
    crash = [events(f)[EV_CRASH] for f in frames if EV_CRASH in events(f)]
    assert crash == [1, 2]
    # windows go on after each restart (the pipeline restarts its window: a few are lost)
    assert 110 <= stats["windows"] < 120
    assert [f["counter"] for f in frames] == list(range(len(frames)))


def test_crashes_too_fast_end_the_app_for_the_supervisor(packages, tmp_path):
    _, stats, out, rc = run_app(tmp_path, base_cfg(packages, "activity", max_restarts=2),
                                crash_reads=[10, 20, 30, 40], check=False)
    assert rc != 0 and not stats  # the exception leaves app.run (supervise soft-resets)
    assert "3 crashes within 60 s; giving up" in out
    assert "injected sensor fault at read 30" in out


def test_without_an_uplink_the_app_decides_and_prints(packages, tmp_path):
    frames, stats, out, _ = run_app(tmp_path, base_cfg(packages, "activity", print=True),
                                    uplink=False)
    assert frames == [] and stats["windows"] == 120
    assert "app: window 0 standing" in out and "(true standing) EVENT" in out


def test_main_without_a_model_says_so_and_returns(tmp_path):
    cfg = tmp_path / "app.json"
    cfg.write_text(json.dumps({"model": str(tmp_path / "none.tsm")}))
    out = run_micropython(f"import tsnode.app\nprint('->', tsnode.app.main({str(cfg)!r}))")
    assert f"app: {tmp_path / 'none.tsm'} not found; deploy a model" in out
    assert out.strip().endswith("-> None")  # returns: no crash, so no soft-reset loop


def test_a_sensor_source_is_paced_at_its_rate(packages, tmp_path):
    # the board seam's I2C bus with an (emulated) MPU6050 on it; 200 Hz so a test is short
    cfg = base_cfg(packages, "activity", source="mpu6050", rate_hz=200, max_windows=3,
                   heartbeat_s=0)
    frames, stats, out, _ = run_app(tmp_path, cfg, fake_mpu=True)
    assert stats["windows"] == 3 and stats["crashes"] == 0  # windows at frames 50, 75, 100
    elapsed = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("elapsed_ms")))
    # 100 samples, 5 ms apart: never faster than the rate (no upper bound: a loaded host may
    # run the VM slower than real time, which says nothing about the pacer)
    assert elapsed >= 100 * 5
    assert EV_CHANGE in events(frames[1])  # the first decision


PACER_SCRIPT = """
import time
from tsnode import board
calls = []
board.light_sleep = lambda ms: (calls.append(ms), time.sleep_ms(ms))
ticks = []
class FakeTimer:
    def deinit(self):
        ticks.append("deinit")
board.timer = lambda hz, cb: (ticks.append(hz), FakeTimer())[1]
from tsnode.pacer import Pacer
p = Pacer(4, "auto", 200)  # 250 ms apart: light sleep until the sample is due
t0 = time.ticks_ms()
for _ in range(4):
    p.wait()
print("light", p.light, len(calls), time.ticks_diff(time.ticks_ms(), t0), min(calls))
q = Pacer(50, "auto", 200)  # 20 ms apart: a hardware timer, idling between its ticks
print("timer", q.light, ticks)
q._tick(None)
q.wait()  # a tick is pending: returns at once
q.stop()
print("stopped", ticks)
"""


def test_pacer_light_sleeps_far_apart_samples_and_times_close_ones():
    lines = run_micropython(PACER_SCRIPT).splitlines()
    light, n, elapsed, shortest = lines[0].split()[1:]
    assert light == "True" and int(n) == 4 and 950 <= int(elapsed) < 1300
    assert int(shortest) > 150  # it slept most of each period, not in slices
    assert lines[1] == "timer False [50]"
    assert lines[2] == "stopped [50, 'deinit']"


def test_the_app_boots_with_the_full_meta_on_the_esp32_generic_heap(packages, tmp_path):
    """docs/app.md allows the model's whole meta.json as /models/<name>.json: on
    ESP32_GENERIC's heap every one of six boots must reach the loop and finish, not die with
    MemoryError. The 32-bit build, whose objects have an ESP32's sizes, with the board's
    heap_budget as its GC heap (the 64-bit build needs up to twice that for the same
    objects: with the budget in bytes it runs out before the app starts, as the virtual
    board's docs say; that is the 64-bit build's pessimism, not the board's)."""
    from tinysense.boards import load_board

    budget = load_board("ESP32_GENERIC").heap_budget
    assert len((packages["activity"].with_suffix(".json")).read_text()) > 3000  # the full meta
    for boot in range(6):
        d = tmp_path / f"boot{boot}"
        d.mkdir()
        frames, stats, out, rc = run_app(d, base_cfg(packages, "activity", mode="eval"),
                                         heap=str(budget), exe=unix_kind_exe("x86"),
                                         check=False)
        assert rc == 0 and "MemoryError" not in out, f"boot {boot}: {out[-1500:]}"
        assert stats.get("windows", 0) > 0 and frames, f"boot {boot}: {out[-800:]}"
