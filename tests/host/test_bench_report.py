"""bench-all's summary: geometric mean and the markdown table (notes after the marker kept)."""

from __future__ import annotations

import math

from tinysense.bench.models import KEEP_MARKER, geomean, render_markdown, write_markdown


def _summary(ratios):
    rows = [{"model": f"m{i}.tflite", "macs": 1000 * (i + 1), "node_ms": r, "reference_ms": 1.0,
             "ratio": r, "node_ns_per_mac": r * 1e6 / (1000 * (i + 1)),
             "reference_ns_per_mac": 1e6 / (1000 * (i + 1)), "node_heap_peak_bytes": 900,
             "reference_arena_bytes": 1000, "heap_ratio": 0.9, "node_package_heap_bytes": 5000,
             "bit_exact": i != 1, "ratio_spread": 0.05, "ratio_trusted": True} for i, r in enumerate(ratios)]
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
    assert "| m0 | 1,000 | 1.000 | 1.000 | 1.00x | 5% |" in text
    assert "| NO |" in text and text.count("| yes |") == 2
    assert "Geometric mean of node / reference time, viper: 2.00x** over 3 models." in text
    assert "--board ESP32_GENERIC_S3 --md docs/benchmarks.md" in text


def _both(native, viper, arch="x86"):
    """A --kernels both summary: each model once with native, once with viper."""
    s = _summary(native + viper)
    n = len(native)
    for k, r in enumerate(s["results"]):
        r.update(model=f"m{k % n}.tflite", kernels="native" if k < n else "viper",
                 node_arch=arch, bit_exact=True)
    s["results"][n - 1]["ratio_trusted"] = False     # last native row: spread too wide
    s["results"][n - 1]["ratio_spread"] = 0.4
    s["kernels"] = "both"
    return s


def test_both_kernel_sets_side_by_side_with_the_native_goal():
    text = render_markdown(_both([0.25, 1.0], [1.0, 1.0]))
    assert "| m0 | 1,000 | 1.000 | 0.250 | 0.25x | 5% | 1.000 | 1.00x | 5% |" in text
    assert "| m1 | 2,000 | 1.000 | 1.000 | 1.00x | 40% (too wide) | 1.000 | 1.00x | 5% |" in text
    assert ("Geometric mean of node / reference time, native: 0.50x** over 2 models "
            "(goal: at most 0.5x: met). Spread too wide to trust for: m1.") in text
    assert "viper: 1.00x** over 2 models." in text
    assert "NOT met" in render_markdown(_both([0.6, 0.6], [1.0, 1.0]))
    assert "--kernels both --md docs/benchmarks.md" in text
    assert "## 32-bit build (mpy arch x86)" in text


def test_builds_keep_their_own_sections(tmp_path, monkeypatch):
    md = tmp_path / "benchmarks.md"
    write_markdown(_both([0.5, 0.5], [1.0, 1.0], "x86"), md)
    s64 = _both([0.25, 0.25], [0.9, 0.9], "x64")
    s64["environment"]["micropython_env"] = str(tmp_path / ".venv/bin/micropython")
    monkeypatch.chdir(tmp_path)
    write_markdown(s64, md)
    text = md.read_text()
    assert text.index("## 32-bit build") < text.index("## 64-bit build") < text.index(KEEP_MARKER)
    assert "native: 0.50x**" in text and "native: 0.25x**" in text
    assert ("`TINYSENSE_MICROPYTHON=.venv/bin/micropython tinysense bench-all --target virtual"
            in text)
    write_markdown(_both([0.4, 0.4], [1.0, 1.0], "x86"), md)   # the 32-bit run again
    text = md.read_text()
    assert "native: 0.40x**" in text and "native: 0.50x**" not in text
    assert "native: 0.25x**" in text and text.count("## 32-bit build") == 1


def test_models_that_failed_are_listed():
    summary = _summary([1.0])
    summary["errors"] = [{"model": "big.tflite", "error": "does not fit", "kernels": "native"}]
    text = render_markdown(summary)
    assert "| big | failed (native): does not fit |" in text
    assert "1 runs could not be benched" in text


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


def test_rv32_table_with_both_kernel_sets_and_the_instruction_goals(tmp_path):
    summary = _both([1.0, 1.0], [1.0, 1.0], "rv32imc")
    summary["target"], summary["board"] = "qemu-rv32", "ESP32_GENERIC_C3"
    counts = (48_700_000, 21_000_000, 190_000_000, 64_000_000)
    for r, count in zip(summary["results"], counts):
        k = int(r["model"][1])
        name = ("tflm_person_detect", "mlperf_kws_ref_model")[k]
        r["macs"] = 1000 * (k + 1)
        r.update(model=name + ".tflite", instructions_per_inference=count,
                 instructions_per_mac=count / r["macs"], c3_160mhz_lower_bound_ms=count / 160e3,
                 placement="romfs", ratio_comparable=False)
    md = tmp_path / "benchmarks-rv32.md"
    write_markdown(summary, md)
    text = md.read_text()
    assert ("| tflm_person_detect | 1,000 | 48,700,000 | 48700.0 | 304.4 | 190,000,000 | "
            "190000.0 | 1187.5 | 3,355 / 426 |") in text
    assert "tflm_person_detect 48.7 M with native (goal: at most 55 M: met)" in text
    assert "mlperf_kws_ref_model 21.0 M with native (goal: at most 20 M: NOT met)" in text
    assert "native / ref" not in text   # no host-time ratio on the instruction-count board
