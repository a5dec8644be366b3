"""`tinysense qemu start|command`: run a board's firmware in Espressif's QEMU."""

from __future__ import annotations

import shlex
import signal

from tinysense.boards import load_board
from tinysense.cli import env_default
from tinysense.errors import TinysenseError
from tinysense.qemu.machines import find_qemu
from tinysense.qemu.runner import QemuNode


def _node(args) -> QemuNode:
    if not args.firmware:
        raise TinysenseError("no firmware given; pass --firmware PATH.bin (a MicroPython "
                             "image for the board) or set TINYSENSE_FIRMWARE")
    return QemuNode(load_board(args.board), args.firmware, tcp_port=args.tcp,
                    fresh=not args.keep_flash)


def cmd_command(args) -> int:
    node = _node(args)
    node.executable = find_qemu(node.board.chip)
    print(shlex.join(node.command()))
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_start(args) -> int:
    node = _node(args)
    print(f"building {node.flash_image} and starting QEMU for {node.board.name}...",
          flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops QEMU as cleanly as Ctrl-C
    with node.start(args.timeout):
        print(f"QEMU {node.board.name} ready: REPL on {node.url} "
              f"(mpremote connect {node.url}); Ctrl-C stops it", flush=True)
        try:
            node.process.wait()
        except KeyboardInterrupt:
            print("stopping QEMU", flush=True)
            return 0
    raise TinysenseError(f"QEMU exited on its own; see {node.log_path}")


def register(sub) -> None:
    qemu = sub.add_parser("qemu", help="run a board's firmware in Espressif's QEMU")
    qsub = qemu.add_subparsers(dest="qemu_command", metavar="ACTION", required=True)
    for name, func, text in (
            ("start", cmd_start, "build the flash image, start QEMU, wait for the REPL"),
            ("command", cmd_command, "print the QEMU command line without running it")):
        p = qsub.add_parser(name, help=text)
        p.add_argument("--board", default=env_default("TINYSENSE_BOARD", "ESP32_GENERIC"),
                       help="board id or .toml path (env TINYSENSE_BOARD)")
        p.add_argument("--firmware", default=env_default("TINYSENSE_FIRMWARE"),
                       help="MicroPython .bin for the board (env TINYSENSE_FIRMWARE)")
        p.add_argument("--tcp", type=int, default=None, metavar="PORT",
                       help="local TCP port for the UART (default: a free one)")
        p.add_argument("--keep-flash", action="store_true",
                       help="reuse the existing flash image (keeps the node's files)")
        p.add_argument("--timeout", type=float, default=90.0,
                       help="seconds to wait for the REPL prompt (default 90)")
        p.set_defaults(func=func)
