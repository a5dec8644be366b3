"""A deployed node for the validate/bench tests: a private virtual board, or --target's node."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tinysense.boards import load_board
from tinysense.node import open_node
from tinysense.targets import Target
from tinysense.targets.virtual import start_board, stop_board


@contextlib.contextmanager
def deployed_node(target: str, board: str, tmp: Path):
    """Open a node with the current firmware deployed (compiled into `tmp`/build).

    For the virtual target each call starts its own board in `tmp`, so parallel test runs
    and a developer's running board never share a port.
    """
    cfg = load_board(board)
    with contextlib.ExitStack() as stack:
        if target == "virtual":
            vb = start_board(cfg.name, directory=tmp / "vb", parent_bound=True)
            stack.callback(stop_board, cfg.name, tmp / "vb")
            node = stack.enter_context(open_node(Target("virtual", vb.url, "test"), cfg))
        else:
            node = stack.enter_context(open_node(target, cfg))
        node.deploy(build_dir=tmp / "build", progress=None)
        yield node
