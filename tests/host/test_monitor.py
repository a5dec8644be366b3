"""The serial monitor: frame decoding with registry keys, log file, passthrough, reconnects.

Frames are sealed with the uplink codec (tinysense.uplink) and keys live in a real gateway
registry (SQLite file). The reconnect tests use a pty this test owns (closed and recreated,
as a USB device vanishes and comes back) and the real virtual board (stopped and started),
whose frames come from the node's own uplink code (firmware/tsnode/uplink, serial transport).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tinysense import paths
from tinysense.gateway.registry import Registry
from tinysense.gateway.store import open_db
from tinysense.monitor.frames import FrameDescriber, registry_keys
from tinysense.monitor.monitor import Monitor
from tinysense.formats.frame import seal
from tinysense.formats.payload import encode_records

KEY = bytes(range(0x40, 0x50))
RECORDS = [
    {"type": "inference", "model": 1, "t_ms": 1000, "class": 2, "confidence": 200},
    {"type": "reading", "sensor": 0, "t_ms": 1010, "values": [1, -2, 3]},
]


def frame_line(device: int, counter: int, key: bytes = KEY) -> str:
    frame = seal(key, device, counter, 1, encode_records(RECORDS, boot=3))
    return "TSF1 " + base64.b64encode(frame).decode()


@pytest.fixture
def keys(tmp_path):
    db = tmp_path / "gateway.db"
    Registry(open_db(db)).set_key(42, KEY)
    return registry_keys(db)


def test_describe_with_key_without_key_and_forged(keys):
    d = FrameDescriber(keys)
    text = d.describe(frame_line(42, 7))
    assert "device 42 (0x0000002a) up #7" in text
    assert "boot 3: 2 records: inference class 2 78% | sensor_0 [1, -2, 3]" in text
    no_key = d.describe(frame_line(43, 1))
    assert "device 43" in no_key and "#1" in no_key and "no key" in no_key
    forged = d.describe(frame_line(42, 8, key=bytes(16)))
    assert "REJECTED (bad_tag)" in forged
    assert d.describe("TSF1 ###") == "[uplink] not a frame: bad base64"
    assert "truncated" in d.describe("TSF1 " + base64.b64encode(b"\x01\x00").decode())
    assert d.describe(">>> print('TSF1 abc')") is None
    for out in (text, no_key, forged):
        assert KEY.hex() not in out and KEY.hex().upper() not in out


def test_describe_names_records_and_classes_from_the_registry(tmp_path):
    """With the device's model in the registry the monitor shows class names, not indices."""
    from tinysense.monitor.frames import registry_labels

    db = tmp_path / "gateway.db"
    reg = Registry(open_db(db))
    reg.set_key(42, KEY)
    reg.set_model(42, 1, "activity", ["badminton", "running", "standing", "walking"], b"{}")
    d = FrameDescriber(registry_keys(db), registry_labels(db))
    recs = RECORDS + [{"type": "reading", "sensor": 200, "t_ms": 1, "values": [0, 3, 1, 0]},
                      {"type": "event", "code": 5, "t_ms": 1, "value": 39104},
                      {"type": "event", "code": 2, "t_ms": 1, "value": 0}]
    line = "TSF1 " + base64.b64encode(seal(KEY, 42, 9, 1, encode_records(recs))).decode()
    text = d.describe(line)
    assert ("inference standing 78% | sensor_0 [1, -2, 3] | counts [badminton=0, running=3, "
            "standing=1, walking=0] windows | mem_free 39104 B | change badminton") in text
    assert registry_labels(tmp_path / "missing.db") is None


def test_no_registry_file(tmp_path):
    assert registry_keys(tmp_path / "missing.db") is None
    assert not (tmp_path / "missing.db").exists()   # the monitor does not create one


def wait_for(predicate, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class FakeUsb:
    """A pty standing in for a USB serial device; `unplug()`/`plug()` make it vanish/return
    at the same path (a symlink, as udev's /dev/serial/by-id names are)."""

    def __init__(self, path):
        self.path = path
        self.master = None
        self.plug()

    def plug(self):
        self.master, slave = os.openpty()
        name = os.ttyname(slave)
        os.close(slave)
        os.symlink(name, self.path)

    def unplug(self):
        os.unlink(self.path)
        os.close(self.master)

    def write(self, text: str):
        os.write(self.master, text.encode())

    def read(self, n: int = 100) -> bytes:
        return os.read(self.master, n)


def test_monitor_on_a_pty_survives_unplug(tmp_path, keys):
    port = tmp_path / "ttyUSB0"
    usb = FakeUsb(port)
    out = io.StringIO()
    log = tmp_path / "monitor.log"
    mon = Monitor(str(port), describer=FrameDescriber(keys), log=log, out=out)
    mon.open_first()
    runner = threading.Thread(target=mon.run, daemon=True)
    runner.start()
    try:
        usb.write("hello board\r\n" + frame_line(42, 1) + "\r\n>>> ")
        wait_for(lambda: mon.frames == 1 and ">>> " in out.getvalue(), what="first frame")
        mon.send(b"help()\r")                    # keystrokes go to the board unchanged
        assert usb.read() == b"help()\r"
        usb.unplug()
        wait_for(lambda: "disconnected" in out.getvalue(), what="disconnect note")
        time.sleep(0.3)
        usb.plug()
        wait_for(lambda: mon.reconnects == 1, what="reconnect")
        usb.write(frame_line(42, 2) + "\r\n")
        wait_for(lambda: mon.frames == 2, what="frame after reconnect")
        mon.send(b"\x1d")                        # Ctrl-] quits
        runner.join(timeout=5)
        assert not runner.is_alive()
    finally:
        mon.stop()
        runner.join(timeout=5)
    shown = out.getvalue()
    assert "#1" in shown and "#2" in shown and "reconnected to" in shown
    logged = log.read_text().splitlines()
    stamp_re = r"\d\d:\d\d:\d\d\.\d\d\d "
    assert all(re.match(stamp_re, line) for line in logged)
    texts = [line[13:] for line in logged]
    assert "hello board" in texts
    assert any(t.startswith("[uplink] device 42 (0x0000002a) up #2 boot 3") for t in texts)
    assert any("disconnected" in t for t in texts) and ">>> " in texts   # partial line kept
    assert KEY.hex() not in log.read_text()


def test_monitor_over_tcp_reconnects(tmp_path, keys):
    """socket:// (a board behind a TCP serial server, QEMU's UART): the server going away
    and coming back on the same port is a reconnect, not an exit."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    out = io.StringIO()
    mon = Monitor(f"socket://127.0.0.1:{port}", describer=FrameDescriber(keys), out=out)
    mon.open_first()
    runner = threading.Thread(target=mon.run, daemon=True)
    runner.start()
    try:
        conn, _ = server.accept()
        conn.sendall((frame_line(42, 1) + "\r\n").encode())
        wait_for(lambda: mon.frames == 1, what="frame over TCP")
        conn.close()
        server.close()
        wait_for(lambda: "disconnected" in out.getvalue(), what="disconnect note")
        server = socket.create_server(("127.0.0.1", port))
        conn, _ = server.accept()
        wait_for(lambda: mon.reconnects == 1, what="reconnect")
        conn.sendall((frame_line(42, 2) + "\r\n").encode())
        wait_for(lambda: mon.frames == 2, what="frame after the reconnect")
        conn.close()
    finally:
        mon.stop()
        runner.join(timeout=5)
        server.close()


def test_usb_port_that_comes_back_under_another_name(tmp_path, monkeypatch):
    """A native-USB board re-enumerates as ttyACM1: found again by VID:PID + serial number
    (the port list is faked; the ports themselves are real ptys)."""
    import types

    from serial.tools import list_ports

    first, second = tmp_path / "ttyACM0", tmp_path / "ttyACM1"
    present = {}

    def comports():
        return [types.SimpleNamespace(device=str(path), vid=0x303A, pid=0x1001,
                                      serial_number="F4:12:FA:00:00:01")
                for path in present.values() if path.exists()]

    monkeypatch.setattr(list_ports, "comports", comports)
    usb = FakeUsb(first)
    present["a"] = first
    out = io.StringIO()
    mon = Monitor(str(first), out=out)
    mon.open_first()
    runner = threading.Thread(target=mon.run, daemon=True)
    runner.start()
    try:
        usb.unplug()
        wait_for(lambda: "disconnected" in out.getvalue(), what="disconnect note")
        usb.path = second                          # re-enumerated under a new name
        usb.plug()
        present["b"] = second
        wait_for(lambda: mon.reconnects == 1, what="reconnect under the new name")
        usb.write("after\r\n")
        wait_for(lambda: "after" in out.getvalue(), what="output from the new port")
    finally:
        mon.stop()
        runner.join(timeout=5)
    assert f"the board is back as {second}" in out.getvalue()


def test_cli_monitor_decodes_logs_and_quits_on_ctrl_bracket(tmp_path):
    db = tmp_path / "gateway.db"
    Registry(open_db(db)).set_key(42, KEY)
    usb = FakeUsb(tmp_path / "ttyACM0")
    log = tmp_path / "m.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinysense", "monitor", "--target", str(tmp_path / "ttyACM0"),
         "--log", str(log), "--db", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: log.exists() and "monitoring" in log.read_text(), what="monitor up")
        usb.write(frame_line(42, 5) + "\r\n")
        wait_for(lambda: "#5" in log.read_text(), what="decoded frame in the log")
        proc.stdin.write(b"ls\r")
        proc.stdin.flush()
        assert usb.read() == b"ls\r"
        proc.stdin.write(b"\x1d")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"[uplink] device 42 (0x0000002a) up #5 boot 3: 2 records" in out
    assert KEY.hex().encode() not in out + log.read_bytes()


def test_cli_monitor_on_a_terminal_is_raw_and_restores_it(tmp_path):
    """stdin a terminal: raw mode while monitoring (Ctrl-C is a byte for the board, not a
    signal; no line buffering), the saved settings back after Ctrl-]."""
    import termios

    usb = FakeUsb(tmp_path / "ttyUSB1")
    term, term_slave = os.openpty()
    before = termios.tcgetattr(term_slave)
    assert before[3] & termios.ICANON
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinysense", "monitor", "--target", str(tmp_path / "ttyUSB1"),
         "--db", str(tmp_path / "none.db")],
        stdin=term_slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: not termios.tcgetattr(term_slave)[3] & termios.ICANON,
                 what="raw mode")
        os.write(term, b"\x03x")                  # Ctrl-C and a key, no Enter
        assert usb.read() == b"\x03x"
        os.write(term, b"\x1d")
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert termios.tcgetattr(term_slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(term)
        os.close(term_slave)
    assert b"no gateway registry found" in out


def test_monitor_follows_the_virtual_board_through_resets_and_restarts(tmp_path):
    """A virtual node provisioned as device 42 with the serial transport sends one frame
    per boot (tsnode.uplink, the node's own code); the monitor decodes them with the key
    provisioning put in the registry, through a soft reset typed into the monitor and a
    restart of the whole board."""
    from tinysense.boards import load_board
    from tinysense.node import connect
    from tinysense.provision import provision
    from tinysense.targets import Target
    from tinysense.targets.virtual import start_board, stop_board

    bdir = tmp_path / "vb"
    flash = bdir / "flash"
    shutil.copytree(paths.FIRMWARE_DIR / "tsnode", flash / "tsnode",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cfg = load_board("ESP32_GENERIC")
    db = tmp_path / "gateway.db"
    vb = start_board(cfg.name, directory=bdir, parent_bound=True)
    try:
        node = connect(vb.url, Target("virtual", vb.url, "test"), cfg)
        try:
            provision(node, 42, db=db, transport="serial", gateway="serial")
        finally:
            node.close()
        shutil.copy(Path(__file__).with_name("vboard_uplink_main.py"), flash / "main.py")
        out = io.StringIO()
        mon = Monitor(str(vb.tty), describer=FrameDescriber(registry_keys(db)), out=out)
        mon.open_first()
        keys_in, keys_out = os.pipe()
        runner = threading.Thread(target=mon.run, kwargs={"stdin": keys_in}, daemon=True)
        runner.start()
        try:
            os.write(keys_out, b"\r\x04")       # typed: Enter, then Ctrl-D (soft reset)
            wait_for(lambda: mon.frames >= 1, what=f"a frame after a soft reset in\n"
                     f"{out.getvalue()}")
            stop_board(cfg.name, bdir)            # the board goes away ...
            wait_for(lambda: "disconnected" in out.getvalue(), what="disconnect note")
            start_board(cfg.name, directory=bdir, parent_bound=True)   # ... and comes back
            wait_for(lambda: mon.reconnects >= 1, what="reconnect", timeout=15)
            seen = mon.frames
            os.write(keys_out, b"\r\x04")
            wait_for(lambda: mon.frames > seen, what=f"a frame after the restart in\n"
                     f"{out.getvalue()}")
        finally:
            mon.stop()
            runner.join(timeout=5)
            os.close(keys_out)
    finally:
        stop_board(cfg.name, bdir)
    shown = out.getvalue()
    decoded = [line for line in shown.splitlines() if "[uplink] device 42" in line]
    counters = [int(line.split(" up #")[1].split()[0]) for line in decoded]
    assert len(counters) >= 2 and counters == sorted(set(counters))   # never repeats
    assert all("records: inference class 2 78%" in line for line in decoded)
    assert "REJECTED" not in shown and "no key" not in shown
    key = (flash / "uplink_key.bin").read_bytes()
    assert len(key) == 16 and key.hex() not in shown


@pytest.mark.slow
def test_cli_monitor_target_starts_the_rv32_board_and_decodes_its_frames(tmp_path):
    """`tinysense monitor --target qemu-rv32 --board ESP32_GENERIC_C3` (monitor_target): the
    RV32 QEMU board is started for the monitor (as deploy does), its console shown, the
    frames its node seals at each boot decoded with the registry's key, through a soft reset
    and a machine.reset() (QEMU restarts behind the same TCP port), and stopped afterwards."""
    from tinysense.boards import load_board
    from tinysense.cli.monitor import monitor_target
    from tinysense.node import connect
    from tinysense.provision import provision
    from tinysense.targets.qemu.rv32 import detect_rv32, running_rv32
    from tinysense.targets import Target

    info = detect_rv32()
    if not info.usable:
        pytest.skip(info.reason)
    cfg = load_board("ESP32_GENERIC_C3")
    bdir = tmp_path / "rv32"
    db = tmp_path / "gateway.db"
    out = io.StringIO()
    with monitor_target("qemu-rv32", cfg.name, directory=bdir) as (url, baud, why):
        assert url.startswith("socket://127.0.0.1:") and baud == cfg.console_baud
        assert "started for the monitor" in why
        node = connect(url, Target("qemu-rv32", url, "test"), cfg)
        try:
            node.deploy(progress=None)
            provision(node, 42, db=db, transport="serial", gateway="serial")
            node.put(Path(__file__).with_name("vboard_uplink_main.py"), "/main.py")
        finally:
            node.close()
        mon = Monitor(url, baud, describer=FrameDescriber(registry_keys(db)), out=out)
        mon.open_first()
        keys_in, keys_out = os.pipe()
        runner = threading.Thread(target=mon.run, kwargs={"stdin": keys_in}, daemon=True)
        runner.start()
        try:
            os.write(keys_out, b"\x03\x02\r\x04")  # out of any raw REPL; Ctrl-D: soft reset
            wait_for(lambda: mon.frames >= 1, timeout=120,
                     what=f"a frame after a soft reset in\n{out.getvalue()}")
            os.write(keys_out, b"import machine; machine.reset()\r")
            wait_for(lambda: mon.frames >= 2, timeout=120,
                     what=f"a frame after machine.reset() in\n{out.getvalue()}")
        finally:
            mon.stop()
            runner.join(timeout=5)
            os.close(keys_out)
    assert running_rv32(cfg.name, bdir) is None  # started for the monitor: stopped after it
    shown = out.getvalue()
    decoded = [line for line in shown.splitlines() if "[uplink] device 42" in line]
    counters = [int(line.split(" up #")[1].split()[0]) for line in decoded]
    assert len(counters) >= 2 and counters == sorted(set(counters)), shown
    assert all("records: inference class 2 78%" in line for line in decoded)
    assert "REJECTED" not in shown and "no key" not in shown and mon.reconnects == 0


def test_monitor_stops_at_eof_and_at_timeout_on_the_virtual_board(tmp_path):
    """Issue 14 item 6, on the real virtual board: a non-terminal stdin's end stops the
    monitor; --timeout stops it while stdin stays open."""
    env = {**os.environ, "TINYSENSE_HOME": str(tmp_path)}
    env.pop("TINYSENSE_TARGET", None)
    cmd = [sys.executable, "-m", "tinysense", "monitor", "--target", "virtual"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "monitoring" in proc.stdout
    with subprocess.Popen(cmd + ["--timeout", "3"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as held:
        out = held.stdout.read()           # stdin stays open: only the timeout ends it
        assert held.wait(timeout=120) == 0, held.stderr.read()
    assert "monitoring" in out


def test_ctrl_t_ctrl_r_resets_the_virtual_board(tmp_path):
    """Issue 14 item 6: Ctrl-T Ctrl-R in the monitor resets the node (the virtual board: a
    new VM behind the same port, whose boot banner the monitor then shows); Ctrl-] quits."""
    env = {**os.environ, "TINYSENSE_HOME": str(tmp_path)}
    env.pop("TINYSENSE_TARGET", None)
    cmd = [sys.executable, "-m", "tinysense", "monitor", "--target", "virtual",
           "--timeout", "90"]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env) as proc:
        seen = b""
        while b"monitoring" not in seen:          # attached
            line = proc.stdout.readline()
            assert line, (seen, proc.stderr.read())
            seen += line
        proc.stdin.write(b"\x14\x12")
        proc.stdin.flush()
        after = b""
        while b"Type \"help()\"" not in after.partition(b"hard reset")[2]:  # new VM's banner
            line = proc.stdout.readline()
            assert line, (seen + after, proc.stderr.read())
            after += line
        proc.stdin.write(b"\x1d")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    assert b"resetting the node (machine.reset())" in after
    assert b"virtual board: hard reset after machine.reset()" in after
    assert b"hard reset" not in seen


def test_ctrl_t_sequences_pass_through_as_idf_monitor_does():
    """Ctrl-T Ctrl-T sends one Ctrl-T, Ctrl-T and another key send both; only Ctrl-T Ctrl-R
    is a reset (here on pyserial's loop:// port, which echoes what is written)."""
    import io

    mon = Monitor("loop://", out=io.StringIO())
    mon.open_first()
    mon.send(b"a\x14\x14b\x14c\x14")
    mon.send(b"d")              # a Ctrl-T at the end of one read pairs with the next key
    assert mon._ser.read(64) == b"a\x14b\x14c\x14d" and mon.resets == 0
    mon.send(b"\x14\x12")
    assert mon.resets == 1 and mon._ser.read(64).endswith(b"machine.reset()\r")
    mon._ser.close()
