"""The validate/bench CLI maps results to exit codes and JSON (the library is tested on nodes
in tests/hil/test_validate_node.py; here its result is given)."""

from __future__ import annotations

import json

import pytest

from tinysense import cli
from tinysense.validate import core
from tinysense.validate.core import ValidateResult


def _result(bit_exact: bool) -> ValidateResult:
    return ValidateResult(model="m.tflite", target="virtual", board="ESP32_GENERIC",
                          vectors=20, mismatches=0 if bit_exact else 2,
                          mismatched_values=0 if bit_exact else 7,
                          max_abs_diff=0.0 if bit_exact else float("inf"),
                          bit_exact=bit_exact, node_ms=1.5, reference_ms=1.0,
                          node_heap_peak_bytes=900, reference_arena_bytes=1000)


@pytest.mark.parametrize("exact, code", [(True, 0), (False, 1)])
def test_exit_code_and_json(monkeypatch, tmp_path, exact, code):
    seen = {}

    def fake(model, **kwargs):
        seen.update(kwargs, model=model)
        return _result(exact)

    monkeypatch.setattr(core, "validate_model", fake)
    out = tmp_path / "r.json"
    rc = cli.main(["validate", "m.tflite", "--target", "virtual", "--board", "ESP32_GENERIC",
                   "--vectors", "7", "--seed", "9", "--json", str(out)])
    assert rc == code
    assert seen["vectors"] == 7 and seen["seed"] == 9 and seen["target"] == "virtual"
    d = json.loads(out.read_text())
    assert d["bit_exact"] is exact and d["max_abs_diff"] == (0.0 if exact else None)


def test_library_errors_are_one_line_exit_1(capsys):
    rc = cli.main(["validate", "/nonexistent/model.tflite", "--target", "virtual"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysense: error: cannot read model") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["validate", "validate-all"])
def test_json_to_stdout_is_only_json_with_html(monkeypatch, tmp_path, capsys, command):
    """--json - with --html: stdout is the JSON alone; the 'report: ...' line goes to stderr."""
    monkeypatch.setattr(core, "validate_model", lambda model, **kw: _result(True))
    monkeypatch.setattr(core, "validate_all", lambda **kw: {
        "board": "ESP32_GENERIC", "target": "virtual", "results": [_result(True).to_dict()],
        "errors": [{"model": "bad.tflite", "error": "op 3 (CUSTOM): not supported"}],
        "skipped": [], "bit_exact": False})
    html = tmp_path / ("r.html" if command == "validate" else "dir")
    args = [command] + (["m.tflite"] if command == "validate" else []) + [
        "--target", "virtual", "--board", "ESP32_GENERIC", "--json", "-", "--html", str(html)]
    cli.main(args)
    out, err = capsys.readouterr()
    json.loads(out)                                    # nothing else on stdout
    assert "report: " in err and str(html) in err
    if command == "validate-all":                      # the summary page lists the error
        page = (html / "summary.html").read_text()
        assert "bad" in page and "op 3 (CUSTOM): not supported" in page


@pytest.mark.parametrize("command, where, name", [
    ("validate", "tinysense.validate.core", "validate_model"),
    ("validate-all", "tinysense.validate.core", "validate_all"),
    ("bench", "tinysense.bench.models", "bench_model"),
    ("bench-all", "tinysense.bench.models", "bench_all")])
@pytest.mark.parametrize("kernels", [None, "native", "viper"])
def test_kernels_option_reaches_the_library(monkeypatch, command, where, name, kernels):
    """--kernels viper|native|auto (default auto) is passed on as kernels=."""
    import importlib

    seen = {}

    class Stop(Exception):
        pass

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(importlib.import_module(where), name, fake)
    args = [command] + (["m.tflite"] if command in ("validate", "bench") else []) + [
        "--target", "virtual"] + (["--kernels", kernels] if kernels else [])
    with pytest.raises(Stop):
        cli.main(args)
    assert seen["kernels"] == (kernels or "auto")


def test_kernels_option_rejects_other_values(capsys):
    with pytest.raises(SystemExit):
        cli.main(["validate", "m.tflite", "--kernels", "fast"])
    assert "--kernels" in capsys.readouterr().err
