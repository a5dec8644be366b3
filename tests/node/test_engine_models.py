"""End to end: every conformance and op-zoo model, converted and run by the engine on the
MicroPython unix port, equals the tflite-micro interpreter byte for byte on every output.

Inputs: all -128, all 127, all zero-point, plus random int8 vectors. Each runs on both unix
ports (conftest.UNIX_KINDS): x86, the 32-bit build of `make nodes`, whose viper ints are 32-bit
like an ESP32's, so the engine takes its 32-bit multiply path there; and x64, the 64-bit PyPI
build, where it takes the 64-bit product, and `narrow32` forces the 32-bit path as well.
And each with both kernel sets (conftest.KERNELS): viper, and the native kernels of
natmod/tsnn (tsnn.mpy for that port's arch), which compute the same bytes; the forced 32-bit
multiply path is viper's (native kernels always take the exact 64-bit product).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import KERNELS, MULTIPLY_PATHS, UNIX_KINDS
from engine_helpers import compare_model

pytestmark = pytest.mark.node
TESTS = Path(__file__).resolve().parents[1]
CONFORMANCE = sorted((TESTS / "conformance").glob("*.tflite"))
ZOO = sorted((TESTS / "ops").glob("*.tflite"))


def _check(path, n_random, kind, narrow=False, stream=False, misaligned=False,
           kernels="viper"):
    mismatches, alloc, n = compare_model(path, n_random=n_random, narrow=narrow, stream=stream,
                                         misaligned=misaligned, kind=kind, kernels=kernels)
    assert not mismatches, f"{len(mismatches)} of {n} vectors differ, first: {mismatches[0]}"
    assert alloc == 0, f"an inference allocated {alloc} bytes on the heap"


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
@pytest.mark.parametrize("kind", UNIX_KINDS)
@pytest.mark.parametrize("kernels", KERNELS)
def test_conformance_bit_exact(path, kind, kernels):
    _check(path, n_random=4, kind=kind, kernels=kernels)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
def test_conformance_bit_exact_narrow32(path):
    """The 32-bit multiply path on the 64-bit build (x86 has no other: see above)."""
    _check(path, n_random=1, kind="x64", narrow=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
@pytest.mark.parametrize("kind", UNIX_KINDS)
@pytest.mark.parametrize("kernels", KERNELS)
def test_conformance_bit_exact_streamed(path, kind, kernels):
    """Constants read from the file op by op (boards whose heap cannot hold the package)."""
    _check(path, n_random=1, kind=kind, stream=True, kernels=kernels)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFORMANCE, ids=lambda p: p.stem)
@pytest.mark.parametrize("kind", UNIX_KINDS)
@pytest.mark.parametrize("kernels", KERNELS)
def test_conformance_bit_exact_misaligned_buffer(path, kind, kernels):
    """A package buffer that is not 4-byte aligned (ROMFS does not align file data)."""
    _check(path, n_random=1, kind=kind, misaligned=True, kernels=kernels)


@pytest.mark.parametrize(("kind", "narrow"), MULTIPLY_PATHS)
@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_op_zoo_bit_exact(path, kind, narrow):
    _check(path, n_random=3, kind=kind, narrow=narrow)


@pytest.mark.parametrize("kind", UNIX_KINDS)
@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_op_zoo_bit_exact_native(path, kind):
    _check(path, n_random=3, kind=kind, kernels="native")
