"""`tinysense monitor`: argument parsing only; the monitor lives in monitor/monitor.py."""

from __future__ import annotations

from tinysense.cli import add_target_args


def monitor_url(target: str, board: str) -> tuple[str, int, str]:
    """(port or URL, baud, how it was chosen) for `--target`; a virtual board must be running.

    For the virtual board the stable symlink in its directory is used, so the monitor finds
    the board again after it restarts on a new pty.
    """
    from tinysense.boards import load_board
    from tinysense.errors import TinysenseError
    from tinysense.targets import resolve_target

    cfg = load_board(board)
    resolved = resolve_target(target, cfg)
    if resolved.kind == "virtual":
        from tinysense.targets.virtual import running_board

        vb = running_board(cfg.name)
        if vb is None:
            raise TinysenseError(f"no virtual board {cfg.name} is running; start it with "
                                 f"`tinysense board start --board {cfg.name}`")
        return str(vb.tty), cfg.console_baud, f"virtual board {cfg.name} ({vb.pty})"
    if resolved.url is None:
        raise TinysenseError(f"--target {target}: {resolved.kind} is not running; start it "
                             "first and give its serial URL (e.g. socket://127.0.0.1:5555)")
    return resolved.url, cfg.console_baud, resolved.reason


def cmd_monitor(args) -> int:
    from tinysense.monitor.monitor import run_monitor

    url, baud, why = monitor_url(args.target, args.board)
    print(f"monitor: {url} ({why})", flush=True)
    run_monitor(url, args.baud or baud, log=args.log, db=args.db)
    return 0


def register(sub) -> None:
    p = sub.add_parser("monitor", help="serial monitor: timestamps, uplink frame decoding, log, "
                                       "reconnects; Ctrl-] quits")
    add_target_args(p)
    p.add_argument("--log", help="append the timestamped lines to this file")
    p.add_argument("--db", help="gateway database with the device keys (default: "
                                "STATE_DIR/gateway.db if it exists)")
    p.add_argument("--baud", type=int, help="console baud rate (default: the board's)")
    p.set_defaults(func=cmd_monitor)
