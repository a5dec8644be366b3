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
    "quantize": "tinysense.cli.convert",
    "validate": "tinysense.cli.validate",
    "validate-all": "tinysense.cli.validate",
    "bench": "tinysense.cli.validate",
    "bench-all": "tinysense.cli.validate",
    "gateway": "tinysense.cli.gateway",
    "uplinks": "tinysense.cli.gateway",
    "devices": "tinysense.cli.gateway",
    "bench-gateway": "tinysense.cli.gateway",
    "ota": "tinysense.cli.ota",
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
        "--target", default=env_default("TINYSENSE_TARGET") or env_default("ESPPORT", "auto"),
        help="auto | virtual | qemu | qemu-rv32 | a serial port or pyserial URL "
             "(env TINYSENSE_TARGET)")
    # -p/--port as esptool and idf.py spell it: the same as --target PORT
    parser.add_argument(
        "-p", "--port", dest="target", default=argparse.SUPPRESS, metavar="PORT",
        help="serial port or pyserial URL: the same as --target PORT (env ESPPORT when "
             "TINYSENSE_TARGET is unset)")
    if board:
        parser.add_argument(
            "--board", default=env_default("TINYSENSE_BOARD", "ESP32_GENERIC"),
            help="board id from board_configs/ or a .toml path (env TINYSENSE_BOARD)")


def check_output(path: str | os.PathLike | None, what: str, *, directory: bool = False
                 ) -> None:
    """Fail before the work, not after it, if `path` cannot be written.

    One rule for every output option (--json, --html, -o): '-' is stdout; otherwise the
    directory the file goes into must already exist and be writable (nothing creates a
    mistyped directory tree). `directory=True`: `path` is itself a directory that is made
    if missing (validate-all --html DIR), so its parent must exist.
    """
    from pathlib import Path

    if path is None or str(path) == "-":
        return
    p = Path(path)
    if directory and p.is_dir():
        parent = p
    elif p.is_dir():
        raise TinysenseError(f"{what} {p}: is a directory; give a file name")
    else:
        parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise TinysenseError(f"{what} {p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TinysenseError(f"{what} {p}: directory {parent} is not writable")


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


EXIT_FAILURE = 1      # the command ran and failed (a TinysenseError, a missing file...)
EXIT_USAGE = 2        # bad arguments (argparse's own status)
EXIT_INTERRUPTED = 130


def _one_line(exc: BaseException) -> str:
    """An OSError as `what: path` on one line (FileNotFoundError, EPIPE, EIO...)."""
    name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return f"{name}{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


def main(argv: list[str] | None = None) -> int:
    """Run one command: 0 ok, 1 failed (one `tinysense: error:` line), 2 usage, 130 Ctrl-C."""
    try:
        parser = build_parser()      # imports every command's module: Ctrl-C can land here
    except KeyboardInterrupt:
        print("tinysense: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result = args.func(args)
        sys.stdout.flush()          # a closed pipe shows here, inside the handler
    except TinysenseError as exc:
        print(f"tinysense: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("tinysense: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `tinysense uplinks | head -3`: the reader has gone, which is not an error; point
        # stdout at /dev/null so the interpreter's final flush does not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except OSError as exc:
        if exc.filename is None:
            raise          # no path to name: a bug, keep its traceback
        print(f"tinysense: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
