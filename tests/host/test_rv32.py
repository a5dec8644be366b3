"""The RV32 QEMU board as a target: resolution, command line, bench figures (no QEMU needed),
and one real boot of the board (skipped, saying why, when `make nodes` has not built it)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tinysense.boards import load_board
from tinysense.errors import TinysenseError
from tinysense.pytest_plugin import missing_needs
from tinysense.targets.qemu import rv32
from tinysense.targets import resolve_target


@pytest.fixture
def no_hardware(monkeypatch, tmp_path):
    """No USB ports, no QEMU on PATH, no Espressif tools, no target environment."""
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda *a, **k: [])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("IDF_TOOLS_PATH", str(tmp_path / "no-idf"))
    for name in ("TINYSENSE_QEMU_DIR", "TINYSENSE_FIRMWARE", "TINYSENSE_PORT",
                 "TINYSENSE_TARGET", "TINYSENSE_RV32_FIRMWARE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TINYSENSE_RV32_FIRMWARE", str(tmp_path / "not-built.elf"))
    return tmp_path


def _debian_qemu(tmp_path: Path) -> None:
    """A qemu-system-riscv32 like Debian's: `virt`, no Espressif machines."""
    exe = tmp_path / "bin" / "qemu-system-riscv32"
    exe.write_text("#!/bin/sh\nprintf 'Supported machines are:\\nvirt  RISC-V VirtIO board\\n'\n")
    exe.chmod(0o755)


def _built(tmp_path: Path, monkeypatch) -> None:
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    monkeypatch.setenv("TINYSENSE_RV32_FIRMWARE", str(elf))
    _debian_qemu(tmp_path)


def test_not_built_is_one_line_naming_make_nodes(no_hardware):
    with pytest.raises(TinysenseError) as err:
        resolve_target("qemu-rv32", "ESP32_GENERIC_C3")
    assert "make nodes" in str(err.value) and "\n" not in str(err.value)


def test_explicit_rv32_target(no_hardware, monkeypatch):
    _built(no_hardware, monkeypatch)
    target = resolve_target("qemu-rv32", "ESP32_GENERIC_C3")
    assert (target.kind, target.url) == ("qemu-rv32", None)


def test_rv32_refuses_a_board_of_another_arch(no_hardware, monkeypatch):
    _built(no_hardware, monkeypatch)
    with pytest.raises(TinysenseError, match="--board ESP32_GENERIC_C3"):
        resolve_target("qemu-rv32", "ESP32_GENERIC")


def test_qemu_falls_back_to_rv32_without_espressif(no_hardware, monkeypatch):
    _built(no_hardware, monkeypatch)
    target = resolve_target("qemu", "ESP32_GENERIC_C3")
    assert target.kind == "qemu-rv32"
    assert "has no '-machine esp32c3'" in target.reason and "RV32" in target.reason
    with pytest.raises(TinysenseError, match="--target qemu"):
        resolve_target("qemu", "ESP32_GENERIC")  # nothing emulates an Xtensa board here


def test_auto_order_board_espressif_rv32_virtual(no_hardware, monkeypatch):
    target = resolve_target("auto", "ESP32_GENERIC_C3")
    assert target.kind == "virtual" and "make nodes" in target.reason
    _built(no_hardware, monkeypatch)
    target = resolve_target("auto", "ESP32_GENERIC_C3")
    assert target.kind == "qemu-rv32"
    assert target.reason.startswith("no board on USB; ")
    assert target.reason.endswith("using the RV32 QEMU board")
    target = resolve_target("auto", "ESP32_GENERIC_S3")  # Xtensa: the RV32 board is no stand-in
    assert target.kind == "virtual" and "C3-class" in target.reason


def test_command_line():
    cmd = rv32.qemu_command("qemu-system-riscv32", Path("/fw.elf"), Path("romfs.img"))
    line = " ".join(cmd)
    assert "-machine virt" in line and "-icount shift=0" in line and "-semihosting" in line
    assert "-serial stdio" in line and "-monitor none" in line
    assert "loader,file=romfs.img,addr=0x80610000,force-raw=on" in line
    assert "loader" not in " ".join(rv32.qemu_command("q", Path("/fw.elf")))


def test_instruction_figures():
    assert rv32.instructions(11.9) == 11_900_000  # 1 instruction = 1 ns of the node's time
    assert rv32.c3_lower_bound_ms(160_000_000) == pytest.approx(1000.0)


def test_bench_summary_states_a_lower_bound():
    from tinysense.bench.models import BenchResult

    r = BenchResult(model="m", target="qemu-rv32", board="ESP32_GENERIC_C3", macs=1000,
                    node_ms=2.0, reference_ms=1.0, ratio=2.0, node_ns_per_mac=2.0,
                    reference_ns_per_mac=1.0, node_heap_peak_bytes=1, reference_arena_bytes=1,
                    heap_ratio=1.0, node_package_heap_bytes=1, node_inference_alloc_bytes=0,
                    repeats=1, rounds=1, bit_exact=True, instructions_per_inference=2_000_000,
                    instructions_per_mac=2000.0, c3_160mhz_lower_bound_ms=12.5)
    text = r.summary()
    assert "2,000,000 instructions per inference" in text and "lower bound" in text
    assert r.to_dict()["instructions_per_inference"] == 2_000_000


def test_needs_on_the_rv32_board():
    c3 = load_board("ESP32_GENERIC_C3")
    assert "network" in missing_needs("qemu-rv32", c3, ("network",))
    assert "wifi" in missing_needs("qemu-rv32", c3, ("wifi",))
    assert missing_needs("qemu-rv32", c3, ("romfs", "emulated")) is None


def test_deploy_knows_an_rv32_node_behind_a_url():
    from tinysense.node.deploy import NodeScan

    assert NodeScan(platform="qemu").kind("board") == "qemu-rv32"
    assert NodeScan(platform="qemu").kind("qemu-rv32") == "qemu-rv32"


def test_qemu_stop_when_nothing_runs(tmp_path, monkeypatch, capsys):
    from tinysense.cli import main

    monkeypatch.setenv("TINYSENSE_HOME", str(tmp_path))
    assert main(["qemu", "stop"]) == 0
    assert "is not running" in capsys.readouterr().out


# --- the real board ---------------------------------------------------------------------------

@pytest.fixture
def real_rv32(tmp_path):
    info = rv32.detect_rv32()
    if not info.usable:
        pytest.skip(info.reason)
    rb, started = rv32.ensure_rv32("ESP32_GENERIC_C3", directory=tmp_path / "rv32",
                                   parent_bound=True)
    assert started
    yield rb
    rv32.stop_rv32("ESP32_GENERIC_C3", tmp_path / "rv32")


def test_rv32_board_boots_runs_code_and_survives_a_reset(real_rv32):
    """32-bit viper ints and a heap above 0x40000000 on rv32imc; files kept across
    machine.reset(), which restarts QEMU behind the same port and connection."""
    from tinysense.node import connect
    from tinysense.targets import Target

    cfg = load_board("ESP32_GENERIC_C3")
    node = connect(real_rv32.url, Target("qemu-rv32", real_rv32.url, "test"), cfg, timeout=60)
    try:
        node.transport.serial.timeout = 60
        code = ("import sys, micropython\n"
                "@micropython.viper\n"
                "def mul(a: int, b: int) -> int:\n"
                "    return a * b\n"
                "print(sys.platform, sys.implementation._mpy >> 10, mul(0x10000, 0x10000),"
                " id(bytearray(8)) >= 0x40000000)\n"
                "with open('/kept.txt', 'w') as f:\n"
                "    f.write('flash')")
        assert node.exec(code, timeout=60).split() == ["qemu", "11", "0", "True"]
        rv32.hard_reset(node, timeout=120)
        assert node.exec("print(open('/kept.txt').read())", timeout=60).strip() == "flash"
        deadline = time.monotonic() + 60
        while rv32.running_rv32("ESP32_GENERIC_C3", real_rv32.workdir).restarts < 1:
            assert time.monotonic() < deadline, "the supervisor did not count the restart"
            time.sleep(0.2)
    finally:
        node.close()
    with socket.create_connection(("127.0.0.1", real_rv32.tcp_port), timeout=30):
        pass  # still the same port after the reset


def test_the_rv32_target_presents_its_romfs_partition():
    """--target qemu-rv32 --board ESP32_GENERIC_C3: the C3's arch and heap plus the RV32
    board's ROMFS partition, so the converter plans ROMFS there; other targets: as loaded."""
    from tinysense.convert import convert_model
    from tinysense.paths import CONFORMANCE_DIR
    from tinysense.targets.qemu.rv32 import ROMFS_ADDR, ROMFS_MAX
    from tinysense.targets import node_board

    c3 = load_board("ESP32_GENERIC_C3")
    rv = node_board("qemu-rv32", c3)
    assert not c3.has_romfs and rv.has_romfs
    assert (rv.romfs_offset, rv.romfs_size) == (ROMFS_ADDR, ROMFS_MAX) == (0x80610000, 4 << 20)
    assert (rv.name, rv.heap_budget, rv.mpy_arch) == (c3.name, c3.heap_budget, c3.mpy_arch)
    assert node_board("virtual", c3) is c3 and node_board("board", c3) is c3
    vww = CONFORMANCE_DIR / "mlperf_vww_96_int8.tflite"
    assert convert_model(vww, board=rv).report.placement == "romfs"
    assert convert_model(vww, board=c3).report.placement == "stream"
