"""The `tinysense` command line: parses arguments and calls the typed functions that do the work.

Every command is listed once in COMMANDS (name -> the tinysense.cli module whose `register`
adds its argument parser). Those modules only parse arguments and call the library (the
typed functions tests call too); build_parser checks that each registers exactly what the
table says, and a module that fails to import fails the command line, never silently.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tinysense import __version__
from tinysense.errors import TinysenseError

# command -> the module that registers it, in the order `tinysense -h` lists them
COMMANDS: dict[str, str] = {
    "boards": "tinysense.cli.boards",
    "bench-link": "tinysense.cli.targets",
    "target": "tinysense.cli.targets",
    "board": "tinysense.cli.targets",
    "deploy": "tinysense.cli.deploy",
    "convert": "tinysense.cli.convert",
    "validate": "tinysense.cli.validate",
    "validate-all": "tinysense.cli.validate",
    "bench": "tinysense.cli.validate",
    "bench-all": "tinysense.cli.validate",
    "gateway": "tinysense.cli.gateway",
    "uplinks": "tinysense.cli.gateway",
    "devices": "tinysense.cli.gateway",
    "bench-gateway": "tinysense.cli.gateway",
    "bench-seal": "tinysense.cli.uplink",
    "provision": "tinysense.cli.provision",
    "flash": "tinysense.cli.flash",
    "image": "tinysense.cli.flash",
    "firmware": "tinysense.cli.flash",
    "romloader": "tinysense.cli.flash",
    "monitor": "tinysense.cli.monitor",
    "qemu": "tinysense.cli.qemu",
    "demo": "tinysense.cli.demo",
}


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
    for module in dict.fromkeys(COMMANDS.values()):      # each module once, in table order
        before = set(sub.choices)
        importlib.import_module(module).register(sub)   # an import error is a bug: raise it
        added = set(sub.choices) - before
        listed = {name for name, mod in COMMANDS.items() if mod == module}
        if added != listed:
            raise RuntimeError(f"{module} registers {sorted(added)}, COMMANDS lists "
                               f"{sorted(listed)}")
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
