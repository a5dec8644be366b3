"""`tinysense flash | image | firmware | romloader`: argument parsing only; logic in flash/."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from tinysense.cli import env_default


def cmd_flash(args) -> int:
    from tinysense.flash.flasher import find_port, flash_firmware

    port = args.port or find_port(args.board)
    flash_firmware(args.board, port, args.firmware, erase=args.erase, baud=args.baud,
                   no_stub=args.no_stub)
    return 0


def cmd_image(args) -> int:
    from tinysense.flash.image import build_flash_image

    result = build_flash_image(args.board, args.firmware, args.output, romfs=args.romfs)
    for offset, length, what in result.regions:
        print(f"0x{offset:08x} +{length:>8}  {what}")
    print(f"wrote {result.path} ({result.size} bytes, padded with 0xFF)")
    return 0


def cmd_firmware(args) -> int:
    from tinysense.flash.cache import add_firmware, list_firmware
    from tinysense.flash.firmware import inspect_firmware

    if args.action == "add":
        data = Path(args.path).read_bytes()
        info = inspect_firmware(data, name=args.path)
        entry = add_firmware(data, args.name or Path(args.path).name, info.chip, info.version)
        print(f"{entry.sha256[:12]}  {info.summary()}  names: {', '.join(entry.names)}")
        return 0
    entries = list_firmware()
    if not entries:
        print("no cached firmware (tinysense firmware add PATH, or flash a file once)")
    for e in entries:
        print(f"{e.sha256[:12]}  {e.chip:8} {e.size:>8}  {e.version or '-':28} "
              f"{', '.join(e.names)}")
    return 0


def cmd_romloader(args) -> int:
    from tinysense.boards import load_board
    from tinysense.flash.flasher import virtual_flash_file
    from tinysense.flash.romloader import RomLoader

    cfg = load_board(args.board)
    flash = Path(args.flash or virtual_flash_file(cfg))
    flash.parent.mkdir(parents=True, exist_ok=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with RomLoader(cfg.chip, flash, cfg.flash_bytes, tcp_port=args.tcp) as rom:
        print(f"virtual {cfg.chip} ROM loader for {cfg.name} on {rom.port}", flush=True)
        print(f"flash file: {flash} ({cfg.flash_size}); Ctrl-C to stop", flush=True)
        if args.port_file:
            Path(args.port_file).write_text(rom.port + "\n")
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
        if rom.unhandled:
            print(f"requests not understood: {len(rom.unhandled)} (first: {rom.unhandled[0]})")
    if args.port_file:
        Path(args.port_file).unlink(missing_ok=True)
    return 0


def register(sub) -> None:
    board_default = env_default("TINYSENSE_BOARD", "ESP32_GENERIC")
    p = sub.add_parser("flash", help="write MicroPython firmware to a board (esptool)")
    p.add_argument("--board", default=board_default, help="board id (env TINYSENSE_BOARD)")
    p.add_argument("-p", "--port",
                   default=env_default("TINYSENSE_PORT") or env_default("ESPPORT"),
                   help="serial port or pyserial URL (env TINYSENSE_PORT, else ESPPORT as "
                        "esptool and idf.py use; default: the only ESP32 USB port); "
                        "'virtual': a virtual ROM loader's flash file")
    p.add_argument("--firmware", required=True,
                   help="firmware.bin path, or a cached image's name or sha256 prefix")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first")
    p.add_argument("--baud", type=int, help="flashing baud rate (default: the board's)")
    p.add_argument("--no-stub", action="store_true",
                   help="talk to the ROM loader only, without esptool's flasher stub")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("image", help="whole-flash image for QEMU (esptool merge-bin, padded)")
    p.add_argument("--board", default=board_default, help="board id (env TINYSENSE_BOARD)")
    p.add_argument("--firmware", required=True, help="firmware path, cached name or sha256")
    p.add_argument("--romfs", help="ROMFS image for the board's ROMFS partition")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("firmware", help="the firmware cache: list, or add an image")
    p.add_argument("action", choices=("list", "add"), nargs="?", default="list")
    p.add_argument("path", nargs="?", help="image to add")
    p.add_argument("--name", help="name to refer to it by (default: file name)")
    p.set_defaults(func=cmd_firmware)

    p = sub.add_parser("romloader", help="run a virtual ESP32 ROM serial loader (for esptool)")
    p.add_argument("--board", default=board_default, help="board id: chip and flash size")
    p.add_argument("--flash", help="flash file (default: STATE_DIR/romloader/<board>.flash.bin)")
    p.add_argument("--tcp", type=int, help="serve on 127.0.0.1:PORT instead of a pty (0: any)")
    p.add_argument("--port-file", help="write the port name to this file once serving")
    p.set_defaults(func=cmd_romloader)
