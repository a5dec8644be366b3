"""The conformance models, byte-exact on the node under test (--target, --board) through
validate's library: every output byte of 20 vectors (edge cases and random) against
tflite-micro, with the viper kernels and with the native ones (tsnn.mpy; skipped, saying so,
on an arch it is not built for). Models the converter says do not fit the board's budget are
skipped, saying so."""

from __future__ import annotations

import pytest

from tinysense.convert import convert_model
from tinysense.paths import CONFORMANCE_DIR
from tinysense.reference import Reference
from tinysense.validate.core import model_inputs, validate_converted
from tinysense.validate.vectors import make_vectors
from validate_nodes import KERNELS, skip_unless_kernels

pytestmark = pytest.mark.hil
MODELS = sorted(p.name for p in CONFORMANCE_DIR.glob("*.tflite"))


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", MODELS)
def test_conformance_model_is_byte_exact(node, board_config, model, kernels):
    path = CONFORMANCE_DIR / model
    converted = convert_model(path, board=board_config)
    report = converted.report
    if not report.fits:
        pytest.skip(f"{model} needs ~{report.heap_needed:,} B of heap; {board_config.name} "
                    f"budgets {report.heap_budget:,} B ({report.fit_reason})")
    skip_unless_kernels(node, kernels)
    ref = Reference(path)
    vectors = make_vectors(model_inputs(ref), 20, seed=11)
    result = validate_converted(node, ref, converted, vectors, board_config, progress=None,
                                timing=False, kernels=kernels)
    assert result.kernels == kernels   # every conformance model has a conv or an FC op
    assert result.vectors == 20
    assert result.bit_exact, result.summary()
    assert result.node_inference_alloc_bytes == 0  # no allocation during an inference
