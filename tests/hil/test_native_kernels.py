"""The native kernels (tsnn.mpy, deployed to /lib) in the engine: validate with
kernels="native" is byte-exact against tflite-micro on conformance and op-zoo models of each
native op (conv, depthwise, FC, ADD, MUL, the pools, MEAN, SOFTMAX), reports "kernels": "native" and allocates nothing per inference; kernels="viper"
never uses them. Skips when tsnn.mpy is not built for the node's arch (make natmods)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinysense.node.deploy import NATMOD_DIR, NATMOD_REMOTE
from tinysense.paths import CONFORMANCE_DIR
from tinysense.validate.core import reported_arch, validate_model
from validate_nodes import deployed_node

pytestmark = pytest.mark.hil

OPS_DIR = Path(__file__).resolve().parents[1] / "ops"
MODELS = [CONFORMANCE_DIR / f"{m}.tflite" for m in (
    "tflm_hello_world_int8", "tflm_micro_speech_quantized", "mlperf_kws_ref_model")] + [
    OPS_DIR / f"{m}.tflite" for m in (
        "conv_2d_odd_channels", "conv_2d_stride2_same", "conv_2d_dilation2",
        "depthwise_conv_2d_mult2", "depthwise_conv_2d_1ch_mult8_stride2", "fully_connected", "add_broadcast_channel",
        "add_relu", "average_pool_2d_same_3x3_s2", "max_pool_2d_same_3x3_s2", "mean_hw",
        "mean_axis1_keepdims", "softmax", "softmax_wide_range")] + sorted(
    OPS_DIR.glob("mul*.tflite"))[:2]
VECTORS = 6


@pytest.fixture(scope="module")
def node(target_option, board_option, tmp_path_factory):
    with deployed_node(target_option, board_option, tmp_path_factory.mktemp("native")) as n:
        arch = reported_arch(n)
        if not (NATMOD_DIR / str(arch) / "tsnn.mpy").is_file():
            pytest.skip(f"tsnn.mpy not built for {arch} (make natmods)")
        assert n.sha256(NATMOD_REMOTE) is not None, "deploy did not copy tsnn.mpy"
        yield n


def _validate(node, model: Path, kernels: str):
    return validate_model(model, board=node.board, node=node, vectors=VECTORS, timing=False,
                          diagnose=False, progress=None, kernels=kernels)


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_native_kernels_are_byte_exact(node, model):
    r = _validate(node, model, "native")
    assert r.bit_exact, r.summary()
    assert r.kernels == "native"
    assert r.node_alloc_bytes_per_inference == 0


@pytest.mark.parametrize("kernels, used", [("viper", "viper"), ("auto", "native")])
def test_viper_never_uses_them_auto_does(node, kernels, used):
    r = _validate(node, MODELS[1], kernels)
    assert r.bit_exact, r.summary()
    assert r.kernels == used
    assert r.node_alloc_bytes_per_inference == 0
