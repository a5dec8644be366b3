"""The engine allocates nothing per inference on a 32-bit node whose GC heap lies above
0x40000000 (ESP32-C6 SRAM is at 0x40800000, ESP32-P4's at 0x4FF00000, MicroPython's QEMU RV32
RAM at 0x80000000): there an address is not a small int, so each one that reaches or leaves a
viper function as an `int` is boxed, a heap allocation every time.

Runs on the 32-bit x86 build of `make nodes` with a 4 MB heap and glibc's malloc left as it is,
which mmaps such a heap at 0xf7xxxxxx (the test checks the address), and, for contrast, with
the virtual board's GLIBC_TUNABLES, which put the same heap below 0x40000000 as on an ESP32.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import x86_micropython
from engine_helpers import make_vectors, run_engine_full
from tinysense.convert import convert_model

pytestmark = pytest.mark.node
CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
# The models the field notes measured allocating on a high heap (512, 1,024 and 1,280 B per
# inference before the engine passed bytearrays instead of addresses to its viper helpers).
MODELS = ["tflm_micro_speech_quantized", "mlperf_kws_ref_model", "tflm_person_detect"]
SMALL_INT_LIMIT = 0x40000000  # a 32-bit port's small ints hold at most 0x3FFFFFFF


def _run(name: str, low_heap: bool):
    result = convert_model(CONFORMANCE / f"{name}.tflite")
    vecs = [b"".join(v.tobytes() for v in vec)
            for vec in make_vectors(result.report.inputs, 2, seed=3)]
    return run_engine_full(result.package, vecs, heap="4M", exe=x86_micropython(),
                           low_heap=low_heap)


@pytest.mark.parametrize("name", MODELS)
def test_no_allocation_per_inference_on_a_heap_above_0x40000000(name):
    run = _run(name, low_heap=False)
    assert run.heap_address >= SMALL_INT_LIMIT, \
        f"the heap is at {run.heap_address:#x}: this test needs it above 0x40000000"
    assert not run.wide  # a 32-bit node: the 32-bit multiply path
    assert run.alloc == 0, (f"{name}: one inference allocated {run.alloc} B on a 32-bit "
                            f"heap at {run.heap_address:#x}")


def test_virtual_board_heap_is_below_0x40000000():
    """What the virtual board and the node tests run with (GLIBC_TUNABLES): an ESP32's heap."""
    run = _run(MODELS[0], low_heap=True)
    assert run.heap_address < SMALL_INT_LIMIT, f"{run.heap_address:#x}"
    assert run.alloc == 0
