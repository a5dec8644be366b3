"""`tinysense monitor`: argument parsing only; the monitor lives in monitor/monitor.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tinysense.cli import add_target_args


@contextlib.contextmanager
def monitor_target(target: str, board: str, directory: str | os.PathLike | None = None
                   ) -> Iterator[tuple[str, int, str]]:
    """(port or URL, baud, how it was chosen) for `--target`, for the duration of the block.

    As deploy and validate do (tinysense.node.open_node), a node that is not running is
    started for the block and stopped after it: the virtual board, Espressif's QEMU (with
    TINYSENSE_FIRMWARE) or the RV32 QEMU board; a running one is used and left running. For
    the virtual board the stable symlink in its directory is used, so the monitor finds the
    board again after it restarts on a new pty; the QEMU boards keep their TCP port across a
    machine.reset(). `directory`: the virtual or RV32 board's directory (default: the
    board's own under $TINYSENSE_HOME).
    """
    from tinysense.boards import load_board
    from tinysense.errors import TinysenseError
    from tinysense.targets import resolve_target

    cfg = load_board(board)
    resolved = resolve_target(target, cfg)
    with contextlib.ExitStack() as stack:
        if resolved.kind == "virtual":
            from tinysense.targets.virtual import ensure_board, stop_board

            vb, started = ensure_board(cfg.path, directory=directory, parent_bound=True)
            if started:
                stack.callback(stop_board, cfg.path, directory)
            how = "started for the monitor" if started else "running"
            yield str(vb.tty), cfg.console_baud, f"virtual board {cfg.name}, {how} ({vb.pty})"
        elif resolved.kind == "qemu-rv32" and resolved.url is None:
            from tinysense.targets.qemu.rv32 import ensure_rv32, stop_rv32

            rb, started = ensure_rv32(cfg, directory=directory, parent_bound=True)
            if started:
                stack.callback(stop_rv32, cfg, directory)
            how = "started for the monitor" if started else "running; its one client is now " \
                  "the monitor"
            yield rb.url, cfg.console_baud, f"RV32 QEMU board {cfg.name}, {how} ({rb.workdir})"
        elif resolved.kind == "qemu" and resolved.url is None:
            from tinysense.targets.qemu.runner import QemuNode

            firmware = os.environ.get("TINYSENSE_FIRMWARE")
            if not firmware:
                raise TinysenseError("a qemu target needs a firmware image: set "
                                     "TINYSENSE_FIRMWARE, or give QEMU's serial URL as --target")
            qemu = stack.enter_context(QemuNode(cfg, firmware))
            yield qemu.url, cfg.console_baud, "Espressif's QEMU, started for the monitor"
        elif resolved.url is None:
            raise TinysenseError(f"--target {target}: {resolved.kind} has no serial port; give "
                                 "its port or URL (e.g. socket://127.0.0.1:5555)")
        else:
            yield resolved.url, cfg.console_baud, resolved.reason


def cmd_monitor(args) -> int:
    from tinysense.monitor.monitor import run_monitor

    with monitor_target(args.target, args.board) as (url, baud, why):
        print(f"monitor: {url} ({why})", flush=True)
        run_monitor(url, args.baud or baud, log=args.log, db=args.db, timeout=args.timeout)
    return 0


def register(sub) -> None:
    p = sub.add_parser("monitor", help="serial monitor: timestamps, uplink frame decoding, log, "
                                       "reconnects; Ctrl-] quits (so does the end of a piped stdin), "
                                       "Ctrl-T Ctrl-R resets the node")
    add_target_args(p)
    p.add_argument("--log", help="append the timestamped lines to this file")
    p.add_argument("--db", help="gateway database with the device keys (default: "
                                "STATE_DIR/gateway.db if it exists)")
    p.add_argument("--baud", type=int, help="console baud rate (default: the board's)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop after this many seconds (default: until Ctrl-], or the end of "
                        "stdin when it is not a terminal)")
    p.set_defaults(func=cmd_monitor)
