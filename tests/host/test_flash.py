"""`tinysense flash` / `make flash` against the virtual ROM loader, and its refusals.

The firmware images are made by esp_images.make_firmware (esptool's own image writer:
bootloader + partition table + app, see that module); no real firmware is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import serial
from esp_images import make_app, make_firmware

from tinysense import paths
from tinysense.boards import load_board
from tinysense.errors import TinysenseError
from tinysense.flash.cache import list_firmware, lookup_firmware
from tinysense.flash.flasher import flash_firmware
from tinysense.flash.romloader import RomLoader

REPO = paths.REPO_ROOT
BOARDS = {"ESP32_GENERIC": "esp32", "ESP32_GENERIC_S3": "esp32s3", "ESP32_GENERIC_C3": "esp32c3"}


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A private STATE_DIR (firmware cache, loader registry) for this process and children."""
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    monkeypatch.setenv("TINYSENSE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def loader(tmp_path, board: str, chip: str | None = None) -> RomLoader:
    cfg = load_board(board)
    return RomLoader(chip or cfg.chip, tmp_path / f"{board}.flash", cfg.flash_bytes)


def untouched(rom: RomLoader) -> bool:
    return set(rom.flash.read(0, rom.flash.size)) == {0xFF}


@pytest.mark.parametrize("board", list(BOARDS))
def test_make_flash_lands_byte_identical_and_esptool_verifies(tmp_path, state, board):
    cfg = load_board(board)
    firmware = tmp_path / f"{board}.bin"
    firmware.write_bytes(make_firmware(cfg.chip))
    data = firmware.read_bytes()
    with loader(tmp_path, board) as rom:
        make = subprocess.run(
            ["make", "--no-print-directory", "-s", "flash", f"BOARD={board}", f"PORT={rom.port}",
             f"FIRMWARE={firmware}"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert make.returncode == 0, make.stdout + make.stderr
        assert "(virtual ROM loader)" in make.stdout
        assert "Stub flasher running." in make.stdout    # the same path as on a board
        assert f"at 0x{cfg.firmware_offset:x} and verified" in make.stdout
        verify = subprocess.run(
            [sys.executable, "-m", "esptool", "--port", rom.port, "--before", "no-reset",
             "--after", "no-reset", "--no-stub", "verify-flash", hex(cfg.firmware_offset),
             str(firmware)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "Verification successful" in verify.stdout
        flash = rom.flash.read(0, cfg.flash_bytes)
        assert rom.unhandled == []
    offset = cfg.firmware_offset
    assert flash[offset:offset + len(data)] == data
    assert set(flash[:offset] + flash[offset + len(data):]) == {0xFF}


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "ESP32_GENERIC_C3"])
def test_cache_by_name_and_sha_prefix_and_erase(tmp_path, state, board):
    cfg = load_board(board)
    data = make_firmware(cfg.chip)
    (tmp_path / "mp.bin").write_bytes(data)
    old = b"old filesystem"
    with loader(tmp_path, board) as rom:
        rom.flash.program(0x300000, old)
        flash_firmware(board, rom.port, str(tmp_path / "mp.bin"), say=str)
        assert rom.flash.read(0x300000, len(old)) == old      # no --erase: kept
        (entry,) = list_firmware()
        assert entry.names == ("mp.bin",) and entry.chip == cfg.chip
        assert lookup_firmware(entry.sha256[:8]) == entry
        (tmp_path / "mp.bin").unlink()                         # from the cache now
        # --erase through the stub (ERASE_FLASH) ...
        result = flash_firmware(board, rom.port, "mp.bin", erase=True, say=str)
        assert result.erased and result.stub
        assert rom.flash.read(0x300000, len(old)) == b"\xff" * len(old)
        # ... and through the ROM alone (FLASH_BEGIN over the whole flash)
        rom.flash.program(0x300000, old)
        result = flash_firmware(board, rom.port, entry.sha256[:6], erase=True, no_stub=True,
                                say=str)
        assert result.erased and not result.stub
        flash = rom.flash.read(0, rom.flash.size)
        assert rom.unhandled == []
    offset = cfg.firmware_offset
    assert flash[offset:offset + len(data)] == data
    assert set(flash[:offset] + flash[offset + len(data):]) == {0xFF}   # erased elsewhere


def test_flash_over_tcp(tmp_path, state):
    """A socket:// URL (a board behind a TCP serial server): no reset lines, stub, verify."""
    data = make_firmware("esp32s3")
    (tmp_path / "fw.bin").write_bytes(data)
    with RomLoader("esp32s3", tmp_path / "s3.flash", 8 << 20, tcp_port=0) as rom:
        result = flash_firmware("ESP32_GENERIC_S3", rom.port, str(tmp_path / "fw.bin"),
                                say=str)
        assert result.stub and result.port.startswith("socket://")
        assert rom.flash.read(0, len(data)) == data


def test_no_port_and_no_board_on_usb(state, monkeypatch, capsys):
    from tinysense.cli import main

    monkeypatch.setattr("tinysense.targets.find_usb_boards", lambda cfg=None: [])
    monkeypatch.delenv("TINYSENSE_PORT", raising=False)
    assert main(["flash", "--board", "ESP32_GENERIC", "--firmware", "fw.bin"]) == 1
    assert "no ESP32 board found on USB" in capsys.readouterr().err


def test_port_virtual_flashes_the_boards_flash_file(tmp_path, state):
    from tinysense.flash.flasher import virtual_flash_file

    data = make_firmware("esp32")
    (tmp_path / "fw.bin").write_bytes(data)
    result = flash_firmware("ESP32_GENERIC", "virtual", str(tmp_path / "fw.bin"), say=str)
    flash = virtual_flash_file(load_board("ESP32_GENERIC")).read_bytes()
    assert result.stub and len(flash) == 4 << 20
    assert flash[0x1000:0x1000 + len(data)] == data


def test_unknown_firmware_name(state):
    with pytest.raises(TinysenseError, match="no cached image"):
        flash_firmware("ESP32_GENERIC", "/dev/null", "nope-not-there")


@pytest.mark.parametrize("case", ["wrong-image-chip", "truncated", "app-only", "wrong-board"])
def test_refusals_write_nothing(tmp_path, state, case):
    fw = tmp_path / "fw.bin"
    board, chip = "ESP32_GENERIC", None
    if case == "wrong-image-chip":
        fw.write_bytes(make_firmware("esp32s3"))
        expect = "built for esp32s3 but the board has an esp32"
    elif case == "truncated":
        fw.write_bytes(make_firmware("esp32")[:-5000])
        expect = "truncated"
    elif case == "app-only":
        fw.write_bytes(make_app("esp32"))
        expect = "application image"
    else:
        fw.write_bytes(make_firmware("esp32"))
        chip = "esp32c3"           # the board on the port is not what --board says
        expect = "is an ESP32-C3, but board ESP32_GENERIC is an ESP32"
    with loader(tmp_path, board, chip) as rom:
        cli = subprocess.run([sys.executable, "-m", "tinysense", "flash", "--board", board,
                              "--port", rom.port, "--firmware", str(fw)],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 1
        lines = cli.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tinysense: error:"), cli.stderr
        assert expect in lines[0]
        assert untouched(rom)


def test_missing_and_busy_port(tmp_path, state):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(make_firmware("esp32"))
    with pytest.raises(TinysenseError, match="does not exist"):
        flash_firmware("ESP32_GENERIC", str(tmp_path / "ttyUSB7"), str(fw), say=str)
    with loader(tmp_path, "ESP32_GENERIC") as rom:
        holder = serial.serial_for_url(rom.port, exclusive=True)
        try:
            with pytest.raises(TinysenseError, match="is busy"):
                flash_firmware("ESP32_GENERIC", rom.port, str(fw), say=str)
        finally:
            holder.close()
        assert untouched(rom)


def test_no_chip_on_port(tmp_path, state):
    """A pty nobody answers on: a clear error after esptool's attempts, nothing else."""
    fw = tmp_path / "fw.bin"
    fw.write_bytes(make_firmware("esp32"))
    master, slave = os.openpty()
    try:
        with pytest.raises(TinysenseError, match="no ESP chip in download mode"):
            flash_firmware("ESP32_GENERIC", os.ttyname(slave), str(fw), no_stub=True,
                           connect_attempts=2, say=str)
    finally:
        os.close(master)
        os.close(slave)


def test_mixed_chip_merge_is_refused():
    from tinysense.flash.firmware import inspect_firmware

    data = bytearray(make_firmware("esp32s3"))
    app = make_app("esp32c3")
    data[0x10000:0x10000 + len(app)] = app
    with pytest.raises(TinysenseError, match="broken merge"):
        inspect_firmware(bytes(data), "esp32s3", 0x0)


def test_firmware_cache_cli(tmp_path, state, capsys):
    from tinysense.cli import main

    fw = tmp_path / "ESP32_GENERIC_S3-20260101-v1.29.0.bin"
    fw.write_bytes(make_firmware("esp32s3"))
    assert main(["firmware"]) == 0
    assert "no cached firmware" in capsys.readouterr().out
    assert main(["firmware", "add", str(fw), "--name", "s3-stable"]) == 0
    added = capsys.readouterr().out
    assert "micropython v1.29.0-tinysense-test for esp32s3" in added and "s3-stable" in added
    assert main(["firmware", "list"]) == 0
    listed = capsys.readouterr().out
    assert "esp32s3" in listed and "s3-stable" in listed
    assert lookup_firmware("s3-stable").size == fw.stat().st_size


@pytest.mark.parametrize("board", list(BOARDS))
def test_flashed_virtual_chip_equals_the_emulator_image(tmp_path, state, board):
    """Flashing an erased chip and `tinysense image` must give the same flash contents."""
    from tinysense.flash.flasher import virtual_flash_file
    from tinysense.flash.image import build_flash_image

    cfg = load_board(board)
    (tmp_path / "fw.bin").write_bytes(make_firmware(cfg.chip))
    flash_firmware(board, "virtual", str(tmp_path / "fw.bin"), erase=True, say=str)
    build_flash_image(board, str(tmp_path / "fw.bin"), tmp_path / "image.bin")
    assert virtual_flash_file(cfg).read_bytes() == (tmp_path / "image.bin").read_bytes()
