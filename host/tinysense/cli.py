"""The `tinysense` command line: parses arguments and calls the typed functions that do the work.

Each area registers its own subcommands from a small `cli` module (argparse only, no logic),
listed once in COMMAND_MODULES below. A module that is not there yet is simply absent.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tinysense import __version__
from tinysense.errors import TinysenseError

# module path -> has `register(subparsers)`. Add a line here when an area gains commands.
COMMAND_MODULES = [
    "tinysense.boards_cli",
    "tinysense.targets.cli",
    "tinysense.deploy_cli",
    "tinysense.convert.cli",
    "tinysense.validate.cli",
    "tinysense.gateway.cli",
    "tinysense.uplink.cli",
    "tinysense.provision.cli",
    "tinysense.flash.cli",
    "tinysense.monitor.cli",
    "tinysense.qemu.cli",
    "tinysense.demo_cli",
]


def env_default(name: str, default: str | None = None) -> str | None:
    """Option default from the environment (`TINYSENSE_PORT`, `TINYSENSE_BOARD`, ...)."""
    return os.environ.get(name, default)


def add_target_args(parser: argparse.ArgumentParser, board: bool = True) -> None:
    """The --target/--board pair every command that talks to a node takes."""
    parser.add_argument(
        "--target", default=env_default("TINYSENSE_TARGET", "auto"),
        help="auto | virtual | qemu | qemu-rv32 | a serial port or pyserial URL "
             "(env TINYSENSE_TARGET)")
    if board:
        parser.add_argument(
            "--board", default=env_default("TINYSENSE_BOARD", "ESP32_GENERIC"),
            help="board id from board_configs/ or a .toml path (env TINYSENSE_BOARD)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinysense", description="Tiny int8 ML on ESP32 MicroPython sensor nodes.")
    parser.add_argument("--version", action="version", version=f"tinysense {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area has no commands yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except TinysenseError as exc:
        print(f"tinysense: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinysense: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
