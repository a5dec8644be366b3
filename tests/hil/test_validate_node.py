"""tinysense validate / bench on a node: conformance models byte-exact, JSON fields, and clear
results for a tampered or wrong package."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import virtual_node_arch
from validate_nodes import deployed_node

from tinysense.boards import load_board
from tinysense.convert import ConvertResult, convert_model
from tinysense.convert.writer import seal
from tinysense.errors import TinysenseError
from tinysense.paths import CONFORMANCE_DIR
from tinysense.reference import Reference
from tinysense.bench.models import bench_model
from tinysense.validate.core import (
    model_inputs, validate_all, validate_converted, validate_model)
from tinysense.validate.nodeside import NodeModel
from tinysense.validate.vectors import make_vectors

pytestmark = pytest.mark.hil

OPS_DIR = Path(__file__).resolve().parents[1] / "ops"
CONFORMANCE = sorted(p.name for p in CONFORMANCE_DIR.glob("*.tflite"))
JSON_FIELDS = {"model": str, "target": str, "vectors": int, "mismatches": int,
               "max_abs_diff": float, "bit_exact": bool, "node_ms": float,
               "reference_ms": float, "node_heap_peak_bytes": int,
               "reference_arena_bytes": int}


def need_board(board: str, target_option: str, board_option: str) -> None:
    """A virtual board can be any board; a real node (or QEMU) is the one --board names."""
    if target_option != "virtual" and board != board_option:
        pytest.skip(f"needs a {board} node; --target {target_option} is a {board_option}")


@pytest.fixture(scope="module")
def nodes(target_option, board_option, tmp_path_factory):
    """One deployed node per board id, started on first use."""
    with contextlib.ExitStack() as stack:
        opened = {}

        def get(board: str):
            need_board(board, target_option, board_option)
            if board not in opened:
                tmp = tmp_path_factory.mktemp(f"node-{board}")
                opened[board] = stack.enter_context(deployed_node(target_option, board, tmp))
            return opened[board]
        yield get


def _node_arch(target_kind: str, board: str) -> str:
    """The mpy arch a node of this kind reports: the unix port's (x86 or x64) on a virtual
    board, the board config's (xtensawin, rv32imc) elsewhere."""
    return virtual_node_arch(board) if target_kind == "virtual" else load_board(board).mpy_arch


def _check_fields(d: dict) -> None:
    for key, typ in JSON_FIELDS.items():
        assert key in d, key
        assert isinstance(d[key], typ) or (typ is float and isinstance(d[key], int)), key
    assert d["node_ms"] > 0 and d["reference_ms"] > 0
    assert d["node_heap_peak_bytes"] > 0 and d["reference_arena_bytes"] > 0
    assert d["node_arch"] == _node_arch(d["target"], d["board"])
    # measured on the node around one inference (agent.heap, GC off)
    assert d["node_alloc_bytes_per_inference"] == d["node_inference_alloc_bytes"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("model", CONFORMANCE)
def test_conformance_model_bit_exact_on_s3(nodes, model):
    cfg = load_board("ESP32_GENERIC_S3")
    result = validate_model(CONFORMANCE_DIR / model, board=cfg, vectors=20,
                            node=nodes(cfg.name), progress=None)
    d = json.loads(json.dumps(result.to_dict()))
    _check_fields(d)
    assert d["vectors"] == 20 and d["model"] == model
    assert d["bit_exact"], result.summary()
    assert d["mismatches"] == 0 and d["max_abs_diff"] == 0
    assert d["node_inference_alloc_bytes"] == 0


@pytest.mark.slow
def test_validate_all_esp32_runs_what_fits(target_option, board_option, tmp_path,
                                           monkeypatch):
    need_board("ESP32_GENERIC", target_option, board_option)
    # validate_all opens (and deploys to) its own node: a private virtual board in tmp_path
    monkeypatch.setenv("TINYSENSE_HOME", str(tmp_path / "home"))
    cfg = load_board("ESP32_GENERIC")
    summary = validate_all(target=target_option, board=cfg, vectors=20, progress=None)
    fits = {m for m in CONFORMANCE if convert_model(CONFORMANCE_DIR / m, board=cfg).report.fits}
    assert {r["model"] for r in summary["results"]} == fits
    assert {s["model"] for s in summary["skipped"]} == set(CONFORMANCE) - fits
    assert {"tflm_hello_world_int8.tflite", "mlperf_kws_ref_model.tflite"} <= fits
    assert summary["bit_exact"], [r["failures"][:2] for r in summary["results"]]
    for r in summary["results"]:
        _check_fields(r)


def _tampered(package: bytes, at: int, fix_crc: bool) -> bytes:
    """Flip one byte of the constant data; optionally recompute the body CRC so only the
    outputs can tell."""
    buf = bytearray(package)
    const_off = struct.unpack_from("<I", buf, 44)[0]
    buf[const_off + at] ^= 0x5A
    if fix_crc:
        return seal(buf)
    return bytes(buf)


def _vectors(ref, n=8):
    return make_vectors(model_inputs(ref), n, seed=5)


def test_tampered_weights_are_found_and_located(nodes, board_option):
    cfg = load_board(board_option)
    path = OPS_DIR / "conv_2d_same.tflite"
    ref = Reference(path)
    good = convert_model(path, board=cfg)
    bad = ConvertResult(_tampered(good.package, 0, fix_crc=True), good.report)
    result = validate_converted(nodes(cfg.name), ref, bad, _vectors(ref), cfg, progress=None,
                                timing=False)
    assert not result.bit_exact
    assert result.mismatches > 0 and result.max_abs_diff > 0
    fm = result.first_mismatch
    assert fm["op_index"] == 0 and fm["op_name"] == "CONV_2D"
    assert fm["tensor"] == ref.graph.ops[0].outputs[0]
    assert 0 < fm["differing_values"] <= fm["values"]
    assert "first differing op: #0 CONV_2D" in result.summary()


def _flip_weight(model: Path, op_index: int) -> bytes:
    """The .tflite with one byte of op `op_index`'s weights changed (found in the file by
    content): a valid model that differs from the original from that op on."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    buf = bytearray(model.read_bytes())
    m = fb.Model.GetRootAs(bytes(buf), 0)
    sg = m.Subgraphs(0)
    tensor = sg.Tensors(int(sg.Operators(op_index).InputsAsNumpy()[1]))
    weights = m.Buffers(tensor.Buffer()).DataAsNumpy().tobytes()
    at = bytes(buf).find(weights)
    assert at > 0 and bytes(buf).count(weights) == 1
    buf[at + len(weights) // 2] ^= 0x41
    return bytes(buf)


@pytest.mark.parametrize("way", ["crc trace", "public agent API"])
def test_first_differing_op_is_found_deep_in_a_graph(nodes, board_option, way, monkeypatch):
    if way == "public agent API":   # what validate falls back to if the trace snippet fails
        def broken(*args, **kwargs):
            raise TinysenseError("trace unavailable")
        monkeypatch.setattr(NodeModel, "trace", broken)
    cfg = load_board(board_option)
    path = OPS_DIR / "mini_net.tflite"
    ref = Reference(path)
    fc = [op.index for op in ref.graph.ops if op.name == "FULLY_CONNECTED"][0]
    assert fc >= 4   # CONV_2D, DEPTHWISE_CONV_2D, ADD, CONV_2D, MEAN come first
    changed = convert_model(_flip_weight(path, fc), board=cfg)
    result = validate_converted(nodes(cfg.name), ref, changed, _vectors(ref), cfg,
                                progress=None, timing=False)
    assert not result.bit_exact
    fm = result.first_mismatch
    assert (fm["op_index"], fm["op_name"]) == (fc, "FULLY_CONNECTED"), fm
    assert fm["tensor"] == ref.graph.ops[fc].outputs[0]


def test_corrupt_package_is_rejected_by_crc(nodes, board_option):
    cfg = load_board(board_option)
    path = OPS_DIR / "conv_2d_same.tflite"
    ref = Reference(path)
    good = convert_model(path, board=cfg)
    bad = ConvertResult(_tampered(good.package, 3, fix_crc=False), good.report)
    with pytest.raises(TinysenseError, match="CRC"):
        validate_converted(nodes(cfg.name), ref, bad, _vectors(ref), cfg, progress=None)


def test_package_of_another_model_is_a_clear_error(nodes, board_option):
    cfg = load_board(board_option)
    ref = Reference(CONFORMANCE_DIR / "tflm_hello_world_int8.tflite")
    other = convert_model(OPS_DIR / "conv_2d_same.tflite", board=cfg)
    with pytest.raises(TinysenseError, match="converted from another model"):
        validate_converted(nodes(cfg.name), ref, other, _vectors(ref), cfg, progress=None)


def test_bench_model_fields(nodes, board_option):
    cfg = load_board(board_option)
    r = bench_model(CONFORMANCE_DIR / "mlperf_kws_ref_model.tflite", board=cfg, repeats=5,
                    rounds=2, node=nodes(cfg.name), progress=None)
    assert r.bit_exact and r.macs == 2656768
    assert r.node_ms > 0 and r.reference_ms > 0
    assert r.ratio == pytest.approx(r.node_ms / r.reference_ms)
    assert r.node_ns_per_mac == pytest.approx(r.node_ms * 1e6 / r.macs)
    assert r.heap_ratio == pytest.approx(r.node_heap_peak_bytes / r.reference_arena_bytes)
    d = json.loads(json.dumps(r.to_dict()))   # what `tinysense bench --json` writes
    assert d["node_arch"] == _node_arch(d["target"], d["board"])
    assert d["node_alloc_bytes_per_inference"] == 0


def _cli(*args, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TINYSENSE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "tinysense", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_validate_cli_end_to_end_json_and_exit_code(tmp_path, target_option, board_option):
    need_board("ESP32_GENERIC", target_option, board_option)
    out = tmp_path / "v.json"
    extra = tmp_path / "in.npz"
    np.savez(extra, np.array([[-128], [5]], np.int8))   # two more vectors for the 1x1 input
    proc = _cli("validate", str(CONFORMANCE_DIR / "tflm_hello_world_int8.tflite"),
                "--target", target_option, "--board", "ESP32_GENERIC", "--vectors", "6",
                "--inputs", str(extra), "--seed", "3", "--json", str(out),
                home=tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[8/8] in.npz[1]" in proc.stdout and "BIT-EXACT" in proc.stdout  # progress, verdict
    d = json.loads(out.read_text())
    _check_fields(d)
    assert d["vectors"] == 8 and d["bit_exact"] is True and d["board"] == "ESP32_GENERIC"


def test_validate_cli_one_line_errors(tmp_path, target_option):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    proc = _cli("validate", str(junk), "--target", target_option, home=tmp_path / "home")
    assert proc.returncode == 1
    assert proc.stderr.startswith("tinysense: error: not a TFLite flatbuffer")
    assert "Traceback" not in proc.stderr
    proc = _cli("validate", str(tmp_path / "missing.tflite"), "--target", target_option,
                home=tmp_path / "home")
    assert proc.returncode == 1 and "cannot read model" in proc.stderr


def test_model_too_big_for_the_board_is_a_clear_error(nodes):
    cfg = load_board("ESP32_GENERIC")
    model = CONFORMANCE_DIR / "mlperf_vww_96_int8.tflite"
    assert not convert_model(model, board=cfg).report.fits
    with pytest.raises(TinysenseError, match="does not fit the node's heap") as err:
        validate_model(model, board=cfg, vectors=3, node=nodes(cfg.name), progress=None)
    assert "\n" not in str(err.value)
    # the node is still usable afterwards
    ok = validate_model(CONFORMANCE_DIR / "tflm_hello_world_int8.tflite", board=cfg, vectors=3,
                        node=nodes(cfg.name), progress=None, timing=False)
    assert ok.bit_exact


def test_validate_all_records_errors_and_goes_on(target_option, board_option, tmp_path,
                                                monkeypatch):
    need_board("ESP32_GENERIC", target_option, board_option)
    monkeypatch.setenv("TINYSENSE_HOME", str(tmp_path / "home"))
    junk = tmp_path / "a_junk.tflite"
    junk.write_bytes(b"TFL3" * 8)
    good = CONFORMANCE_DIR / "tflm_hello_world_int8.tflite"
    summary = validate_all(target=target_option, board="ESP32_GENERIC", models=[junk, good],
                           vectors=4, progress=None)
    assert [e["model"] for e in summary["errors"]] == ["a_junk.tflite"]
    assert [r["model"] for r in summary["results"]] == [good.name]
    assert summary["results"][0]["bit_exact"] and summary["bit_exact"] is False


@pytest.mark.parametrize("placement", ["ram", "stream"])
def test_constants_in_ram_or_streamed_are_bit_exact(nodes, board_option, placement):
    cfg = load_board(board_option)
    result = validate_model(CONFORMANCE_DIR / "mlperf_kws_ref_model.tflite", board=cfg,
                            vectors=8, node=nodes(cfg.name), progress=None, timing=False,
                            placement=placement)
    assert result.node_placement == placement
    assert result.bit_exact, result.summary()
    if placement == "stream":   # the package is not in the heap, only one op's constants
        assert result.node_package_heap_bytes == 0
