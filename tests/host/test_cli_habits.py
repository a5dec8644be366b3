"""The command line's habits (issue 14, items 4, 5 and 10): exit statuses, -p/--port, output
paths checked before the work, one-line errors instead of tracebacks, progress lines, and the
virtual board held by one client at a time. Run as a user would: `python -m tinysense` in a
subprocess, on the real virtual board where a node is involved."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinysense.paths import REPO_ROOT

MODEL = REPO_ROOT / "models" / "activity" / "model.tflite"


def _cli(*args, home: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    e = {**os.environ, "TINYSENSE_HOME": str(home), **(env or {})}
    for name in ("TINYSENSE_TARGET", "TINYSENSE_PORT", "ESPPORT"):
        if name not in (env or {}):
            e.pop(name, None)
    return subprocess.run([sys.executable, "-m", "tinysense", *args], capture_output=True,
                          text=True, env=e, timeout=300, **kw)


def _one_error_line(proc: subprocess.CompletedProcess, expect: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinysense: error: "), proc.stderr
    assert expect in lines[0], lines[0]


def test_usage_error_is_2_and_failure_is_1(tmp_path):
    assert _cli("convert", home=tmp_path).returncode == 2             # argparse: usage
    assert _cli("validate", "m.tflite", "--vectors", "x", home=tmp_path).returncode == 2
    _one_error_line(_cli("convert", str(tmp_path / "missing.tflite"), home=tmp_path),
                    "missing.tflite")


def test_convert_output_paths_and_json_to_stdout(tmp_path):
    _one_error_line(_cli("convert", str(MODEL), "-o", "/nonexistent/dir/x.tsm", home=tmp_path),
                    "directory /nonexistent/dir does not exist")
    _one_error_line(_cli("convert", str(MODEL), "-o", str(tmp_path / "a.tsm"), "--json",
                         "/nonexistent/a.json", home=tmp_path), "/nonexistent")
    assert not (tmp_path / "a.tsm").exists()          # checked before any work
    proc = _cli("convert", str(MODEL), "-o", str(tmp_path / "a.tsm"), "--json", "-",
                home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)                  # stdout is the JSON and nothing else
    assert report["macs"] > 0 and "wrote" in proc.stderr


def test_validate_checks_output_paths_before_the_run(tmp_path):
    # no node is touched: the run would need one, and fails before it
    for opt in ("--json", "--html"):
        proc = _cli("validate", str(MODEL), "--target", "/dev/ttyNOPE", opt,
                    "/nonexistent/a.out", home=tmp_path)
        _one_error_line(proc, f"{opt} /nonexistent/a.out: directory /nonexistent does not "
                              "exist")
    proc = _cli("validate-all", "--target", "/dev/ttyNOPE", "--html", "/nonexistent/dir",
                home=tmp_path)
    _one_error_line(proc, "directory /nonexistent does not exist")


def test_port_option_and_espport(tmp_path):
    for args, env in ((("target", "-p", "/dev/ttyUSB97"), {}),
                      (("target", "--port", "/dev/ttyUSB97"), {}),
                      (("target",), {"ESPPORT": "/dev/ttyUSB97"})):
        _one_error_line(_cli(*args, home=tmp_path, env=env), "/dev/ttyUSB97 does not exist")
    # TINYSENSE_TARGET wins over ESPPORT
    proc = _cli("target", home=tmp_path, env={"ESPPORT": "/dev/ttyUSB97",
                                             "TINYSENSE_TARGET": "virtual"})
    assert proc.returncode == 0 and proc.stdout.startswith("virtual"), proc.stderr


def test_flash_takes_dash_p_and_espport(tmp_path, monkeypatch):
    from tinysense.cli import build_parser

    args = build_parser().parse_args(["flash", "-p", "/dev/ttyX", "--firmware", "f.bin"])
    assert args.port == "/dev/ttyX"
    monkeypatch.delenv("TINYSENSE_PORT", raising=False)
    monkeypatch.setenv("ESPPORT", "/dev/ttyY")
    args = build_parser().parse_args(["flash", "--firmware", "f.bin"])
    assert args.port == "/dev/ttyY"


def test_usb_ids_print_as_hex(monkeypatch):
    from serial.tools.list_ports_common import ListPortInfo

    from tinysense import targets

    port = ListPortInfo("/dev/ttyACM0", skip_link_detection=True)
    port.vid, port.pid, port.description = 0x303A, 0x1001, "USB JTAG/serial debug unit"
    monkeypatch.setattr(targets, "find_usb_boards", lambda cfg=None: [port])
    monkeypatch.delenv("TINYSENSE_PORT", raising=False)
    t = targets.resolve_target("auto", "ESP32_GENERIC")
    assert "0x303a:0x1001 on /dev/ttyACM0" in t.reason, t.reason


def _gateway_db(path: Path) -> None:
    from tinysense.gateway.store import open_db

    open_db(path).close()


def test_uplinks_into_a_closed_pipe_is_quiet(tmp_path):
    db = tmp_path / "g.db"
    _gateway_db(db)
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO frames(device_id, key_version, counter, received_at, ptype,"
                     " source, payload, decoded, decode_error) VALUES (1,1,?,0,1,'t',x'00',"
                     "'{}',NULL)", [(i,) for i in range(20000)])
    conn.commit()
    conn.close()
    e = {**os.environ, "TINYSENSE_HOME": str(tmp_path)}
    proc = subprocess.run(f"{sys.executable} -m tinysense uplinks --db {db} | head -3",
                          shell=True, capture_output=True, text=True, env=e, timeout=120)
    assert len(proc.stdout.splitlines()) == 3
    assert proc.stderr == "", proc.stderr


def test_damaged_or_foreign_database_is_one_line_and_never_written(tmp_path):
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE frames(a)")
    conn.execute("CREATE TABLE devices(b)")
    conn.commit()
    conn.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    bad_json = tmp_path / "badjson.db"
    _gateway_db(bad_json)
    conn = sqlite3.connect(bad_json)
    conn.execute("INSERT INTO frames(device_id, key_version, counter, received_at, ptype, "
                 "source, payload, decoded, decode_error) VALUES (1,1,1,0,1,'t',x'00',"
                 "'{not json',NULL)")
    conn.commit()
    conn.close()
    for db in (foreign, garbage, bad_json):
        before = db.read_bytes()
        for cmd in ("uplinks", "devices"):
            proc = _cli(cmd, "--db", str(db), home=tmp_path)
            if db is bad_json and cmd == "devices":
                assert proc.returncode == 0, proc.stderr     # its registry reads fine
                continue
            _one_error_line(proc, f"gateway database {db}")
        assert db.read_bytes() == before, f"{db.name} was written to"


def test_progress_updates_one_line_on_a_terminal_and_prints_lines_otherwise():
    from tinysense.progress import Progress, step

    plain = io.StringIO()
    p = Progress(plain)
    step(p, 1, 2, "a")
    p("kept")
    step(p, 2, 2, "b")
    p.close()
    assert plain.getvalue() == "[1/2] a\nkept\n[2/2] b\n"

    tty = io.StringIO()
    p = Progress(tty, live=True)
    step(p, 1, 2, "a")
    p.detail("inner")
    p("kept")
    step(p, 2, 2, "b")
    p.close()
    text = tty.getvalue()
    assert text.count("\n") == 1 and "kept\n" in text          # only the kept line stays
    assert "\r[1/2] a" in text and "\r[1/2] a: inner" in text and "\r[2/2] b" in text
    assert text.endswith("\r\x1b[K")                           # left on a clean line

    lines: list[str] = []
    step(lines.append, 3, 9, "x", indent="  ")                  # a plain callable
    assert lines == ["  [3/9] x"]


def test_deploy_progress_plain_when_piped(tmp_path):
    proc = _cli("deploy", "--target", "virtual", "--force", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    steps = [line for line in proc.stdout.splitlines() if line.startswith("  [")]
    assert len(steps) > 10 and steps[-1].startswith(f"  [{len(steps)}/{len(steps)}]")
    assert "\r" not in proc.stdout


def test_second_client_waits_for_the_board(tmp_path, monkeypatch):
    """Two commands on one virtual board: the second says whom it waits for, then runs."""
    from tinysense.targets.virtual import use_lock

    monkeypatch.setenv("TINYSENSE_HOME", str(tmp_path))
    env = {**os.environ}
    env.pop("TINYSENSE_TARGET", None)
    with use_lock("ESP32_GENERIC"):
        proc = subprocess.Popen([sys.executable, "-m", "tinysense", "deploy", "--target",
                                 "virtual"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        first = proc.stderr.readline()
        assert first.strip() == ("waiting for board ESP32_GENERIC (used by pid "
                                 f"{os.getpid()})")
        time.sleep(0.2)
        assert proc.poll() is None                   # still waiting while we hold it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "deployed for" in out


def test_interrupt_and_oserror_are_one_line(monkeypatch, capsys):
    from tinysense import cli
    from tinysense.cli import deploy as deploy_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy_cli, "open_node", lambda *a, **k: interrupted(None))
    assert cli.main(["deploy", "--target", "virtual"]) == 130
    assert capsys.readouterr().err == "tinysense: interrupted\n"

    def eio(*a, **k):
        raise FileNotFoundError(2, "No such file or directory", "/x/y")

    monkeypatch.setattr(deploy_cli, "open_node", eio)
    assert cli.main(["deploy", "--target", "virtual"]) == 1
    assert capsys.readouterr().err == "tinysense: error: /x/y: No such file or directory\n"
