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


# Both kernel sets for the byte-exact HIL tests: viper (every node) and the native ones.
KERNELS = ("viper", "native")


def skip_unless_kernels(node, kernels: str) -> None:
    """Skip a `kernels="native"` case on a node whose arch has no tsnn.mpy built (e.g. an
    ESP32 without ESP-IDF's toolchain for `make natmods NATMOD_ARCHS=xtensawin`); fail when
    it is built but deploy did not put it on the node."""
    from tinysense.node.deploy import NATMOD_DIR, NATMOD_REMOTE
    from tinysense.validate.core import reported_arch
    import pytest

    if kernels != "native":
        return
    arch = reported_arch(node)
    if not (NATMOD_DIR / str(arch) / "tsnn.mpy").is_file():
        pytest.skip(f"tsnn.mpy not built for {arch} (make natmods)")
    assert node.sha256(NATMOD_REMOTE) is not None, "deploy did not copy tsnn.mpy"
