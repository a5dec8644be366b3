"""The validation report renders in a real browser (headless Chromium) with all its plots."""

from __future__ import annotations

import random

from browser import PlotCounter, chromium, hex_rgb, png_colors

from tinysense.report import svg
from tinysense.report.html import render_summary, write_summary, write_validate


def mismatch_result() -> dict:
    """A validate result with one differing output value, per-op errors and timings."""
    rng = random.Random(7)
    ref = [rng.randint(-128, 127) for _ in range(12 * 22)]
    node = list(ref)
    node[40] = ref[40] + 2 if ref[40] < 126 else ref[40] - 2
    return {
        "model": "tests/conformance/mlperf_kws_ref_model.tflite", "target": "virtual",
        "board": "ESP32_GENERIC", "vectors": 22, "mismatches": 1, "max_abs_diff": 2,
        "bit_exact": False, "node_ms": 41.5, "reference_ms": 0.9,
        "node_heap_peak_bytes": 52_000, "reference_arena_bytes": 23_000,
        "node_times_ms": [41 + rng.random() for _ in range(22)],
        "outputs": [{"index": 0, "name": "Identity", "node": node, "reference": ref}],
        "first_mismatch": {"op_index": 3, "op": "DEPTHWISE_CONV_2D"},
        "op_errors": [{"op_index": i, "op": op, "max_abs_diff": d, "mismatches": int(d > 0)}
                      for i, (op, d) in enumerate([("CONV_2D", 0), ("DEPTHWISE_CONV_2D", 0),
                                                   ("CONV_2D", 0), ("DEPTHWISE_CONV_2D", 3),
                                                   ("FULLY_CONNECTED", 2)])],
    }


def test_report_renders_with_every_plot(tmp_path):
    page = write_validate(mismatch_result(), tmp_path / "report.html")
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace(
        "http://www.w3.org/2000/svg", "")  # self-contained: nothing fetched
    counter = PlotCounter()
    counter.feed(chromium(tmp_path, "--dump-dom", page.as_uri()))
    plots = counter.plots
    assert set(plots) == {"output-0", "op-errors", "latency", "heap"}
    assert plots["output-0"]["circle"] >= 100  # distinct (reference, node) pairs
    assert plots["op-errors"]["rect"] == 5
    assert plots["latency"]["rect"] >= 2
    assert plots["heap"]["rect"] == 2

    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1100,2200", f"--screenshot={shot}", page.as_uri())
    colors = png_colors(shot)
    total = sum(colors.values())
    assert colors[b"\xff\xff\xff"] < 0.97 * total  # not a blank page
    for color in (svg.BAD, svg.ACCENT):  # mismatch marks and bars are painted
        assert colors[hex_rgb(color)] > 200, color


def test_report_says_what_is_missing_instead_of_drawing_it(tmp_path):
    result = {"model": "m.tflite", "bit_exact": True, "vectors": 20, "mismatches": 0}
    page = write_validate(result, tmp_path / "r.html")
    text = page.read_text()
    assert "data-plot" not in text
    assert "no per-inference times" in text and "every op matched" in text


def test_summary_page_over_several_models(tmp_path):
    good = dict(mismatch_result(), bit_exact=True, mismatches=0, op_errors=[],
                model="tflm_hello_world_int8.tflite", node_heap_peak_bytes=150_000)
    page = write_summary([mismatch_result(), good], tmp_path / "summary.html",
                         ["kws.html", "hello.html"])
    counter = PlotCounter()
    counter.feed(chromium(tmp_path, "--dump-dom", page.as_uri()))
    assert set(counter.plots) == {"summary-latency", "summary-heap"}
    assert counter.plots["summary-heap"]["rect"] == 2
    html = render_summary([good])
    assert "1 of 1 models bit-exact" in html
    html = render_summary([good], errors=[{"model": "bad.tflite", "error": "op 3 CUSTOM is "
                                           "not supported"}],
                          skipped=[{"model": "big.tflite", "reason": "does not fit",
                                    "heap_needed": 300_000, "heap_budget": 112_000}])
    assert "1 of 1 models bit-exact, 1 failed with an error, 1 skipped" in html
    assert "op 3 CUSTOM is not supported" in html and "300,000 B needed" in html
    assert '<a href="kws.html">' in page.read_text()


def test_nice_ticks_and_float_outputs(tmp_path):
    assert svg.nice_ticks(-128, 127, 4) == [-100, 0, 100]
    assert svg.nice_ticks(0, 0.9, 5) == [0, 0.2, 0.4, 0.6, 0.8]
    assert svg.nice_ticks(5, 5) == [5, 5.2, 5.4, 5.6, 5.8, 6]  # an empty range gets an axis
    # dequantized (float) outputs get their own axis range, not int8's
    result = {"model": "m.tflite", "bit_exact": True,
              "outputs": [{"name": "prob", "node": [0.25, 0.5, 0.75],
                           "reference": [0.25, 0.5, 0.75]}]}
    html = write_validate(result, tmp_path / "f.html").read_text()
    assert 'data-plot="output-0"' in html and ">0.4<" in html and ">-100<" not in html


def test_heap_counts_the_package_and_mismatch_is_a_sentence(tmp_path):
    """ad01 showed 'node uses 0.2%' while 286,720 B of package sat in RAM; the first
    mismatch was a key=value dump; the card and the per-op chart disagreed unexplained."""
    from tinysense.report.html import node_heap, render_validate

    result = {**mismatch_result(), "node_heap_peak_bytes": 600,
              "node_package_heap_bytes": 286_720, "heap_budget_bytes": 300_000,
              "first_mismatch": {"op_index": 3, "op_name": "DEPTHWISE_CONV_2D", "tensor": 9,
                                 "tensor_name": "dw1", "shape": [1, 4, 4, 8], "values": 128,
                                 "differing_values": 5, "max_abs_diff": 3.0,
                                 "vector": "random 4"}}
    assert node_heap(result) == 287_320
    text = render_validate(result)
    assert "node uses 95.8%" in text and "287,320" in text
    assert "node uses 0.2%" not in text
    assert ("op #3 (DEPTHWISE_CONV_2D) is the first whose output differs: 5 of 128 values "
            "of tensor 9 &#x27;dw1&#x27; (1x4x4x8), by up to 3 int8 steps, on vector "
            "&#x27;random 4&#x27;.") in text
    assert "op_index 3" not in text
    assert "max |diff| of the outputs, all vectors" in text
    assert "per op on vector &#x27;random 4&#x27;" in text
