"""A stand-in for Espressif's QEMU in tests. It is NOT an emulator and runs no firmware.

Espressif's QEMU cannot be installed on the CI machine. This program takes QEMU's command
line exactly as tinysense builds it, checks it (machine, flash image size, UART on a local
TCP server), writes it to `argv.json` beside the flash image, and then serves the virtual
board's MicroPython REPL on that TCP port (it becomes the virtual board's supervisor). So
QemuNode's process handling, the prompt wait, the socket transport and the pytest plugin's
`--target qemu` path run for real, with a real MicroPython behind the port.

`install(directory)` puts it there as `qemu-system-xtensa` and `qemu-system-riscv32`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

MACHINES = {"qemu-system-xtensa": ("esp32", "esp32s3"), "qemu-system-riscv32": ("esp32c3",)}


def install(directory: Path) -> Path:
    """Write executables named like QEMU's into `directory` that run this stand-in."""
    directory.mkdir(parents=True, exist_ok=True)
    host = Path(__file__).resolve().parents[2] / "host"
    for name in MACHINES:
        exe = directory / name
        exe.write_text(f"#!/bin/sh\nPYTHONPATH={host} exec {sys.executable} "
                       f"{Path(__file__).resolve()} {name} \"$@\"\n")
        exe.chmod(0o755)
    return directory


def main(argv: list[str]) -> int:
    name, args = argv[1], argv[2:]  # the wrapper passes the name it was installed as
    if args == ["-machine", "help"]:
        print("Supported machines are:")
        for machine in MACHINES[name]:
            print(f"{machine:<20} Espressif {machine.upper()} (tinysense test stand-in)")
        return 0
    machine = args[args.index("-machine") + 1]
    if machine not in MACHINES[name]:
        print(f"qemu: unsupported machine '{machine}'", file=sys.stderr)
        return 1
    drive = dict(kv.split("=", 1) for kv in args[args.index("-drive") + 1].split(","))
    flash = Path(drive["file"])
    if drive.get("if") != "mtd" or flash.stat().st_size not in (2 << 20, 4 << 20, 8 << 20,
                                                                16 << 20):
        print(f"qemu: bad flash drive {drive}", file=sys.stderr)
        return 1
    serial = re.fullmatch(r"tcp:127\.0\.0\.1:(\d+),server,nowait",
                          args[args.index("-serial") + 1])
    if serial is None:
        print("qemu: expected -serial tcp:127.0.0.1:PORT,server,nowait", file=sys.stderr)
        return 1
    (flash.parent / "argv.json").write_text(json.dumps([name, *args]))
    micropython = str(Path(sys.executable).with_name("micropython"))
    os.execv(sys.executable, [sys.executable, "-m", "tinysense.targets.supervisor",
                              "--board", "ESP32_GENERIC", "--dir", str(flash.parent / "vb"),
                              "--micropython", micropython, "--heap", "112000",
                              "--tcp", serial.group(1)])
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
