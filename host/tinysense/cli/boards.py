"""`tinysense boards`: list the board configs and show one, validated."""

from __future__ import annotations

import dataclasses

from tinysense.boards import available_boards, load_board


def cmd_boards(args) -> int:
    if args.name:
        cfg = load_board(args.name)
        for field in dataclasses.fields(cfg):
            value = getattr(cfg, field.name)
            if field.name == "firmware_offset":
                value = hex(value)
            print(f"{field.name:16} {value}")
        return 0
    for name in available_boards():
        cfg = load_board(name)
        print(f"{name:18} {cfg.chip:8} {cfg.mpy_arch:9} heap {cfg.heap_budget:>8}  "
              f"{cfg.description}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("boards", help="list board configs, or show one validated")
    p.add_argument("name", nargs="?", help="board id or .toml path")
    p.set_defaults(func=cmd_boards)
