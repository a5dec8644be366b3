"""`tinysense bench-seal`: the node-side cost of sealing one uplink frame."""

from __future__ import annotations


def cmd_bench_seal(args) -> int:
    from tinysense.bench.uplink import format_table, measure

    rows = measure(args.target, args.board, args.frames, deploy=not args.no_deploy)
    print(format_table(rows, args.board, args.target))
    return 0


def register(sub) -> None:
    from tinysense.cli import add_target_args

    p = sub.add_parser("bench-seal",
                       help="time sealing uplink frames on a node (virtual board by default)")
    add_target_args(p)
    p.set_defaults(target="virtual")
    p.add_argument("--frames", type=int, default=1000, help="frames per payload size")
    p.add_argument("--no-deploy", action="store_true", help="use the firmware already there")
    p.set_defaults(func=cmd_bench_seal)
