"""The merged flash image QEMU boots: the firmware at the board's offset, padded to flash size."""

from __future__ import annotations

import os
from pathlib import Path

from tinysense.boards import BoardConfig
from tinysense.errors import TinysenseError


def build_flash_image(board: BoardConfig, firmware: str | os.PathLike,
                      out: str | os.PathLike, romfs: str | os.PathLike | None = None) -> Path:
    """Write the full flash image for `board` with `firmware` to `out` and return its path.

    The work is `tinysense image` (tinysense.flash.image: esptool merge-bin padded to the
    board's flash size, firmware checked for the board's chip first, optional ROMFS).

    Args:
        firmware: a MicroPython firmware .bin, or the name/sha256 prefix of a cached one.

    Raises:
        TinysenseError: missing firmware, not an ESP image, or built for another chip.
    """
    from tinysense.flash.image import build_flash_image as build_image

    if not Path(firmware).is_file() and os.sep in str(firmware):
        raise TinysenseError(f"firmware image {firmware} not found; download the MicroPython "
                             f".bin for {board.name} and pass it with --firmware")
    return Path(build_image(board, str(firmware), out, romfs=romfs).path)
