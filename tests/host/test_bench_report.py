"""bench-all's summary: geometric mean and the markdown table (notes after the marker kept)."""

from __future__ import annotations

import math

from tinysense.bench.models import KEEP_MARKER, geomean, render_markdown, write_markdown


def _summary(ratios):
    rows = [{"model": f"m{i}.tflite", "macs": 1000 * (i + 1), "node_ms": r, "reference_ms": 1.0,
             "ratio": r, "node_ns_per_mac": r * 1e6 / (1000 * (i + 1)),
             "reference_ns_per_mac": 1e6 / (1000 * (i + 1)), "node_heap_peak_bytes": 900,
             "reference_arena_bytes": 1000, "heap_ratio": 0.9, "node_package_heap_bytes": 5000,
             "bit_exact": i != 1} for i, r in enumerate(ratios)]
    return {"results": rows, "geomean_ratio": geomean(ratios), "geomean_heap_ratio": 0.9,
            "max_heap_ratio": 0.9, "board": "ESP32_GENERIC_S3", "target": "virtual",
            "repeats": 20, "environment": {"host_cpu": "cpu", "host": "Linux x86_64",
                                           "python": "3.11", "micropython": "mp",
                                           "tflite_micro": "0.dev", "date": "today"}}


def test_geomean():
    assert math.isclose(geomean([1.0, 4.0]), 2.0)
    assert math.isclose(geomean([2.0, 2.0, 2.0]), 2.0)
    assert math.isnan(geomean([]))


def test_markdown_table_and_verdicts():
    text = render_markdown(_summary([1.0, 4.0, 2.0]))
    assert "| m0 | 1,000 | 1.000 | 1.000 | 1.00x |" in text
    assert "| NO |" in text and text.count("| yes |") == 2
    assert "Geometric mean of node / reference time: 2.00x** over 3 models" in text
    assert "(goal: at most 2.0x: met)" in text
    assert "NOT met" in render_markdown(_summary([3.0, 3.0]))
    assert "--board ESP32_GENERIC_S3 --md docs/benchmarks.md" in text


def test_models_that_failed_are_listed():
    summary = _summary([1.0])
    summary["errors"] = [{"model": "big.tflite", "error": "does not fit"}]
    text = render_markdown(summary)
    assert "| big | failed: does not fit |" in text
    assert "over 1 models (1 could not be benched)" in text


def test_write_keeps_notes_after_marker(tmp_path):
    md = tmp_path / "benchmarks.md"
    write_markdown(_summary([1.5]), md)
    assert md.read_text().rstrip().endswith(KEEP_MARKER)
    md.write_text(md.read_text() + "\n## What the kernels do\n\nunrolled 4x\n")
    write_markdown(_summary([1.2]), md)
    text = md.read_text()
    assert "1.20x" in text and "1.50x" not in text
    assert text.endswith("## What the kernels do\n\nunrolled 4x\n")


def test_rv32_table_gives_instructions_and_the_c3_anchor(tmp_path):
    summary = _summary([1.0, 2.0])
    summary["target"], summary["board"] = "qemu-rv32", "ESP32_GENERIC_C3"
    for r, name, count in zip(summary["results"], ("tflm_person_detect", "m1"),
                              (190_700_000, 5_000)):
        r.update(model=name + ".tflite", instructions_per_inference=count,
                 instructions_per_mac=count / r["macs"], c3_160mhz_lower_bound_ms=count / 160e3,
                 placement="ram", node_arch="rv32imc")
    md = tmp_path / "benchmarks-rv32.md"
    write_markdown(summary, md)
    text = md.read_text()
    assert "| tflm_person_detect | 1,000 | 190,700,000 | 190700.0 | 1191.9 | 3,355 / 426 |" in text
    assert "| m1 | 2,000 | 5,000 | 2.5 | 0.0 |  |" in text
    assert "--target qemu-rv32 --board ESP32_GENERIC_C3 --md docs/benchmarks-rv32.md" in text
    assert "| NO |" in text   # m1 was not bit-exact
    assert text.rstrip().endswith(KEEP_MARKER)


def test_host_time_table_names_the_node_kind():
    summary = _summary([1.0])
    summary["results"][0]["node_arch"] = "x86"
    assert "virtual target (32-bit virtual, mpy arch x86)" in render_markdown(summary)


def test_generated_line_repeats_a_forced_kernel_choice():
    summary = _summary([1.0])
    summary["kernels"] = "viper"
    assert ("--board ESP32_GENERIC_S3 --kernels viper --md docs/benchmarks.md`)"
            in render_markdown(summary))
