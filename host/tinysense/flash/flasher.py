"""`tinysense flash`: write MicroPython firmware to a board with esptool used as a library.

Order matters, so that a bad input never touches the board: the image is checked against
the board's chip first (firmware.inspect_firmware), then the port is opened (missing or
busy ports fail here), then the chip on the port is identified and compared with the board
config; only then is anything erased or written. After writing, the flash contents are
verified against the image (esptool's verify_flash: MD5 of the region on the chip).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import serial
from esptool.cmds import (
    attach_flash,
    connect_esp,
    detect_flash_size,
    erase_flash,
    reset_chip,
    run_stub,
    verify_flash,
    write_flash,
)
from esptool.loader import ESPLoader
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError, NotImplementedInROMError

from tinysense import paths
from tinysense.boards import FLASH_SIZES, BoardConfig, load_board
from tinysense.errors import TinysenseError
from tinysense.flash.cache import add_firmware, resolve_firmware
from tinysense.flash.firmware import FirmwareInfo, inspect_firmware
from tinysense.flash.romloader import virtual_rom_port


@dataclasses.dataclass(frozen=True)
class FlashResult:
    board: str
    port: str
    chip: str                  # what esptool reports, e.g. "ESP32-D0WD-V3 (revision v3.0)"
    offset: int
    firmware: FirmwareInfo
    erased: bool
    stub: bool
    seconds: float


def _fatal(what: str, exc: Exception) -> TinysenseError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TinysenseError(f"{what}: {first}")


def find_port(board: str) -> str:
    """The one ESP32 USB serial port present (by VID:PID), for a --port left out."""
    from tinysense.targets import find_usb_boards

    ports = find_usb_boards(load_board(board))
    if len(ports) == 1:
        print(f"port: {ports[0].device} ({ports[0].description}, the only ESP32 USB port)")
        return ports[0].device
    if not ports:
        raise TinysenseError("no --port given and no ESP32 board found on USB: plug it in, or "
                             "pass --port /dev/ttyUSB0 (PORT=... for make, or TINYSENSE_PORT)")
    raise TinysenseError(f"no --port given and {len(ports)} ESP32 boards on USB ("
                         f"{', '.join(p.device for p in ports)}): pick one with --port")


def check_port(port: str) -> None:
    """Fail with one clear line if `port` is missing or held by another program."""
    if "://" not in port and not os.path.exists(port):
        from tinysense.targets import find_usb_boards

        present = ", ".join(p.device for p in find_usb_boards()) or "none"
        raise TinysenseError(f"serial port {port} does not exist: is the board plugged in? "
                             f"(ESP32 USB ports present: {present})")
    try:
        ser = serial.serial_for_url(port, exclusive=True, timeout=0.1)
    except serial.SerialException as exc:
        text = str(exc)
        if "exclusively lock" in text or "Resource temporarily unavailable" in text:
            raise TinysenseError(f"serial port {port} is busy: another program (a monitor, "
                                 "mpremote, screen) has it open; close it and retry") from None
        raise _fatal(f"cannot open serial port {port}", exc) from None
    ser.close()


def _connect(port: str, before: str, attempts: int) -> ESPLoader:
    try:
        return connect_esp(port=port, chip="auto", before=before, connect_attempts=attempts)
    except (FatalError, serial.SerialException, OSError) as exc:
        raise _fatal(f"no ESP chip in download mode on {port}", exc) from None


def flash_firmware(board: str | BoardConfig, port: str, firmware: str, *, erase: bool = False,
                   baud: int | None = None, no_stub: bool = False,
                   connect_attempts: int = 7,
                   say: Callable[[str], None] = print) -> FlashResult:
    """Write `firmware` at the board's firmware offset, verify it, and reset the board.

    Args:
        board: board id or config (its chip, flash size and firmware offset are used).
        port: serial port or pyserial URL of the board (in download mode, or auto-reset);
            "virtual": a virtual ROM loader for the board, started for this flash, writing
            into virtual_flash_file(board) (what `tinysense romloader` uses by default).
        firmware: a file path, or a cached image's name or sha256 prefix.
        erase: erase the whole flash first (the filesystem is lost).
        baud: flashing baud rate (default: the board's `baud`).
        no_stub: talk to the ROM loader only (no flasher stub upload); slower, but what a
            chip in secure download mode needs.
        connect_attempts: esptool's connection attempts (each tries the reset sequences).
        say: where progress lines go.

    Raises:
        TinysenseError: wrong chip, truncated/corrupt image, missing or busy port, no chip
            on the port, or a write/verify failure. Nothing is written unless the image
            and the chip both match the board.
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    if cfg.is_virtual:
        raise TinysenseError("the VIRTUAL board runs the MicroPython unix port: there is no "
                             "firmware to flash (use `tinysense deploy --target virtual`)")
    if port == "virtual":
        return _flash_virtual(cfg, firmware, erase=erase, baud=baud, no_stub=no_stub,
                              connect_attempts=connect_attempts, say=say)
    data, name = resolve_firmware(firmware)
    info = inspect_firmware(data, cfg.chip, cfg.firmware_offset, name)
    if cfg.firmware_offset + len(data) > cfg.flash_bytes:
        raise TinysenseError(f"{name} ({len(data)} bytes at 0x{cfg.firmware_offset:x}) does not "
                             f"fit in the {cfg.flash_size} flash of {cfg.name}")
    entry = add_firmware(data, name, info.chip, info.version)
    say(f"firmware: {info.summary()} (cached as {entry.sha256[:12]})")

    check_port(port)
    # A virtual ROM loader (or a TCP port) has no DTR/RTS lines to reset the chip with: it
    # is already in download mode, so connect without the reset dance.
    virtual = virtual_rom_port(port)
    use_stub = not no_stub
    before = "no-reset" if virtual or "://" in port else "default-reset"
    start = time.monotonic()
    say(f"connecting to {port} ...")
    esp = _connect(port, before, connect_attempts)
    try:
        expected = CHIP_DEFS[cfg.chip].CHIP_NAME
        if esp.CHIP_NAME != expected:
            raise TinysenseError(f"the chip on {port} is an {esp.CHIP_NAME}, but board {cfg.name} "
                                 f"is an {expected}: pick the right --board (nothing was "
                                 "written)")
        description = esp.get_chip_description()
        say(f"connected: {description} on {port}" + (" (virtual ROM loader)" if virtual else "")
            + ("" if use_stub else ", ROM loader only (no stub)"))
        try:
            if use_stub:
                esp = run_stub(esp)
            rate = baud or cfg.baud
            if rate > esp._port.baudrate:
                with contextlib.suppress(NotImplementedInROMError):
                    esp.change_baud(rate)
            attach_flash(esp)
            detected = detect_flash_size(esp)
            if detected in FLASH_SIZES and FLASH_SIZES[detected] < cfg.flash_bytes:
                raise TinysenseError(f"the chip on {port} has {detected} of flash but board "
                                     f"{cfg.name} says {cfg.flash_size}: fix the board config")
            if erase:
                say(f"erasing {cfg.flash_size} of flash ...")
                if esp.IS_STUB:
                    erase_flash(esp)
                else:  # the ROM has no ERASE_FLASH: FLASH_BEGIN erases the region it covers
                    esp.flash_begin(cfg.flash_bytes, 0, logging=False)
            write_flash(esp, [(cfg.firmware_offset, data)])
            verify_flash(esp, [(cfg.firmware_offset, data)])
            reset_chip(esp, "no-reset" if virtual else "hard-reset")
        except FatalError as exc:
            raise _fatal(f"flashing {cfg.name} on {port} failed", exc) from None
    finally:
        with contextlib.suppress(Exception):
            esp._port.close()
    seconds = time.monotonic() - start
    say(f"flashed {name} to {cfg.name} at 0x{cfg.firmware_offset:x} and verified "
        f"({seconds:.1f} s)")
    return FlashResult(cfg.name, port, description, cfg.firmware_offset, info, erase,
                       use_stub, seconds)


def virtual_flash_file(cfg: BoardConfig) -> Path:
    """The flash file of the board's virtual chip (`tinysense romloader`, --port virtual)."""
    return paths.STATE_DIR / "romloader" / f"{cfg.name}.flash.bin"


def _flash_virtual(cfg: BoardConfig, firmware: str, **kwargs) -> FlashResult:
    from tinysense.flash.romloader import RomLoader

    flash = virtual_flash_file(cfg)
    flash.parent.mkdir(parents=True, exist_ok=True)
    with RomLoader(cfg.chip, flash, cfg.flash_bytes) as rom:
        kwargs["say"](f"virtual {cfg.chip} ROM loader on {rom.port}, flash file {flash}")
        return flash_firmware(cfg, rom.port, firmware, **kwargs)
