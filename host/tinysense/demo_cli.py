"""`tinysense demo`: boot a node (the virtual board by default), deploy, run the self-check."""

from __future__ import annotations

from tinysense.cli import env_default
from tinysense.deploy import deploy
from tinysense.node import open_node
from tinysense.selfcheck import SelfCheck, run_selfcheck


def demo(target: str = "virtual", board: str | None = None) -> SelfCheck:
    """Deploy the firmware to the node and print its self-check; returns the parsed check."""
    with open_node(target, board) as node:
        print(f"node: {node.target.kind} on {node.target.url} ({node.target.reason}), "
              f"board {node.board.name}")
        deploy(node)
        check = run_selfcheck(node)
        print(check.text, end="")
        return check


def cmd_demo(args) -> int:
    demo(args.target, args.board)
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="boot a node, deploy the firmware, run the self-check")
    p.add_argument("--target", default=env_default("TINYSENSE_TARGET", "virtual"),
                   help="virtual (default) | auto | qemu | a port or pyserial URL")
    p.add_argument("--board", default=env_default("TINYSENSE_BOARD", "ESP32_GENERIC"),
                   help="board id from board_configs/ (env TINYSENSE_BOARD)")
    p.set_defaults(func=cmd_demo)
