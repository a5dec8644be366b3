"""Check a firmware image before it goes near a board: chip, layout, truncation, checksums.

A MicroPython `firmware.bin` for ESP32 boards is a merged image written at the board's
firmware offset: the bootloader image, the partition table (flash 0x8000) and the
application image (flash 0x10000, for the `factory` partition). Each ESP image starts with
magic 0xE9 and an extended header naming its chip (esptool's IMAGE_CHIP_ID); esptool's own
image parser (`esptool.bin_image.LoadFirmwareImage`) reads the segments, and we check the
checksum and the appended SHA-256 it computes, so a truncated or corrupted file is caught
here, before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import struct

from esptool.bin_image import LoadFirmwareImage
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError

from tinysense.errors import TinysenseError

ESP_IMAGE_MAGIC = 0xE9
PARTITION_TABLE_OFFSET = 0x8000
_PART_MAGIC = b"\xaa\x50"
_PART_MD5_MAGIC = b"\xeb\xeb"
_APP_DESC_MAGIC = 0xABCD5432
_APP_TYPE = 0x00
# chip id in an image's extended header -> esptool chip name (from esptool's chip table)
CHIP_BY_IMAGE_ID = {cls.IMAGE_CHIP_ID: name for name, cls in CHIP_DEFS.items()
                    if name != "esp8266" and hasattr(cls, "IMAGE_CHIP_ID")}


@dataclasses.dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int


@dataclasses.dataclass(frozen=True)
class FirmwareInfo:
    """What a firmware file holds, as checked by `inspect_firmware`."""

    chip: str
    size: int
    sha256: str
    kind: str                         # "merged" (bootloader+table+app) or "image" (one image)
    partitions: tuple[Partition, ...] = ()
    project: str = ""
    version: str = ""

    def summary(self) -> str:
        what = f"{self.project} {self.version}".strip() or self.kind
        return f"{what} for {self.chip}, {self.size} bytes, sha256 {self.sha256[:12]}"


def image_chip(data: bytes) -> str:
    """The chip an ESP image header names (raises TinysenseError if it is not an image)."""
    if len(data) < 24:
        raise TinysenseError(f"not an ESP firmware image: only {len(data)} bytes")
    if data[0] != ESP_IMAGE_MAGIC:
        raise TinysenseError(f"not an ESP firmware image: first byte 0x{data[0]:02x}, "
                             f"expected 0x{ESP_IMAGE_MAGIC:02x}")
    (chip_id,) = struct.unpack_from("<H", data, 12)
    if chip_id not in CHIP_BY_IMAGE_ID:
        raise TinysenseError(f"ESP image for an unknown chip id {chip_id}")
    return CHIP_BY_IMAGE_ID[chip_id]


def _load_image(chip: str, data: bytes, where: str):
    """Parse one ESP image with esptool and check its checksum and SHA-256."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            image = LoadFirmwareImage(chip, data)
    except (FatalError, struct.error) as exc:
        raise TinysenseError(f"{where} is truncated or corrupt ({exc}); download or build "
                             "the firmware again") from None
    if image.checksum != image.calculate_checksum():
        raise TinysenseError(f"{where}: checksum mismatch (corrupt image); download or build "
                             "the firmware again")
    if image.append_digest and image.stored_digest != image.calc_digest:
        raise TinysenseError(f"{where}: SHA-256 mismatch (truncated or corrupt image); "
                             "download or build the firmware again")
    return image


def _app_desc(image) -> tuple[str, str]:
    """(project, version) from the esp_app_desc_t at the start of an app's first segment."""
    for seg in image.segments[:1]:
        data = seg.data
        if len(data) >= 80 and struct.unpack_from("<I", data)[0] == _APP_DESC_MAGIC:
            version = data[16:48].split(b"\0")[0].decode(errors="replace")
            project = data[48:80].split(b"\0")[0].decode(errors="replace")
            return project, version
    return "", ""


def parse_partition_table(data: bytes) -> tuple[Partition, ...]:
    """Entries of an ESP-IDF binary partition table; checks its MD5 entry when present."""
    parts = []
    for pos in range(0, min(len(data), 0xC00), 32):
        entry = data[pos:pos + 32]
        if entry[:2] == _PART_MD5_MAGIC:
            if hashlib.md5(data[:pos]).digest() != entry[16:32]:
                raise TinysenseError("partition table MD5 mismatch (corrupt firmware)")
            break
        if entry[:2] != _PART_MAGIC:
            break
        _, ptype, subtype, offset, size, label, _flags = struct.unpack("<2sBBII16sI", entry)
        parts.append(Partition(label.split(b"\0")[0].decode(errors="replace"), ptype,
                               subtype, offset, size))
    return tuple(parts)


def inspect_firmware(data: bytes, chip: str | None = None, offset: int = 0,
                     name: str = "firmware") -> FirmwareInfo:
    """Check a firmware file that will be written at flash `offset`.

    Args:
        data: the file's bytes.
        chip: the esptool chip name the board has; None accepts any chip.
        offset: where it will be written (the board's firmware_offset).
        name: how to call the file in error messages.

    Raises:
        TinysenseError: not an ESP image, built for another chip, an application image
            given where the full firmware belongs, truncated, or corrupt.
    """
    image_for = image_chip(data)
    if chip is not None and image_for != chip:
        raise TinysenseError(
            f"{name} is built for {image_for} but the board has an {chip}: use the "
            f"MicroPython firmware for this board (nothing was written)")
    first = _load_image(image_for, data, name)
    project, version = _app_desc(first)
    sha = hashlib.sha256(data).hexdigest()
    table_at = PARTITION_TABLE_OFFSET - offset
    if project:
        if offset < PARTITION_TABLE_OFFSET:
            raise TinysenseError(
                f"{name} is an application image ({project} {version}); the board takes the "
                f"full firmware (bootloader + partition table + app) at 0x{offset:x}. Use "
                "firmware.bin, not the app-only micropython.bin")
        return FirmwareInfo(image_for, len(data), sha, "image", (), project, version)
    if len(data) <= table_at or data[table_at:table_at + 2] != _PART_MAGIC:
        return FirmwareInfo(image_for, len(data), sha, "image")
    partitions = parse_partition_table(data[table_at:table_at + 0xC00])
    for part in partitions:
        start = part.offset - offset
        if part.type != _APP_TYPE:
            continue
        if start >= len(data):
            if part.label == "factory" or not project:
                raise TinysenseError(
                    f"{name} is truncated: it ends at flash 0x{offset + len(data):x}, before "
                    f"the '{part.label}' app at 0x{part.offset:x}")
            continue
        where = f"{name} (app '{part.label}' at 0x{part.offset:x})"
        app_data = data[start:start + part.size]
        if image_chip(app_data) != image_for:
            raise TinysenseError(f"{where} is built for {image_chip(app_data)}, its bootloader "
                                 f"for {image_for}: a broken merge; rebuild the firmware")
        app = _load_image(image_for, app_data, where)
        project, version = project or _app_desc(app)[0], version or _app_desc(app)[1]
    return FirmwareInfo(image_for, len(data), sha, "merged", partitions, project, version)
