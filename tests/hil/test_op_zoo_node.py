"""Every op-zoo model (tests/ops/) converted and run by the node engine, byte for byte equal to
tflite-micro on edge, adversarial and random inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinysense.boards import load_board
from tinysense.convert import convert_model
from tinysense.reference import Reference
from tinysense.validate.core import model_inputs, validate_converted
from tinysense.validate.vectors import adversarial_vectors, make_vectors

from validate_nodes import KERNELS, deployed_node, skip_unless_kernels

pytestmark = pytest.mark.hil

OPS_DIR = Path(__file__).resolve().parents[1] / "ops"
MANIFEST = json.loads((OPS_DIR / "models.json").read_text())
MODELS = sorted(k for k in MANIFEST if not k.startswith("_"))
RANDOM_VECTORS = 12   # plus 3 edge and 3 adversarial vectors per model


@pytest.fixture(scope="module")
def zoo_node(target_option, board_option, tmp_path_factory):
    with deployed_node(target_option, board_option, tmp_path_factory.mktemp("zoo")) as node:
        yield node


def _node_is_64bit(config) -> bool:
    """Whether the session's node has 64-bit viper ints: only the 64-bit fallback unix port
    (a board, QEMU and the 32-bit build of `make nodes` are 32-bit)."""
    from conftest import virtual_node_arch
    from tinysense.pytest_plugin import _session

    state = _session(config)
    return state.target.kind == "virtual" and virtual_node_arch(state.board) == "x64"


def pytest_generate_tests(metafunc):
    """The engine picks a 64-bit product where viper ints are 64-bit (the unix port on x64)
    and an exact 32-bit emulation otherwise (ESP32, the 32-bit build): run what the node has,
    and on a 64-bit node the forced 32-bit path too."""
    if "multiply_path" in metafunc.fixturenames:
        paths = ["native", "32-bit"] if _node_is_64bit(metafunc.config) else ["native"]
        # both kernel sets on the node's own multiply path; the forced 32-bit one is viper's
        # (native kernels always take the exact product)
        cases = [pytest.param(p, k, id=f"{p}-{k}") for k in KERNELS for p in paths
                 if k == "viper" or p == "native"]
        metafunc.parametrize(("multiply_path", "kernels"), cases, indirect=["multiply_path"])


@pytest.fixture
def multiply_path(request, zoo_node):
    narrow = request.param == "32-bit"
    zoo_node.exec(f"import tsnode.engine.model as _em\n_em.FORCE_NARROW = {narrow}\ndel _em")
    yield request.param
    zoo_node.exec("import tsnode.engine.model as _em\n_em.FORCE_NARROW = False\ndel _em")


@pytest.mark.parametrize("name", MODELS)
def test_op_model_bit_exact_on_node(zoo_node, multiply_path, kernels, board_option, name):
    skip_unless_kernels(zoo_node, kernels)
    path = OPS_DIR / MANIFEST[name]["file"]
    cfg = load_board(board_option)
    ref = Reference(path)
    specs = model_inputs(ref)
    vecs = make_vectors(specs, 3 + RANDOM_VECTORS, seed=11) + adversarial_vectors(specs)
    converted = convert_model(path, board=cfg)
    result = validate_converted(zoo_node, ref, converted, vecs, cfg, progress=None,
                                timing=False, kernels=kernels)
    assert result.vectors == len(vecs) == 3 + RANDOM_VECTORS + 3
    assert result.bit_exact, result.summary() + "\n" + json.dumps(result.failures[:3])
    assert result.node_inference_alloc_bytes == 0
    # the multiply path really was the one asked for (the last parameter word of each op)
    wide = zoo_node.eval("[p[-1] for _f, p, _c, _s in "
                         "__import__('tsnode.agent').agent._state['model'].plan]")
    native = zoo_node.eval("__import__('tsnode.engine.model').engine.model._wide()")
    assert set(wide) <= {native if multiply_path == "native" else 0}, (multiply_path, wide)
