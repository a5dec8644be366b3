"""Validation reports from real runs on the node: `tinysense validate --html` end to end, and
a report of a real mismatch (one weight changed behind the reference's back) with its per-op
plot, opened in Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tflite
from browser import PlotCounter, chromium

from tinysense.convert import convert_model
from tinysense.paths import CONFORMANCE_DIR, REPO_ROOT
from tinysense.reference import Reference
from tinysense.report.html import write_validate
from tinysense.validate.core import model_inputs, validate_converted
from tinysense.validate.vectors import make_vectors

pytestmark = pytest.mark.hil


def flip_weight(model: bytes, op_index: int) -> bytes:
    """The .tflite with one byte of op `op_index`'s weights changed (found in the file by
    content): a valid model whose outputs differ from the original's from that op on."""
    m = tflite.Model.GetRootAsModel(model, 0)
    sg = m.Subgraphs(0)
    weights = m.Buffers(sg.Tensors(sg.Operators(op_index).Inputs(1)).Buffer())
    data = weights.DataAsNumpy().tobytes()
    at = model.find(data)
    assert at > 0 and model.count(data) == 1
    buf = bytearray(model)
    buf[at + len(data) // 2] ^= 0x41
    return bytes(buf)


def plots_in(tmp_path, page) -> dict:
    counter = PlotCounter()
    counter.feed(chromium(tmp_path, "--dump-dom", page.as_uri()))
    return counter.plots


def test_validate_cli_writes_an_html_report(tmp_path, target_option, board_option):
    html, js = tmp_path / "hello.html", tmp_path / "hello.json"
    model = CONFORMANCE_DIR / "tflm_hello_world_int8.tflite"
    proc = subprocess.run(
        [sys.executable, "-m", "tinysense", "validate", str(model), "--target", target_option,
         "--board", board_option, "--vectors", "12", "--json", str(js), "--html", str(html)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "TINYSENSE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(js.read_text())
    assert len(result["node_times_ms"]) >= 5 and min(result["node_times_ms"]) > 0
    assert len(result["outputs"][0]["node"]) == 12  # one value per vector
    assert result["outputs"][0]["node"] == result["outputs"][0]["reference"]
    plots = plots_in(tmp_path, html)
    assert set(plots) == {"output-0", "latency", "heap"}
    assert plots["output-0"]["circle"] >= 5 and plots["heap"]["rect"] == 2
    assert "every op matched" in html.read_text()


def test_report_of_a_real_mismatch(node, board_config, tmp_path):
    path = REPO_ROOT / "tests" / "ops" / "conv_2d_same.tflite"
    ref = Reference(path)
    bad = convert_model(flip_weight(path.read_bytes(), 0), board=board_config)
    vectors = make_vectors(model_inputs(ref), 6, seed=3)
    result = validate_converted(node, ref, bad, vectors, board_config, progress=None)
    assert not result.bit_exact
    d = json.loads(json.dumps(result.to_dict()))  # what --json writes
    assert d["op_errors"] and d["op_errors"][0]["op"] == "CONV_2D"
    assert not d["op_errors"][0]["identical"] and d["op_errors"][0]["max_abs_diff"] > 0
    page = write_validate(d, tmp_path / "mismatch.html")
    plots = plots_in(tmp_path, page)
    assert {"output-0", "op-errors", "latency", "heap"} <= set(plots)
    assert plots["op-errors"]["rect"] == len(d["op_errors"])
    text = page.read_text()
    assert "MISMATCH" in text and "(CONV_2D) is the first whose output differs" in text
    assert 'stroke="#222"' in text  # mismatching output values are drawn outlined in red


def test_validate_all_writes_a_summary_page(tmp_path, target_option, board_option):
    models = [CONFORMANCE_DIR / "tflm_hello_world_int8.tflite",
              REPO_ROOT / "tests" / "ops" / "conv_2d_same.tflite"]
    out = tmp_path / "validate"
    proc = subprocess.run(
        [sys.executable, "-m", "tinysense", "validate-all", "--target", target_option,
         "--board", board_option, "--vectors", "6", "--html", str(out),
         "--models", *map(str, models)],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        env={**os.environ, "TINYSENSE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = out / "summary.html"
    assert sorted(p.name for p in out.iterdir()) == [
        "conv_2d_same.html", "summary.html", "tflm_hello_world_int8.html"]
    plots = plots_in(tmp_path, summary)
    assert set(plots) == {"summary-latency", "summary-heap"}
    assert plots["summary-heap"]["rect"] == 2
    text = summary.read_text()
    assert "2 of 2 models bit-exact" in text
    assert '<a href="conv_2d_same.html">' in text and '<a href="tflm_hello_world_int8.html">' \
        in text
