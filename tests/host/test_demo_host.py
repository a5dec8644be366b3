"""tinysense.demo's host-side pieces: reading eval frames, the live table, the slim meta, the
CLI. The demo itself runs end to end in tests/hil/test_demo.py."""

from __future__ import annotations

import io
import json

from tinysense.cli import build_parser
from tinysense.demo import (
    EV_BOOT, EV_INPUT_CRC, EV_RECORDING, EV_TRUTH, EV_WINDOW, ID_OUTPUT, LiveTable, node_meta,
    window_report,
)
from tinysense.gateway.core import Accepted
from tinysense.paths import MODELS_DIR
from tinysense.uplink import decode_records, encode_records


def _eval_frame(window: int, cls: int, conf: int, truth: int, crc: int) -> dict:
    recs = [{"type": "inference", "model": 1, "t_ms": 5, "class": cls, "confidence": conf},
            {"type": "reading", "sensor": ID_OUTPUT, "t_ms": 5, "dtype": "i16",
             "values": [-128, 120, -100, -128]},
            {"type": "event", "code": EV_WINDOW, "t_ms": 5, "value": window},
            {"type": "event", "code": EV_RECORDING, "t_ms": 5, "value": window // 3},
            {"type": "event", "code": EV_TRUTH, "t_ms": 5, "value": truth},
            {"type": "event", "code": EV_INPUT_CRC, "t_ms": 5, "value": crc}]
    # through the real encoder and decoder, as the gateway stores it
    return {"records": decode_records(encode_records(recs))}


def test_window_report_reads_an_eval_frame():
    w = window_report(7, 12, _eval_frame(4, 1, 250, 1, -2))
    assert (w.device_id, w.counter, w.window, w.recording) == (7, 12, 4, 1)
    assert (w.predicted, w.confidence, w.truth) == (1, 250, 1)
    assert w.outputs == (-128, 120, -100, -128)
    assert w.input_crc == 0xFFFFFFFE  # int32 on the wire, crc32 (uint32) here
    boot = {"records": decode_records(encode_records(
        [{"type": "event", "code": EV_BOOT, "t_ms": 0, "value": 0}]))}
    assert window_report(7, 0, boot) is None


def test_live_table_rows():
    out = io.StringIO()
    table = LiveTable(["badminton", "running", "standing", "walking"],
                      ["badminton", "running", "standing", "walking"], out)
    table.header()
    for ctr, (cls, truth) in enumerate([(2, 2), (3, 1)]):
        table(Accepted(0x7E5D0001, 1, ctr, 1, "udp", 0.0, _eval_frame(ctr, cls, 250, truth, 0),
                       None))
    table(Accepted(0x7E5D0001, 1, 2, 1, "udp", 0.0, {"records": decode_records(encode_records(
        [{"type": "event", "code": EV_BOOT, "t_ms": 0, "value": 0}]))}, None))
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["device", "counter", "window", "predicted", "conf", "true"]
    assert lines[1].split() == ["7e5d0001", "0", "0", "standing", "97", "%", "standing", "ok"]
    assert lines[2].split()[-3:] == ["%", "running", "MISS"]
    assert "boot" in lines[3]
    assert table.frames.qsize() == 3


def test_node_meta_keeps_what_the_app_reads():
    for name in ("activity", "energy", "anomaly"):
        meta = json.loads((MODELS_DIR / name / "meta.json").read_text())
        slim = node_meta(meta)
        assert slim["labels"] == meta["labels"]
        assert slim["output"]["shape"] == meta["output"]["shape"]
        pre = slim["preprocessing"]
        assert {"kind", "n_channels", "window", "stride"} <= set(pre)
        assert all(pre[k] == meta["preprocessing"][k] for k in pre)
        assert ("score" in slim) == (name == "anomaly")
        assert len(json.dumps(slim)) < len(json.dumps(meta)) / 2


def test_demo_cli_options():
    args = build_parser().parse_args(["demo", "--target", "/dev/ttyUSB0", "--model", "anomaly",
                                      "--wifi-ssid", "lab", "--gateway-host", "10.0.0.2"])
    assert (args.target, args.model, args.wifi_ssid, args.gateway_host) == (
        "/dev/ttyUSB0", "anomaly", "lab", "10.0.0.2")
    assert args.speed is None and not args.selfcheck
    assert build_parser().parse_args(["demo", "--selfcheck"]).selfcheck


def test_demo_refuses_targets_it_cannot_use(tmp_path):
    import pytest

    from tinysense.demo import run_demo
    from tinysense.errors import TinysenseError

    with pytest.raises(TinysenseError, match="/dev/ttyNOPE does not exist"):
        run_demo("/dev/ttyNOPE", workdir=tmp_path / "d", out=io.StringIO())
    with pytest.raises(TinysenseError, match="unknown demo model 'fish'"):
        run_demo("virtual", model="fish", workdir=tmp_path / "d", out=io.StringIO())


def test_console_collects_lines_until_the_app_ends():
    """The serial demo's view of the node's console (the gateway's serial transport feeds it
    every line that is not a frame): done at the app's stats line, or main.py falling through
    to the REPL, or after a silence."""
    from tinysense.demo import Console, _node_stats

    c = Console()
    for line in (b"MPY: soft reboot", b"app: window 0 standing 99%", b'app: done {"frames": 3}'):
        c(line)
    log = c.wait(silence=60)  # returns at once: the app ended
    assert _node_stats(log) == {"frames": 3}
    c = Console()
    c(b"main.py: no tsnode.app deployed; REPL")
    assert c.end == "main.py: no tsnode.app deployed; REPL"
    c = Console()
    c(b"app: window 0 standing 99%")
    assert c.wait(silence=0) == "app: window 0 standing 99%\n" and c.end is None


def test_result_labels_the_node_kind_and_rv32_time():
    """The RV32 QEMU board's inference time is emulated (instructions, -icount shift=0); the
    result line says so and names the node kind; the heap headroom is shown for all."""
    from tinysense.demo import DemoResult, print_result

    st = {"infer_us": 900, "infer_alloc": 0, "live_peak": 80000, "mem_free": 70000,
          "mem_alloc": 86000, "crashes": 0}
    r = DemoResult(model="activity", target="qemu-rv32", windows=[], expected_windows=0,
                   correct=0, meta_accuracy=1.0, output_matches=0, input_matches=0,
                   reference_equals_heldout=True, frames_sealed=0, frames_stored=0,
                   counters_exact=True, rejections={}, node_stats=st, db="x.db", seconds=1.0,
                   node_kind="qemu-rv32", uplink="serial")
    out = io.StringIO()
    print_result(r, out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("node ("))
    assert line.startswith("node (RV32 QEMU): inference 900 us of emulated time = 900,000 "
                           "instructions (-icount shift=0: 1 instruction = 1 ns; >= 5.62 ms")
    assert "live heap peak 80000 B of 156000 B (76000 B free at the peak)" in line
    r.node_kind = "virtual"
    out = io.StringIO()
    print_result(r, out)
    assert "node (virtual board): inference 900 us, 0 B allocated" in out.getvalue()
