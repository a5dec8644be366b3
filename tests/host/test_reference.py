"""The desktop reference (tflite-micro's interpreter): run, arena size, all tensors, timing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinysense import reference
from tinysense.errors import TinysenseError
from tinysense.paths import CONFORMANCE_DIR

HELLO = CONFORMANCE_DIR / "tflm_hello_world_int8.tflite"
KWS = CONFORMANCE_DIR / "mlperf_kws_ref_model.tflite"
AD01 = CONFORMANCE_DIR / "mlperf_ad01_int8.tflite"


def _quantize(x: float, det) -> int:
    q = det["quantization_parameters"]
    return int(np.clip(round(x / q["scales"][0]) + q["zero_points"][0], -128, 127))


def test_hello_world_outputs_approximate_sine():
    ref = reference.Reference(HELLO)
    din, dout = ref.input_details[0], ref.output_details[0]
    sout, zout = dout["quantization_parameters"]["scales"][0], \
        dout["quantization_parameters"]["zero_points"][0]
    for x in np.linspace(0.0, 2 * math.pi, 25):
        (y,) = ref.run(np.array([[_quantize(x, din)]], np.int8))
        assert y.dtype == np.int8 and y.shape == (1, 1)
        assert abs((int(y[0, 0]) - zout) * sout - math.sin(x)) < 0.15, x


def test_run_is_deterministic_and_accepts_paths_or_bytes():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    a = reference.run(KWS, [x])
    b = reference.run(KWS.read_bytes(), x)
    assert len(a) == 1 and a[0].shape == (1, 12)
    assert a[0].tobytes() == b[0].tobytes()
    # repeated invokes on one interpreter agree (inputs are set again every time)
    ref = reference.Reference(KWS)
    assert all(ref.run(x)[0].tobytes() == a[0].tobytes() for _ in range(3))


def test_arena_bytes_matches_tflite_micro_and_keeps_stderr_clean(capfd):
    # SOURCES.md records 3,984 and 24,272 bytes (the total shifts by a few bytes of alignment
    # with the arena buffer's address).
    assert reference.arena_bytes(AD01) == pytest.approx(3984, abs=16)
    assert reference.arena_bytes(KWS) == pytest.approx(24272, abs=16)
    assert "RecordingMicroAllocator" not in capfd.readouterr().err


def test_all_tensors_has_inputs_intermediates_and_outputs():
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    graph = reference.read_graph(KWS)
    tensors = reference.all_tensors(KWS, x)
    (out,) = reference.run(KWS, x)
    assert tensors[graph.inputs[0]].tobytes() == x.tobytes()
    assert tensors[graph.outputs[0]].tobytes() == out.tobytes()
    for op in graph.ops:          # every op's output is there, with its declared shape
        for t in op.outputs:
            assert tensors[t].shape == graph.tensors[t].shape
    assert not any(graph.tensors[i].constant for i in tensors)


def test_graph_lists_ops_in_order():
    graph = reference.read_graph(HELLO)
    assert [op.name for op in graph.ops] == ["FULLY_CONNECTED"] * 3
    assert graph.ops[0].inputs[0] == graph.inputs[0]
    assert graph.ops[-1].outputs[0] == graph.outputs[0]
    assert graph.tensors[graph.inputs[0]].dtype == "INT8"


def test_count_macs_matches_published_figures():
    # hello world: 1x16 + 16x16 + 16x1 weights; SOURCES.md figures for the others
    assert reference.count_macs(reference.read_graph(HELLO)) == 16 + 256 + 16
    assert reference.count_macs(reference.read_graph(KWS)) == 2656768  # "~2.7 M"
    assert reference.count_macs(reference.read_graph(AD01)) == 264192  # "~0.26 M"


def test_time_invoke_is_a_positive_median():
    ms = reference.time_invoke(KWS, np.zeros((1, 49, 10, 1), np.int8), repeats=5)
    assert 0.0 < ms < 1000.0


def test_bad_models_and_inputs_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(TinysenseError, match="not a TFLite flatbuffer"):
        reference.run(junk, np.zeros((1, 1), np.int8))
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(HELLO.read_bytes()[:200])
    with pytest.raises(TinysenseError, match="corrupt TFLite flatbuffer"):
        reference.read_graph(truncated)
    with pytest.raises(TinysenseError, match="cannot read model"):
        reference.run(tmp_path / "missing.tflite", np.zeros((1, 1), np.int8))
    with pytest.raises(TinysenseError, match="expects shape"):
        reference.run(HELLO, np.zeros((1, 2), np.int8))
    with pytest.raises(TinysenseError, match="dtype"):
        reference.run(HELLO, np.full((1, 1), 300, np.int32))
