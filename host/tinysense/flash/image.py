"""`tinysense image`: a whole-flash image for emulators (QEMU boots it as its flash chip).

It is `esptool merge-bin --pad-to-size <board flash size>` with the firmware at the board's
firmware offset and, optionally, a ROMFS image at the board's ROMFS partition; everything
else is 0xFF (erased flash). esptool's merge_bin is called as a library, with flash
parameters kept as they are in the image (so the bytes of the firmware are unchanged).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

from esptool.cmds import merge_bin
from esptool.util import FatalError

from tinysense.boards import BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.flash.cache import resolve_firmware
from tinysense.flash.firmware import FirmwareInfo, inspect_firmware

ROMFS_HEADER = b"\xd2\xcd\x31"   # VfsRom image magic (mpremote.romfs.VfsRomWriter)


@dataclasses.dataclass(frozen=True)
class FlashImage:
    path: Path
    size: int
    regions: tuple[tuple[int, int, str], ...]   # (offset, length, what)
    firmware: FirmwareInfo


def build_flash_image(board: str | BoardConfig, firmware: str, output: str | Path,
                      romfs: str | Path | None = None) -> FlashImage:
    """Write a flash image of the board's flash size to `output`.

    Args:
        board: board id or config: chip, flash size, firmware offset, ROMFS partition.
        firmware: path, or a cached image's name / sha256 prefix.
        output: where to write the image.
        romfs: optional ROMFS image (`mpremote romfs build` / tinysense deploy --romfs)
            placed at the board's romfs_offset.

    Raises:
        TinysenseError: wrong chip or broken firmware, a ROMFS image for a board without a
            ROMFS partition (in its config, or in the firmware's partition table, which
            must agree), a ROMFS image that is not one or does not fit.
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    if cfg.is_virtual:
        raise TinysenseError("the VIRTUAL board has no flash image; pick an ESP32 board")
    data, name = resolve_firmware(firmware)
    info = inspect_firmware(data, cfg.chip, cfg.firmware_offset, name)
    end = cfg.firmware_offset + len(data)
    if end > cfg.flash_bytes:
        raise TinysenseError(f"{name} does not fit in the {cfg.flash_size} flash of {cfg.name}")
    parts = [(cfg.firmware_offset, data)]
    regions = [(cfg.firmware_offset, len(data), f"firmware {name}")]
    if romfs is not None:
        if not cfg.has_romfs:
            raise TinysenseError(
                f"board {cfg.name} has no ROMFS partition (romfs_size = 0 in {cfg.path}); "
                "use a board config with romfs_offset/romfs_size, or leave out --romfs")
        image = Path(romfs).read_bytes()
        if not image.startswith(ROMFS_HEADER):
            raise TinysenseError(f"{romfs} is not a ROMFS image (it does not start with "
                                 f"{ROMFS_HEADER.hex()}); build one with `tinysense deploy "
                                 "--romfs` or `mpremote romfs build`")
        if len(image) > cfg.romfs_size:
            raise TinysenseError(f"ROMFS image {romfs} is {len(image)} bytes; the {cfg.name} "
                                 f"partition holds {cfg.romfs_size}")
        if cfg.romfs_offset < end:
            raise TinysenseError(f"{name} ends at 0x{end:x}, past the ROMFS partition at "
                                 f"0x{cfg.romfs_offset:x}: the firmware is too big for "
                                 f"{cfg.name}'s layout")
        romfs_parts = [p for p in info.partitions if p.label == "romfs"]
        if info.partitions and not romfs_parts:
            raise TinysenseError(f"{name}'s partition table has no 'romfs' partition (it has "
                                 f"{', '.join(p.label for p in info.partitions)}): use a "
                                 "MicroPython build with ROMFS for this image")
        if romfs_parts and (romfs_parts[0].offset, romfs_parts[0].size) != (
                cfg.romfs_offset, cfg.romfs_size):
            part = romfs_parts[0]
            raise TinysenseError(f"{name} has its romfs partition at 0x{part.offset:x} "
                                 f"(0x{part.size:x} bytes) but board {cfg.name} says "
                                 f"0x{cfg.romfs_offset:x} (0x{cfg.romfs_size:x}): fix the board "
                                 "config to match the firmware")
        parts.append((cfg.romfs_offset, image))
        regions.append((cfg.romfs_offset, len(image), f"romfs {Path(romfs).name}"))
    out = Path(output)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            merged = merge_bin(parts, chip=cfg.chip, output=None, pad_to_size=cfg.flash_size)
    except FatalError as exc:
        raise TinysenseError(f"merging the flash image failed: {exc}") from None
    if len(merged) != cfg.flash_bytes:
        raise TinysenseError(f"merged image is {len(merged)} bytes, expected {cfg.flash_bytes}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(merged)
    return FlashImage(out, len(merged), tuple(regions), info)
