"""The merged flash image QEMU boots: the firmware at the board's offset, padded to flash size."""

from __future__ import annotations

import os
from pathlib import Path

from tinysense.boards import BoardConfig
from tinysense.errors import TinysenseError

_ESP_IMAGE_MAGIC = 0xE9
_CHIP_ID_OFFSET = 12  # uint16 LE in the extended header, after the 8-byte common header


def check_firmware(board: BoardConfig, data: bytes, source: str) -> None:
    """Refuse an image that is not an ESP application image for the board's chip."""
    from esptool.targets import CHIP_DEFS

    if len(data) < 24 or data[0] != _ESP_IMAGE_MAGIC:
        raise TinysenseError(
            f"{source} is not an ESP32 firmware image (no 0xE9 magic at its start); "
            f"expected a MicroPython .bin for {board.name} (micropython.org/download)")
    chip_id = int.from_bytes(data[_CHIP_ID_OFFSET:_CHIP_ID_OFFSET + 2], "little")
    want = CHIP_DEFS[board.chip].IMAGE_CHIP_ID
    if chip_id != want:
        names = {cls.IMAGE_CHIP_ID: name for name, cls in CHIP_DEFS.items()}
        raise TinysenseError(
            f"{source} is built for {names.get(chip_id, f'chip id {chip_id}')}, but board "
            f"{board.name} is {board.chip}; use a firmware for {board.chip}")


def _merge_with_esptool(board: BoardConfig, firmware: Path, out: Path) -> Path:
    """esptool merge-bin: firmware at board.firmware_offset, padded with 0xFF to flash size."""
    from esptool.cmds import merge_bin

    merge_bin([(board.firmware_offset, str(firmware))], board.chip, output=str(out),
              pad_to_size=board.flash_size)
    return out


def build_flash_image(board: BoardConfig, firmware: str | os.PathLike,
                      out: str | os.PathLike) -> Path:
    """Write the full flash image for `board` with `firmware` to `out` and return its path.

    esptool's merge-bin does the work (see _merge_with_esptool; the one place to swap in
    the boards area's `tinysense image` builder, which also adds a ROMFS partition).

    Raises:
        TinysenseError: missing firmware, not an ESP image, or built for another chip.
    """
    firmware, out = Path(firmware), Path(out)
    if not firmware.is_file():
        raise TinysenseError(f"firmware image {firmware} not found; download the MicroPython "
                             f".bin for {board.name} and pass it with --firmware")
    check_firmware(board, firmware.read_bytes()[:64], str(firmware))
    out.parent.mkdir(parents=True, exist_ok=True)
    return _merge_with_esptool(board, firmware, out)
