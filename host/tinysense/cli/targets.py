"""`tinysense board start|stop|status` (the virtual board) and `tinysense target` (which node)."""

from __future__ import annotations

from tinysense.cli import add_target_args, env_default
from tinysense.targets import resolve_target
from tinysense.targets.virtual import (running_boards, start_board, stop_board, unix_port,
                                       unix_port_arch)


def _unix_port_lines(board) -> list[str]:
    """What the virtual board runs: the executable, its mpy arch, and the fallback note."""
    from tinysense.boards import load_board

    port = unix_port(load_board(board))
    lines = [f"  node:   {port.exe} (mpy arch {unix_port_arch(port.exe)}, {port.source})"]
    return lines + ([f"  {port.note}"] if port.note else [])


def cmd_start(args) -> int:
    vb = start_board(args.board, tcp=args.tcp, directory=args.dir)
    print(f"virtual board {vb.board} running (supervisor pid {vb.pid})")
    print(f"  serial: {vb.pty}  (stable link: {vb.tty})")
    if vb.tcp_url:
        print(f"  tcp:    {vb.tcp_url}")
    print(f"  flash:  {vb.flash_dir}")
    for line in _unix_port_lines(args.board):
        print(line)
    print(f"try: mpremote connect {vb.tcp_url or vb.url} exec \"import sys; "
          "print(sys.implementation)\"")
    return 0


def cmd_stop(args) -> int:
    vb = stop_board(args.board, directory=args.dir)
    if vb is None:
        print(f"virtual board {args.board} is not running")
    else:
        print(f"virtual board {vb.board} stopped (pid {vb.pid})")
    return 0


def cmd_status(args) -> int:
    boards = running_boards()
    for vb in boards:
        print(f"{vb.board:18} pid {vb.pid:<7} {vb.pty:12} {vb.tcp_url or '-'}")
    if not boards:
        print("no virtual board running")
    return 0


def cmd_target(args) -> int:
    target = resolve_target(args.target, args.board)
    print(f"{target.kind} {target.url or ''}".rstrip())
    print(f"  why: {target.reason}")
    if target.kind == "qemu-rv32":  # cheap to boot: ask the node itself
        from tinysense.node.deploy import MPY_ARCHS
        from tinysense.node import open_node

        with open_node(target, args.board, soft_reset=False) as node:
            mpy = int(node.exec("import sys\nprint(sys.implementation._mpy)").strip())
            machine = node.exec("import sys\nprint(sys.implementation._machine)").strip()
        print(f"  node: {machine}; mpy arch {MPY_ARCHS[(mpy >> 10) & 0x3F]} "
              f"(.mpy v{mpy & 0xFF})")
    if target.kind == "virtual":
        for line in _unix_port_lines(args.board):
            print(line)
    return 0


def cmd_bench_link(args) -> int:
    from tinysense.bench.link import bench_link, format_link
    from tinysense.node import open_node

    with open_node(args.target, args.board) as node:
        print(f"node: {node.target.kind} {node.target.url} ({node.target.reason})")
        print(format_link(bench_link(node, size=args.size, repeat=args.repeat)))
    return 0


def register(sub) -> None:
    b = sub.add_parser("bench-link", help="measure exec latency and transfer speed to a node")
    add_target_args(b)
    b.add_argument("--size", type=int, default=100_000, help="bytes per transfer")
    b.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    b.set_defaults(func=cmd_bench_link)
    t = sub.add_parser("target", help="show which node --target resolves to, and why")
    add_target_args(t)
    t.set_defaults(func=cmd_target)
    p = sub.add_parser("board", help="the virtual board: start, stop, status")
    bsub = p.add_subparsers(dest="board_command", metavar="ACTION", required=True)
    board_default = env_default("TINYSENSE_BOARD", "ESP32_GENERIC")
    start = bsub.add_parser("start", help="start a virtual board in the background")
    start.add_argument("--board", default=board_default,
                       help="board config whose heap the VM gets (env TINYSENSE_BOARD)")
    start.add_argument("--tcp", type=int, metavar="PORT",
                       help="also serve the REPL on 127.0.0.1:PORT (0: pick a free port)")
    start.add_argument("--dir", help="board directory (default $TINYSENSE_HOME/boards/BOARD)")
    start.set_defaults(func=cmd_start)
    stop = bsub.add_parser("stop", help="stop a virtual board")
    stop.add_argument("--board", default=board_default)
    stop.add_argument("--dir")
    stop.set_defaults(func=cmd_stop)
    status = bsub.add_parser("status", help="list running virtual boards")
    status.set_defaults(func=cmd_status)
