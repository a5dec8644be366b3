"""The virtual ROM loader: protocol details driven directly, and real esptool against it."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import zlib

import pytest
from esp_images import CHIP_LAYOUT, make_firmware

from tinysense.flash.romloader import RomLoader
from tinysense.flash.romproto import (
    ERR_CRC,
    ERR_FAILED,
    ERR_INVALID,
    FLASH_BEGIN,
    FLASH_DATA,
    FLASH_DEFL_BEGIN,
    FLASH_DEFL_DATA,
    MEM_BEGIN,
    MEM_DATA,
    MEM_END,
    READ_REG,
    SPI_FLASH_MD5,
    SYNC,
    FlashFile,
    RomProtocol,
    SlipDecoder,
    slip_encode,
)
from tinysense.flash.romchips import CHIPS

FLASH = 1 << 20


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """Loaders register their ports under STATE_DIR: keep that in the test's directory."""
    from tinysense import paths
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")


def request(op: int, data: bytes = b"", checksum: int = 0) -> bytes:
    return struct.pack("<BBHI", 0, op, len(data), checksum) + data


def checksum(data: bytes) -> int:
    state = 0xEF
    for b in data:
        state ^= b
    return state


def status(response: bytes) -> tuple[int, int]:
    """(status, error) of a ROM response: the 4 trailing status bytes."""
    _, _, size, _ = struct.unpack_from("<BBHI", response)
    body = response[8:8 + size]
    return body[-4], body[-3]


@pytest.fixture
def rom(tmp_path):
    flash = FlashFile(tmp_path / "flash.bin", FLASH)
    yield RomProtocol(CHIPS["esp32s3"], flash)
    flash.close()


def test_slip_roundtrip_escapes_and_drops_noise():
    packets = [b"\xc0\xdb\x00", b"plain", bytes(range(256))]
    stream = b"boot noise" + b"".join(slip_encode(p) for p in packets)
    decoder = SlipDecoder()
    got = []
    for i in range(0, len(stream), 7):  # arrives in pieces
        got += decoder.feed(stream[i:i + 7])
    assert got == packets


def test_sync_answers_eight_times_with_rom_value(rom):
    body = b"\x07\x07\x12\x20" + 32 * b"\x55"
    responses = rom.handle(request(SYNC, body))
    assert len(responses) == 8
    assert all(struct.unpack_from("<I", r, 4)[0] != 0 for r in responses)  # not the stub
    assert status(rom.handle(request(SYNC, b"\x07" * 36))[0]) == (1, ERR_INVALID)


def test_unknown_register_is_recorded(rom):
    (resp,) = rom.handle(request(READ_REG, struct.pack("<I", 0x12345678)))
    assert status(resp) == (0, 0)
    assert rom.unhandled and "0x12345678" in rom.unhandled[0]


def test_stub_only_commands_are_refused_like_the_rom(rom):
    (resp,) = rom.handle(request(0xD0))   # ERASE_FLASH exists only in the flasher stub
    assert status(resp) == (1, ERR_INVALID)


def test_flash_data_checks_checksum_sequence_and_programs_nor_style(rom):
    assert status(rom.handle(request(FLASH_BEGIN, struct.pack("<5I", 0x2000, 2, 0x400,
                                                                0x1000, 0)))[0]) == (0, 0)
    block = bytes([0xF0]) * 0x400
    header = struct.pack("<4I", len(block), 0, 0, 0)
    bad = rom.handle(request(FLASH_DATA, header + block, checksum(block) ^ 1))[0]
    assert status(bad) == (1, ERR_CRC)
    out_of_order = struct.pack("<4I", len(block), 1, 0, 0)
    assert status(rom.handle(request(FLASH_DATA, out_of_order + block,
                                     checksum(block)))[0]) == (1, ERR_FAILED)
    assert status(rom.handle(request(FLASH_DATA, header + block, checksum(block)))[0]) == (0, 0)
    assert rom.flash.read(0x1000, 0x400) == block
    # NOR: programming again can only clear bits (0xF0 & 0x0F == 0)
    rom.flash.program(0x1000, bytes([0x0F]) * 4)
    assert rom.flash.read(0x1000, 4) == b"\x00" * 4
    # FLASH_BEGIN erased whole sectors: the rest of 0x1000..0x3000 is 0xFF
    assert rom.flash.read(0x1400, 0x1C00) == b"\xff" * 0x1C00


def test_esp32_rom_takes_16_byte_begin_only(tmp_path):
    flash = FlashFile(tmp_path / "f.bin", FLASH)
    esp32 = RomProtocol(CHIPS["esp32"], flash)
    params = struct.pack("<4I", 0x1000, 1, 0x400, 0)
    assert status(esp32.handle(request(FLASH_BEGIN, params + b"\0" * 4))[0]) == (1, ERR_INVALID)
    assert status(esp32.handle(request(FLASH_BEGIN, params))[0]) == (0, 0)
    flash.close()


def test_deflate_write_and_md5(rom):
    payload = bytes(range(256)) * 40
    packed = zlib.compress(payload, 9)
    blocks = [packed[i:i + 0x400] for i in range(0, len(packed), 0x400)]
    begin = struct.pack("<5I", 0x3000, len(blocks), 0x400, 0x10000, 0)
    assert status(rom.handle(request(FLASH_DEFL_BEGIN, begin))[0]) == (0, 0)
    for seq, block in enumerate(blocks):
        head = struct.pack("<4I", len(block), seq, 0, 0)
        assert status(rom.handle(request(FLASH_DEFL_DATA, head + block,
                                         checksum(block)))[0]) == (0, 0)
    assert rom.flash.read(0x10000, len(payload)) == payload
    (resp,) = rom.handle(request(SPI_FLASH_MD5, struct.pack("<4I", 0x10000, len(payload), 0, 0)))
    assert resp[8:40] == hashlib.md5(payload).hexdigest().encode()


def test_flash_begin_outside_flash_fails(rom):
    begin = struct.pack("<5I", 0x2000, 8, 0x400, FLASH - 0x1000, 0)
    assert status(rom.handle(request(FLASH_BEGIN, begin))[0]) == (1, ERR_FAILED)


ESPTOOL_NAMES = {"esp32": "ESP32", "esp32s3": "ESP32-S3", "esp32c3": "ESP32-C3"}


def esptool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esptool", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("chip", list(CHIPS))
def test_real_esptool_detects_writes_and_verifies(tmp_path, chip):
    firmware = tmp_path / "firmware.bin"
    firmware.write_bytes(make_firmware(chip))
    offset = CHIP_LAYOUT[chip][1]
    common = ["--before", "no-reset", "--after", "no-reset", "--no-stub"]
    with RomLoader(chip, tmp_path / "flash.bin", 4 << 20) as rom:
        # ESP32's ROM also has the compressed FLASH_DEFL_* commands: make esptool use them
        deflate = ["--compress"] if chip == "esp32" else []
        write = esptool("--port", rom.port, *common, "write-flash", *deflate, hex(offset),
                        str(firmware))
        assert write.returncode == 0, write.stdout + write.stderr
        assert f"Detecting chip type... {ESPTOOL_NAMES[chip]}\n" in write.stdout
        assert CHIPS[chip].description in write.stdout       # from the eFuse words
        assert "MAC:                02:74:73:00:00:" in write.stdout
        assert ("compressed)" in write.stdout) == bool(deflate)
        verify = esptool("--port", rom.port, *common, "verify-flash", hex(offset), str(firmware))
        assert verify.returncode == 0 and "Verification successful" in verify.stdout
        assert rom.unhandled == []   # every request esptool made was understood
    flash = (tmp_path / "flash.bin").read_bytes()
    data = firmware.read_bytes()
    assert len(flash) == 4 << 20
    assert flash[offset:offset + len(data)] == data
    assert set(flash[:offset] + flash[offset + len(data):]) == {0xFF}


@pytest.mark.parametrize("chip", list(CHIPS))
def test_real_esptool_with_its_flasher_stub(tmp_path, chip):
    """Default esptool (stub uploaded with MEM_*): erase-all, compressed write, read back."""
    firmware = tmp_path / "firmware.bin"
    data = make_firmware(chip)
    firmware.write_bytes(data)
    offset = CHIP_LAYOUT[chip][1]
    (tmp_path / "flash.bin").write_bytes(b"\x00" * (4 << 20))   # junk everywhere
    common = ["--before", "no-reset", "--after", "no-reset"]
    with RomLoader(chip, tmp_path / "flash.bin", 4 << 20) as rom:
        write = esptool("--port", rom.port, *common, "write-flash", "--erase-all", hex(offset),
                        str(firmware))
        assert write.returncode == 0, write.stdout + write.stderr
        assert "Stub flasher running." in write.stdout and "Hash of data verified" in write.stdout
        back = tmp_path / "back.bin"
        read = esptool("--port", rom.port, *common, "read-flash", hex(offset), hex(len(data)),
                       str(back))
        assert read.returncode == 0, read.stdout + read.stderr
        assert back.read_bytes() == data
        assert rom.unhandled == []
    flash = (tmp_path / "flash.bin").read_bytes()
    assert set(flash[:offset] + flash[offset + len(data):]) == {0xFF}


def test_esp32_rom_reads_flash_slowly_without_stub(tmp_path):
    (tmp_path / "flash.bin").write_bytes(bytes(range(256)) * (4 << 12))
    with RomLoader("esp32", tmp_path / "flash.bin", 4 << 20) as rom:
        out = esptool("--port", rom.port, "--before", "no-reset", "--no-stub", "read-flash",
                      "0x100", "0x300", str(tmp_path / "r.bin"))
        assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "r.bin").read_bytes() == (bytes(range(256)) * 4)[:0x300]


def test_unknown_code_is_not_run(rom):
    rom.handle(request(MEM_BEGIN, struct.pack("<4I", 4, 1, 4, 0x40080000)))
    rom.handle(request(MEM_DATA, struct.pack("<4I", 4, 0, 0, 0) + b"\x01\x02\x03\x04",
                       checksum(b"\x01\x02\x03\x04")))
    (resp,) = rom.handle(request(MEM_END, struct.pack("<II", 0, 0x40080000)))
    assert status(resp) == (1, ERR_FAILED) and not rom.stub
    assert "not esptool's flasher stub" in rom.unhandled[-1]


def test_tcp_transport(tmp_path):
    with RomLoader("esp32c3", tmp_path / "flash.bin", 4 << 20, tcp_port=0) as rom:
        assert rom.port.startswith("socket://127.0.0.1:")
        out = esptool("--port", rom.port, "--before", "no-reset", "--no-stub", "flash-id")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Detected flash size: 4MB" in out.stdout
