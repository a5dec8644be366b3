"""`tinysense qemu start|stop|status|command`: Espressif's QEMU or the RV32 QEMU board.

`start --kind auto` runs Espressif's QEMU when it is installed and a firmware is given (in the
foreground, Ctrl-C stops it), else the RV32 QEMU board (in the background, like `tinysense
board start`; `qemu stop` stops it)."""

from __future__ import annotations

import shlex
import signal

from tinysense.boards import load_board
from tinysense.cli import env_default
from tinysense.errors import TinysenseError
from tinysense.targets.qemu.machines import find_qemu
from tinysense.targets.qemu.runner import QemuNode


def _node(args) -> QemuNode:
    if not args.firmware:
        raise TinysenseError("no firmware given; pass --firmware PATH.bin (a MicroPython "
                             "image for the board) or set TINYSENSE_FIRMWARE")
    return QemuNode(load_board(_esp_board(args)), args.firmware, tcp_port=args.tcp,
                    fresh=not args.keep_flash)


def cmd_command(args) -> int:
    node = _node(args)
    node.executable = find_qemu(node.board.chip)
    print(shlex.join(node.command()))
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _use_rv32(args) -> bool:
    if args.kind != "auto":
        return args.kind == "rv32"
    from tinysense.targets import detect_qemu

    board = load_board(_esp_board(args))
    if args.firmware and detect_qemu(board).executable:
        return False
    # without Espressif's QEMU only a C3-class board can run on the RV32 board; any other
    # board goes to Espressif's path, whose error says what to install
    return args.board is None or board.mpy_arch == "rv32imc"


def _esp_board(args) -> str:
    return args.board or "ESP32_GENERIC"


def _rv32_board(args) -> str:
    return args.board or "ESP32_GENERIC_C3"


def cmd_start(args) -> int:
    if _use_rv32(args):
        from tinysense.targets.qemu.rv32 import ensure_rv32

        rb, started = ensure_rv32(_rv32_board(args), tcp=args.tcp)
        state = "running" if started else "already running"
        print(f"RV32 QEMU board {rb.board} {state} (supervisor pid {rb.pid})")
        print(f"  tcp:   {rb.url}  (mpremote connect {rb.url})")
        print(f"  flash: {rb.flash_image}  (kept across resets and restarts)")
        print(f"stop it with `tinysense qemu stop --board {rb.board}`")
        return 0
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


def cmd_stop(args) -> int:
    from tinysense.targets.qemu.rv32 import stop_rv32

    rb = stop_rv32(_rv32_board(args))
    if rb is None:
        print(f"RV32 QEMU board {_rv32_board(args)} is not running (Espressif's QEMU runs in the"
              " foreground of `tinysense qemu start`: Ctrl-C stops it)")
    else:
        print(f"RV32 QEMU board {rb.board} stopped (pid {rb.pid})")
    return 0


def cmd_status(args) -> int:
    from tinysense.targets.qemu.rv32 import detect_rv32, running_rv32_boards

    boards = running_rv32_boards()
    for rb in boards:
        print(f"{rb.board:18} pid {rb.pid:<7} {rb.url}  restarts {rb.restarts}")
    if not boards:
        print(f"no RV32 QEMU board running ({detect_rv32().reason})")
    return 0


def register(sub) -> None:
    qemu = sub.add_parser("qemu", help="run a board's firmware in Espressif's QEMU, or the "
                                       "RV32 QEMU board")
    qsub = qemu.add_subparsers(dest="qemu_command", metavar="ACTION", required=True)
    for name, func, text in (
            ("start", cmd_start, "start QEMU and wait for the REPL (Espressif's: builds the "
                                 "flash image; RV32: in the background)"),
            ("stop", cmd_stop, "stop the RV32 QEMU board"),
            ("status", cmd_status, "list running RV32 QEMU boards"),
            ("command", cmd_command, "print Espressif's QEMU command line without running it")):
        p = qsub.add_parser(name, help=text)
        if name == "status":
            p.set_defaults(func=func)
            continue
        p.add_argument("--board", default=env_default("TINYSENSE_BOARD"),
                       help="board id or .toml path (env TINYSENSE_BOARD; default "
                            "ESP32_GENERIC, and ESP32_GENERIC_C3 for the RV32 board)")
        if name == "stop":
            p.set_defaults(func=func)
            continue
        if name == "start":
            p.add_argument("--kind", choices=("auto", "espressif", "rv32"), default="auto",
                           help="auto (default): Espressif's QEMU if installed and --firmware "
                                "is given, else the RV32 board")
        p.add_argument("--firmware", default=env_default("TINYSENSE_FIRMWARE"),
                       help="MicroPython .bin for the board (env TINYSENSE_FIRMWARE)")
        p.add_argument("--tcp", type=int, default=None, metavar="PORT",
                       help="local TCP port for the UART (default: a free one)")
        p.add_argument("--keep-flash", action="store_true",
                       help="reuse the existing flash image (keeps the node's files)")
        p.add_argument("--timeout", type=float, default=90.0,
                       help="seconds to wait for the REPL prompt (default 90)")
        p.set_defaults(func=func)
