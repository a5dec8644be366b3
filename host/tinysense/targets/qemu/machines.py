"""One table of QEMU machines per ESP32 chip, and the command line built from it."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from tinysense.boards import BoardConfig
from tinysense.errors import TinysenseError


@dataclasses.dataclass(frozen=True)
class QemuMachine:
    """How Espressif's QEMU emulates one chip.

    Attributes:
        binary: executable name (from ESP-IDF's `idf_tools.py install qemu-xtensa qemu-riscv32`).
        machine: the `-machine` name.
        options: extra options placed before the drive and serial options.
        psram: whether `-m SIZE` sets the emulated PSRAM (from the board's psram_bytes).
        tool: the idf_tools.py package that provides `binary`.
    """

    binary: str
    machine: str
    options: tuple[str, ...] = ()
    psram: bool = False
    tool: str = "qemu-xtensa"


# esptool chip name -> machine. The only place that knows how chips differ in QEMU.
# The group watchdogs are disabled: emulation is slower than silicon and MicroPython's
# idle task would otherwise trip them during long viper loops. The ESP32-S3 machine reuses
# the ESP32-C3 timer-group model, hence its driver name.
QEMU_MACHINES: dict[str, QemuMachine] = {
    "esp32": QemuMachine(
        "qemu-system-xtensa", "esp32",
        ("-global", "driver=timer.esp32.timg,property=wdt_disable,value=true"),
        psram=True),
    "esp32s3": QemuMachine(
        "qemu-system-xtensa", "esp32s3",
        ("-global", "driver=timer.esp32c3.timg,property=wdt_disable,value=true"),
        psram=True),
    "esp32c3": QemuMachine(
        "qemu-system-riscv32", "esp32c3",
        ("-icount", "3",
         "-global", "driver=timer.esp32c3.timg,property=wdt_disable,value=true"),
        tool="qemu-riscv32"),
}


def machine_for(board: BoardConfig) -> QemuMachine:
    """The QEMU machine for a board's chip, or a TinysenseError naming the chips QEMU has."""
    try:
        return QEMU_MACHINES[board.chip]
    except KeyError:
        raise TinysenseError(
            f"board {board.name} (chip {board.chip}) has no Espressif QEMU machine; "
            f"QEMU emulates: {', '.join(QEMU_MACHINES)}") from None


def _idf_tool_dirs(tool: str) -> list[Path]:
    """bin/ directories where ESP-IDF's idf_tools.py installs a QEMU package."""
    idf_home = Path(os.environ.get("IDF_TOOLS_PATH", Path.home() / ".espressif"))
    return sorted((idf_home / "tools" / tool).glob("*/qemu/bin"), reverse=True)


def find_qemu(chip: str) -> Path | None:
    """The QEMU executable for `chip`: $TINYSENSE_QEMU_DIR, PATH, then ~/.espressif/tools."""
    spec = QEMU_MACHINES.get(chip)
    if spec is None:
        return None
    dirs = []
    if os.environ.get("TINYSENSE_QEMU_DIR"):
        dirs.append(Path(os.environ["TINYSENSE_QEMU_DIR"]))
    for directory in dirs:
        exe = directory / spec.binary
        if os.access(exe, os.X_OK):
            return exe
    found = shutil.which(spec.binary)
    if found:
        return Path(found)
    for directory in _idf_tool_dirs(spec.tool):
        exe = directory / spec.binary
        if os.access(exe, os.X_OK):
            return exe
    return None


def qemu_command(board: BoardConfig, flash_image: str | os.PathLike, tcp_port: int,
                 executable: str | os.PathLike | None = None) -> list[str]:
    """The QEMU command line that boots `flash_image` with UART0 on local TCP `tcp_port`.

    Args:
        board: the board whose chip (and PSRAM size) selects the machine.
        flash_image: a full merged flash image (see build_flash_image).
        tcp_port: UART0 becomes a TCP server on 127.0.0.1:tcp_port (no wait for a client).
        executable: QEMU binary to use; defaults to the machine's binary name.
    """
    spec = machine_for(board)
    cmd = [str(executable or spec.binary), "-nographic", "-machine", spec.machine]
    cmd += spec.options
    if spec.psram and board.psram and board.psram_bytes:
        cmd += ["-m", f"{board.psram_bytes // (1 << 20)}M"]
    cmd += ["-drive", f"file={os.fspath(flash_image)},if=mtd,format=raw",
            "-serial", f"tcp:127.0.0.1:{tcp_port},server,nowait",
            "-monitor", "none"]
    return cmd
