"""`tinysense deploy`: compile firmware/ for the node and copy what changed."""

from __future__ import annotations

from tinysense.cli import add_target_args
from tinysense.node.deploy import deploy
from tinysense.node import open_node
from tinysense.progress import Progress


def cmd_deploy(args) -> int:
    with open_node(args.target, args.board) as node:
        print(f"target: {node.target.kind} {node.target.url} ({node.target.reason})")
        if args.romfs:
            from tinysense.flash.romfs import deploy_romfs

            deploy_romfs(node, args.model or ())
        else:
            with Progress() as progress:    # one updating line on a terminal
                deploy(node, force=args.force, prune=not args.keep_stale, progress=progress)
    return 0


def register(sub) -> None:
    p = sub.add_parser("deploy", help="compile firmware/ with mpy-cross and copy what changed")
    add_target_args(p)
    p.add_argument("--force", action="store_true", help="copy every file, changed or not")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep node files under tsnode/ that firmware/ no longer has")
    p.add_argument("--romfs", action="store_true",
                   help="put the compiled package and --model files in ROMFS (/rom); falls back "
                        "to the filesystem, and says so, where the board has no ROMFS partition")
    p.add_argument("--model", action="append", metavar="TSM",
                   help="model package to deploy with --romfs (repeatable)")
    p.set_defaults(func=cmd_deploy)
