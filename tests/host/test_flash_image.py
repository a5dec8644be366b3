"""`tinysense image`: whole-flash images for QEMU, checked against esptool's own tools."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from esp_images import PARTITIONS_ROMFS, make_firmware

from tinysense import paths
from tinysense.boards import load_board
from tinysense.errors import TinysenseError
from tinysense.flash.image import ROMFS_HEADER, build_flash_image

BOARDS = ["ESP32_GENERIC", "ESP32_GENERIC_S3", "ESP32_GENERIC_C3"]


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")


def esptool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esptool", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("board", BOARDS)
def test_layout_matches_esptool_merge_bin_and_image_info(tmp_path, board):
    cfg = load_board(board)
    fw = tmp_path / "firmware.bin"
    fw.write_bytes(make_firmware(cfg.chip))
    out = tmp_path / "flash.bin"
    cli = subprocess.run([sys.executable, "-m", "tinysense", "image", "--board", board,
                          "--firmware", str(fw), "-o", str(out)], capture_output=True, text=True,
                         timeout=60, env={**os.environ,
                                          "TINYSENSE_HOME": str(tmp_path / "state")})
    assert cli.returncode == 0, cli.stderr
    image = out.read_bytes()
    data = fw.read_bytes()
    assert len(image) == cfg.flash_bytes                      # 4 MB / 8 MB
    assert image[cfg.firmware_offset:cfg.firmware_offset + len(data)] == data
    assert set(image[:cfg.firmware_offset] + image[cfg.firmware_offset + len(data):]) == {0xFF}
    # esptool's own merge-bin with the documented QEMU command line gives the same bytes
    ref = tmp_path / "ref.bin"
    merged = esptool("--chip", cfg.chip, "merge-bin", "--pad-to-size", cfg.flash_size, "-o",
                     str(ref), hex(cfg.firmware_offset), str(fw))
    assert merged.returncode == 0, merged.stderr
    assert ref.read_bytes() == image
    # and esptool reads the bootloader header at the firmware offset as this chip's image
    boot = tmp_path / "boot.bin"
    boot.write_bytes(image[cfg.firmware_offset:cfg.firmware_offset + 0x7000])
    info = esptool("image-info", str(boot))
    chip_name = {"esp32": "ESP32", "esp32s3": "ESP32-S3", "esp32c3": "ESP32-C3"}[cfg.chip]
    assert f"Detected image type: {chip_name}" in info.stdout, info.stdout + info.stderr
    assert "Checksum: " in info.stdout and "(valid)" in info.stdout


def _romfs_board(tmp_path, romfs_offset: int, romfs_size: int):
    text = (paths.BOARD_CONFIG_DIR / "ESP32_GENERIC_S3.toml").read_text()
    text = re.sub(r"(?m)^romfs_offset = .*$", f"romfs_offset = {romfs_offset:#x}", text)
    text = re.sub(r"(?m)^romfs_size = .*$", f"romfs_size = {romfs_size:#x}", text)
    path = tmp_path / "S3_ROMFS.toml"
    path.write_text(text)
    cfg = load_board(path)
    assert cfg.romfs_offset == romfs_offset and cfg.romfs_size == romfs_size
    return cfg


def test_romfs_goes_to_the_board_partition(tmp_path):
    from mpremote.romfs import make_romfs

    src = tmp_path / "rom"
    src.mkdir()
    (src / "model.tsm").write_bytes(bytes(range(256)) * 8)
    romfs = tmp_path / "rom.img"
    romfs.write_bytes(make_romfs(str(src), mpy_cross=False))
    assert romfs.read_bytes().startswith(ROMFS_HEADER)
    cfg = _romfs_board(tmp_path, 0x600000, 0x100000)
    fw = tmp_path / "fw.bin"
    fw.write_bytes(make_firmware("esp32s3", partitions=PARTITIONS_ROMFS))
    result = build_flash_image(cfg, str(fw), tmp_path / "flash.bin", romfs=romfs)
    image = (tmp_path / "flash.bin").read_bytes()
    rom = romfs.read_bytes()
    assert len(image) == 8 << 20
    assert image[0x600000:0x600000 + len(rom)] == rom
    assert image[:fw.stat().st_size] == fw.read_bytes()
    assert [r[0] for r in result.regions] == [0x0, 0x600000]


def test_romfs_errors(tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(make_firmware("esp32s3"))
    notrom = tmp_path / "x.img"
    notrom.write_bytes(b"hello")
    with pytest.raises(TinysenseError, match="has no ROMFS partition"):
        build_flash_image("ESP32_GENERIC_S3", str(fw), tmp_path / "o.bin", romfs=notrom)
    cfg = _romfs_board(tmp_path, 0x600000, 0x1000)
    with pytest.raises(TinysenseError, match="not a ROMFS image"):
        build_flash_image(cfg, str(fw), tmp_path / "o.bin", romfs=notrom)
    big = tmp_path / "big.img"
    big.write_bytes(ROMFS_HEADER + bytes(0x2000))
    with pytest.raises(TinysenseError, match="partition holds"):
        build_flash_image(cfg, str(fw), tmp_path / "o.bin", romfs=big)
    with pytest.raises(TinysenseError, match="built for esp32s3"):
        build_flash_image("ESP32_GENERIC", str(fw), tmp_path / "o.bin")
    # the board config and the firmware's partition table must agree on the ROMFS partition
    rom = tmp_path / "ok.img"
    rom.write_bytes(ROMFS_HEADER + bytes(100))
    with pytest.raises(TinysenseError, match="has no 'romfs' partition"):
        build_flash_image(cfg, str(fw), tmp_path / "o.bin", romfs=rom)
    fw.write_bytes(make_firmware("esp32s3", partitions=PARTITIONS_ROMFS))
    elsewhere = _romfs_board(tmp_path, 0x700000, 0x1000)
    with pytest.raises(TinysenseError, match="romfs partition at 0x600000"):
        build_flash_image(elsewhere, str(fw), tmp_path / "o.bin", romfs=rom)
