"""End to end: every conformance and op-zoo model, converted and run by the engine on the
MicroPython unix port, equals the tflite-micro interpreter byte for byte on every output.

Inputs: all -128, all 127, all zero-point, plus random int8 vectors. `narrow32` runs the same
with the 32-bit multiply emulation that 32-bit ports (ESP32) use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_helpers import compare_model

pytestmark = pytest.mark.node
TESTS = Path(__file__).resolve().parents[1]
CONFORMANCE = sorted((TESTS / "conformance").glob("*.tflite"))
ZOO = sorted((TESTS / "ops").glob("*.tflite"))


def _check(path, n_random, narrow=False, stream=False, misaligned=False):
    mismatches, alloc, n = compare_model(path, n_random=n_random, narrow=narrow, stream=stream,
                                         misaligned=misaligned)
    assert not mismatches, f"{len(mismatches)} of {n} vectors differ, first: {mismatches[0]}"
    assert alloc == 0, f"an inference allocated {alloc} bytes on the heap"


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
def test_conformance_bit_exact(path):
    _check(path, n_random=4)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
def test_conformance_bit_exact_narrow32(path):
    _check(path, n_random=1, narrow=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
def test_conformance_bit_exact_streamed(path):
    """Constants read from the file op by op (boards whose heap cannot hold the package)."""
    _check(path, n_random=1, stream=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
def test_conformance_bit_exact_misaligned_buffer(path):
    """A package buffer that is not 4-byte aligned (ROMFS does not align file data)."""
    _check(path, n_random=1, misaligned=True)


@pytest.mark.parametrize("narrow", [False, True], ids=["wide", "narrow32"])
@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_op_zoo_bit_exact(path, narrow):
    _check(path, n_random=3, narrow=narrow)
