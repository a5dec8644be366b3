"""Small, valid, MicroPython-shaped ESP firmware images for the flash tests (made, not downloaded).

A stock MicroPython `firmware.bin` for an ESP32 board is a merged image written at the
board's firmware offset (0x1000 on ESP32, 0x0 on ESP32-S3/C3): the second-stage bootloader
image, the partition table at flash 0x8000, and the application image at flash 0x10000.
`make_firmware(chip)` builds exactly that layout with esptool's own image writer
(`esptool.bin_image.ESP32*FirmwareImage.save`, the code `esptool elf2image` uses), so every
header, checksum and appended SHA-256 is what esptool produces for a real build:

- bootloader: RAM segments (IRAM code + DRAM data) with deterministic pseudo-random bytes,
  entry point in IRAM, flash mode DIO, the chip's id in the extended header;
- partition table: MicroPython's 4 MiB layout (nvs, phy_init, factory app at 0x10000,
  vfs) plus the MD5 entry, padded with 0xFF to 0xC00 bytes;
- application: a DROM segment starting with an esp_app_desc_t (magic 0xABCD5432,
  project "micropython", version "v1.29.0-tinysense-test"), an IROM segment, and RAM
  segments.

The images cannot run on a chip (the code bytes are not instructions); they are only for
checking that flashing, merging and verification move the right bytes to the right place.
"""

from __future__ import annotations

import hashlib
import random
import struct

from esptool.bin_image import (
    ESP32C3FirmwareImage,
    ESP32FirmwareImage,
    ESP32S3FirmwareImage,
    ELFSection,
)

# chip -> (image class, firmware offset, IRAM, DRAM, IROM, DROM base addresses)
CHIP_LAYOUT = {
    "esp32": (ESP32FirmwareImage, 0x1000, 0x40080400, 0x3FFB0000, 0x400D0020, 0x3F400020),
    "esp32s3": (ESP32S3FirmwareImage, 0x0, 0x40374000, 0x3FC90000, 0x42000020, 0x3C000020),
    "esp32c3": (ESP32C3FirmwareImage, 0x0, 0x40380000, 0x3FC80000, 0x42000020, 0x3C000020),
}
PARTITION_TABLE_OFFSET = 0x8000
APP_OFFSET = 0x10000
# MicroPython ports/esp32/partitions-4MiB.csv
PARTITIONS = [
    ("nvs", 0x01, 0x02, 0x9000, 0x6000),
    ("phy_init", 0x01, 0x01, 0xF000, 0x1000),
    ("factory", 0x00, 0x00, 0x10000, 0x1F0000),
    ("vfs", 0x01, 0x81, 0x200000, 0x200000),
]
# A layout with a ROMFS partition: a data partition labelled 'romfs' (the label MicroPython's
# ROMFS builds look for); its offset and size here are this test's choice.
PARTITIONS_ROMFS = [
    ("nvs", 0x01, 0x02, 0x9000, 0x6000),
    ("phy_init", 0x01, 0x01, 0xF000, 0x1000),
    ("factory", 0x00, 0x00, 0x10000, 0x1F0000),
    ("romfs", 0x01, 0x8F, 0x600000, 0x100000),
    ("vfs", 0x01, 0x81, 0x200000, 0x400000),
]
FLASH_MODE_DIO = 2
FLASH_4MB_40M = 0x20           # size nibble 2 (4 MB), frequency 40 MHz


def _bytes(rng: random.Random, n: int) -> bytes:
    """Half random, half repeated: compressible like real code, but not trivially."""
    half = bytes(rng.getrandbits(8) for _ in range(n // 2))
    return half + bytes((i * 7) & 0xFF for i in range(n - len(half)))


def _image(chip: str, segments: list[tuple[str, int, bytes]], entry: int) -> bytes:
    cls = CHIP_LAYOUT[chip][0]
    image = cls()
    image.flash_mode = FLASH_MODE_DIO
    image.flash_size_freq = FLASH_4MB_40M
    image.entrypoint = entry
    for name, addr, data in segments:
        image.segments.append(ELFSection(name.encode(), addr, data, flags=0))
    return image.save(None)


def app_desc(version: str = "v1.29.0-tinysense-test") -> bytes:
    """An esp_app_desc_t (256 bytes) as ESP-IDF puts at the start of the DROM segment."""
    desc = struct.pack("<II8x", 0xABCD5432, 0)
    desc += version.encode().ljust(32, b"\0") + b"micropython".ljust(32, b"\0")
    desc += b"00:00:00".ljust(16, b"\0") + b"Jan  1 2026".ljust(16, b"\0")
    desc += b"v5.4.1".ljust(32, b"\0") + bytes(32)
    return desc.ljust(256, b"\0")


def partition_table(partitions=PARTITIONS) -> bytes:
    table = b""
    for label, ptype, subtype, offset, size in partitions:
        table += struct.pack("<2sBBII16sI", b"\xaa\x50", ptype, subtype, offset, size,
                             label.encode(), 0)
    table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table.ljust(0xC00, b"\xff")


def make_bootloader(chip: str, seed: int = 1) -> bytes:
    _, _, iram, dram, _, _ = CHIP_LAYOUT[chip]
    rng = random.Random(seed)
    return _image(chip, [(".iram_loader.text", iram, _bytes(rng, 0x1800)),
                         (".dram0.data", dram, _bytes(rng, 0x400))], iram + 4)


def make_app(chip: str, size: int = 0x6000, seed: int = 2, version: str | None = None) -> bytes:
    _, _, iram, dram, irom, drom = CHIP_LAYOUT[chip]
    rng = random.Random(seed)
    drom_data = (app_desc(version) if version else app_desc()) + _bytes(rng, 0x800)
    segments = [(".flash.appdesc", drom, drom_data),
                (".flash.text", irom + 0x10000, _bytes(rng, size)),
                (".iram0.text", iram, _bytes(rng, 0x1000)),
                (".dram0.data", dram, _bytes(rng, 0x200))]
    return _image(chip, segments, iram + 0x20)


def make_firmware(chip: str, app_size: int = 0x6000, seed: int = 0,
                  partitions=PARTITIONS) -> bytes:
    """A merged firmware image (bootloader + partition table + app) for `chip`."""
    offset = CHIP_LAYOUT[chip][1]
    out = bytearray(make_bootloader(chip, seed + 1))
    for where, blob in ((PARTITION_TABLE_OFFSET, partition_table(partitions)),
                        (APP_OFFSET, make_app(chip, app_size, seed + 2))):
        out += b"\xff" * (where - offset - len(out))
        out += blob
    return bytes(out)
