"""The converter: tflite-micro parameter math, planning, package layout, errors, CLI."""

from __future__ import annotations

import binascii
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tflite

from tinysense.convert import convert_model, fixedpoint as fp, write_package
from tinysense.convert.planner import Buffer, check, plan
from tinysense.convert.reader import read_model
from tinysense.convert.writer import HEADER, TENSOR
from tinysense.errors import TinysenseError

TESTS = Path(__file__).resolve().parents[1]
CONF = TESTS / "conformance"
HELLO = CONF / "tflm_hello_world_int8.tflite"
GOLDEN = TESTS / "vectors" / "tsm"


# -- integer math against hand-computed values (tflite quantization_util / gemmlowp) --------

@pytest.mark.parametrize("m, want", [
    (0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.75, (1610612736, 0)),
    (0.3, (1288490189, -1)), (2.5, (1342177280, 2)), (0.0, (0, 0)),
    (1e-12, (0, 0)),                       # shift < -31: both zero
    (1 - 2 ** -40, (1 << 30, 1)),          # q rounds up to 2^31: halve, shift + 1
])
def test_quantize_multiplier(m, want):
    assert fp.quantize_multiplier(m) == want


def test_srdhm_and_rdbpot_edges():
    assert fp.srdhm(fp.INT32_MIN, fp.INT32_MIN) == fp.INT32_MAX
    assert fp.srdhm(1 << 30, 1 << 30) == 1 << 29
    assert fp.srdhm(-1, 1 << 30) == 0          # -0.5 truncates toward zero after the nudge
    assert fp.srdhm(-3, 1 << 30) == -1
    assert fp.srdhm(3, 1 << 30) == 2
    assert fp.rdbpot(-3, 1) == -2 and fp.rdbpot(3, 1) == 2    # ties away from zero
    assert fp.rdbpot(-5, 2) == -1 and fp.rdbpot(5, 2) == 1
    assert fp.mbqm(100, 1 << 30, -2) == 13      # 100 * 0.5 / 4 = 12.5 -> 13


def test_activation_ranges():
    assert fp.activation_range(0, 0.1, 3) == (-128, 127)
    assert fp.activation_range(1, 0.1, 3) == (3, 127)
    assert fp.activation_range(3, 0.1, -100) == (-100, -40)
    assert fp.activation_range(3, 0.01, 0) == (0, 127)


def test_exp_and_logistic_fixed_point_are_close_to_real():
    for x in (-0.01, -0.5, -1.0, -3.7, -10.0):
        raw = fp.exp_on_negative_values(int(x * (1 << 26)), 5)
        assert abs(raw / 2 ** 31 - math.exp(x)) < 1e-6
    for x in (-6.0, -1.0, 0.0, 0.5, 4.0):
        assert abs(fp.logistic_q(int(x * (1 << 27)), 4) / 2 ** 31
                   - 1 / (1 + math.exp(-x))) < 1e-6
        assert abs(fp.tanh_q(int(x * (1 << 27)), 4) / 2 ** 31 - math.tanh(x)) < 1e-6


# -- parameters as tflite-micro's Prepare computes them ------------------------------------

def _params(pkg: bytes):
    h = HEADER.unpack_from(pkg, 0)
    ops_off, ops_size = h[14], h[15]
    off, out = ops_off, []
    while off < ops_off + ops_size:
        code, n_in, n_out, _r, n_par, src, _cs, _cl = struct.unpack_from("<BBBBHHII", pkg,
                                                                          off)
        off += 16 + 4 * ((n_in + n_out + 1) // 2)
        out.append((code, src, struct.unpack_from(f"<{n_par}i", pkg, off)))
        off += 4 * n_par
    return out


def test_conv_per_channel_multipliers_match_formula():
    path = CONF / "tflm_person_detect.tflite"
    model = read_model(path)
    pkg = convert_model(path).package
    op = model.operators[2]                      # CONV_2D 1x1, per-channel weights
    x, w, y = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    code, src, p = next(r for r in _params(pkg) if r[1] == 2)
    assert code == 2
    mults = struct.unpack_from(f"<{y.shape[-1]}i", pkg, p[20])
    shifts = struct.unpack_from(f"<{y.shape[-1]}i", pkg, p[21])
    for c in range(y.shape[-1]):
        real = float(x.scale) * float(w.scales[c]) / float(y.scale)
        q, e = math.frexp(real)
        want = round(q * 2 ** 31) if q * 2 ** 31 % 1 != 0.5 else math.floor(q * 2 ** 31) + 1
        assert (mults[c], shifts[c]) == (want, e)
    assert p[22] == 128 + x.zero_point and p[23] == y.zero_point


def test_fc_per_tensor_scale_rounds_through_float32():
    path = CONF / "mlperf_ad01_int8.tflite"
    model = read_model(path)
    pkg = convert_model(path).package
    op = model.operators[0]
    x, w, y = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _, _, p = _params(pkg)[0]
    m = struct.unpack_from("<i", pkg, p[20])[0]
    s = struct.unpack_from("<i", pkg, p[21])[0]
    prod = float(np.float32(x.scale) * np.float32(w.scales[0]))   # float32 product first
    assert (m, s) == fp.quantize_multiplier(prod / float(y.scale))


def test_conv_fold_constant():
    """C = bias - (128+zp)*sum(w+128) + 128*(128+zp)*K reproduces bias + sum w*(x-zp)."""
    model = read_model(HELLO)
    pkg = convert_model(HELLO).package
    op = model.operators[1]
    x, w, b = (model.tensors[i] for i in op.inputs)
    _, _, p = _params(pkg)[1]
    k, k4, units = p[26], p[18], w.shape[0]
    wq = np.frombuffer(pkg, np.uint8, units * k4, p[17]).reshape(units, k4)
    c = np.frombuffer(pkg, "<i4", units, p[19])
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, k)
    xp = (xs + 128).astype(np.int64)
    for o in range(units):
        folded = int((wq[o, :k].astype(np.int64) * xp).sum() - 128 * xp.sum() + c[o])
        direct = int(b.data[o]) + int((w.data[o].astype(np.int64) * (xs - x.zero_point)).sum())
        assert folded == direct


# -- planner -------------------------------------------------------------------------------

def test_planner_reuses_dead_memory_and_never_overlaps_live():
    rng = np.random.default_rng(3)
    for _ in range(50):
        bufs = []
        for k in range(12):
            a = int(rng.integers(0, 10))
            bufs.append(Buffer(k, int(rng.integers(1, 5000)), a, a + int(rng.integers(0, 4))))
        total = plan(bufs)
        check(bufs)
        assert all(b.offset % 4 == 0 for b in bufs)
        assert total >= max(sum(b.size for b in bufs if b.first <= t <= b.last)
                            for t in range(14))
        assert total <= sum((b.size + 3) & ~3 for b in bufs)


def test_planner_chain_uses_two_slots():
    bufs = [Buffer(k, 1000, k, k + 1) for k in range(6)]   # a chain of ops: x0 -> x1 -> ...
    assert plan(bufs) == 2000


def test_conformance_arenas_not_larger_than_tflite_micro():
    # tflite-micro totals (tests/conformance/SOURCES.md) include its own bookkeeping
    tflm = {"tflm_person_detect": 85264, "mlperf_vww_96_int8": 103680,
            "mlperf_kws_ref_model": 24272, "mlperf_pretrainedResnet_quant": 55984,
            "mlperf_ad01_int8": 3984, "keyword_scrambled": 15152,
            "keyword_scrambled_8bit": 10032}
    for name, total in tflm.items():
        r = convert_model(CONF / f"{name}.tflite").report
        assert r.arena_bytes + r.scratch_bytes < total, name


# -- package layout and golden vectors -----------------------------------------------------

def test_package_header_and_sections():
    pkg = convert_model(HELLO).package
    h = HEADER.unpack_from(pkg, 0)
    assert h[0] == b"TSMP" and h[1] == 3 and h[2] == 64
    # the CRC covers every byte but its own four (the header too)
    assert binascii.crc32(pkg[12:], binascii.crc32(pkg[:8])) == h[4] and h[5] == len(pkg)
    assert h[13] == 64 and h[14] == 64 + h[6] * TENSOR.size
    assert h[16] % 4 == 0 and h[16] + h[17] == len(pkg)


def test_golden_package_is_reproduced_byte_for_byte():
    """tests/vectors/tsm/hello_world.tsm is what the converter writes (format stability)."""
    assert convert_model(HELLO).package == (GOLDEN / "hello_world.tsm").read_bytes()
    meta = json.loads((GOLDEN / "hello_world.json").read_text())
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_file(str(HELLO))
    for vec in meta["vectors"]:
        it.set_input(np.frombuffer(bytes.fromhex(vec["input"]), np.int8).reshape(1, 1), 0)
        it.invoke()
        assert it.get_output(0).tobytes().hex() == vec["output"]


def test_golden_svdf_package_is_reproduced_byte_for_byte():
    """tests/vectors/tsm/svdf.tsm (an int16 STATE tensor and an SVDF record) is what the
    converter writes, and svdf.json's outputs are tflite-micro's for its inputs in a row."""
    model = TESTS / "ops" / "svdf_rank1.tflite"
    assert convert_model(model).package == (GOLDEN / "svdf.tsm").read_bytes()
    meta = json.loads((GOLDEN / "svdf.json").read_text())
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_file(str(model))
    outs = set()
    for vec in meta["vectors"]:
        it.set_input(np.frombuffer(bytes.fromhex(vec["input"]), np.int8).reshape(1, 24), 0)
        it.invoke()
        assert it.get_output(0).tobytes().hex() == vec["output"]
        outs.add(vec["output"])
    assert meta["in_a_row"] and len(outs) == len(meta["vectors"])


def test_golden_int16_ends_package_is_reproduced_byte_for_byte():
    """tests/vectors/tsm/int16_ends.tsm (int16 input, int32 output, REQUANT and SOFTMAX_OUT16
    records) is what the converter writes; int16_ends.json's outputs are tflite-micro's."""
    model = TESTS / "ops" / "int16_ends_fc.tflite"
    assert convert_model(model).package == (GOLDEN / "int16_ends.tsm").read_bytes()
    meta = json.loads((GOLDEN / "int16_ends.json").read_text())
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_file(str(model))
    outs = set()
    for vec in meta["vectors"]:
        it.set_input(np.frombuffer(bytes.fromhex(vec["input"]), "<i2").reshape(1, 32), 0)
        it.invoke()
        assert it.get_output(0).astype("<i4").tobytes().hex() == vec["output"]
        outs.add(vec["output"])
    assert len(outs) == len(meta["vectors"])


# -- errors --------------------------------------------------------------------------------

def _patched_opcode(code: int) -> bytes:
    buf = bytearray(HELLO.read_bytes())
    oc = tflite.Model.GetRootAsModel(buf, 0).OperatorCodes(0)
    pos = oc._tab.Pos
    buf[pos + oc._tab.Offset(4)] = code               # deprecated_builtin_code (int8)
    struct.pack_into("<i", buf, pos + oc._tab.Offset(10), code)   # builtin_code
    return bytes(buf)


def test_unsupported_op_names_op_index_and_why():
    with pytest.raises(TinysenseError) as exc:
        convert_model(_patched_opcode(47))          # EXP
    msg = str(exc.value)      # hello_world's three FULLY_CONNECTED share opcode 0: all listed
    assert msg.split("\n")[0] == "model: 3 problems the engine does not support:"
    assert [ln.split(": ", 1)[0] for ln in msg.split("\n")[1:]] == \
        ["  op 0 (EXP)", "  op 1 (EXP)", "  op 2 (EXP)"]
    assert all("op not supported" in ln for ln in msg.split("\n")[1:])


@pytest.mark.parametrize("data, words", [
    (b"", "not a .tflite"), (b"garbage!" * 10, "not a .tflite"),
    (HELLO.read_bytes()[:900], "corrupt"),
])
def test_corrupt_model_is_one_line_error(data, words):
    with pytest.raises(TinysenseError) as exc:
        convert_model(data)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_cli_convert_writes_package_and_report(tmp_path):
    out = tmp_path / "hello.tsm"
    proc = subprocess.run([sys.executable, "-m", "tinysense", "convert", str(HELLO), "-o",
                           str(out), "--board", "ESP32_GENERIC", "--json",
                           str(tmp_path / "r.json"), "--tensors"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == convert_model(HELLO).package
    assert "288 MACs" in proc.stdout and "fits" in proc.stdout
    assert proc.stdout.count("arena ") >= 4          # the arena map: input, 2 hidden, output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["fits"] is True and rep["placement"] == "ram" and rep["arena_bytes"] > 0


def test_cli_failure_leaves_no_output_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_patched_opcode(47))
    out = tmp_path / "bad.tsm"
    proc = subprocess.run([sys.executable, "-m", "tinysense", "convert", str(bad), "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 3 and "op 0 (EXP)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_write_package_is_atomic(tmp_path, monkeypatch):
    result = convert_model(HELLO)
    out = tmp_path / "m.tsm"
    import os

    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_package(result, out)
    assert list(tmp_path.iterdir()) == []


def test_param_counts_match_engine_table():
    """Every op the converter writes has the parameter count the node engine checks."""
    from tinysense.convert.ops import N_PARAMS
    from tinysense.formats import node_value
    assert node_value("tsnode/engine/ops.py", "N_PARAMS") == N_PARAMS
    for path in sorted(CONF.glob("*.tflite")) + sorted((TESTS / "ops").glob("*.tflite")):
        for code, src_idx, params in _params(convert_model(path).package):
            want = 4 + 2 * params[3] if code == 9 else N_PARAMS[code]
            assert len(params) == want, (path.name, src_idx, code)


def test_host_quantize_and_dequantize_match_tflite_micro():
    """quantize_input / dequantize_output equal tflite-micro's QUANTIZE and DEQUANTIZE."""
    from tflite_micro.python.tflite_micro import runtime

    from tinysense.convert import dequantize_output, quantize_input
    ops_dir = TESTS / "ops"
    cfg = runtime.InterpreterConfig.kPreserveAllTensors
    p = ops_dir / "quantize_float_input.tflite"
    io = convert_model(p).report.inputs[0]
    it = runtime.Interpreter.from_file(str(p), intrepreter_config=cfg)
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = (rng.standard_normal(io["shape"]) * 3).astype(np.float32)
        x.flat[:4] = np.array([0.5, 1.5, -0.5, -2.5], np.float32) * np.float32(io["scale"])
        it.set_input(x, 0)
        it.invoke()
        q = it.GetTensor(io["tensor"], 0)["tensor_data"].reshape(-1)
        assert np.array_equal(quantize_input(x, io).reshape(-1), q)
    p = ops_dir / "dequantize_float_output.tflite"
    r = convert_model(p).report
    io, io_in = r.outputs[0], r.inputs[0]
    it = runtime.Interpreter.from_file(str(p), intrepreter_config=cfg)
    for _ in range(5):
        it.set_input(rng.integers(-128, 128, io_in["shape"]).astype(np.int8), 0)
        it.invoke()
        q = it.GetTensor(io["tensor"], 0)["tensor_data"]
        assert dequantize_output(q, io).tobytes() == np.asarray(it.get_output(0)).tobytes()


@pytest.mark.parametrize("model, board, placement, fits", [
    ("mlperf_kws_ref_model", "ESP32_GENERIC_C3", "ram", True),
    ("mlperf_kws_ref_model", "ESP32_GENERIC", "stream", True),  # whole: 1.8 KB too many
    ("mlperf_ad01_int8", "ESP32_GENERIC_C3", "stream", True),  # runs on a 32-bit C3
    ("tflm_person_detect", "ESP32_GENERIC_S3", "ram", True),
    # its 3 KB input in chunks: runs beside the app from 148.9 KB (32-bit virtual board)
    ("mlperf_pretrainedResnet_quant", "ESP32_GENERIC_C3", "stream", True),
    ("tflm_person_detect", "ESP32_GENERIC", "stream", False),
    ("tflm_person_detect", "ESP32_GENERIC_C3", "stream", False),
    # the RV32 QEMU board: the C3 plus a ROMFS partition (constants in place, aligned)
    ("tflm_person_detect", "rv32:ESP32_GENERIC_C3", "romfs", True),
    ("mlperf_vww_96_int8", "rv32:ESP32_GENERIC_C3", "romfs", True),
])
def test_fit_report_picks_placement(model, board, placement, fits):
    cfg = board
    if board.startswith("rv32:"):   # the board as --target qemu-rv32 presents it
        from tinysense.boards import load_board
        from tinysense.targets import node_board
        board = board[5:]
        cfg = node_board("qemu-rv32", load_board(board))
    r = convert_model(CONF / f"{model}.tflite", board=cfg).report
    assert (r.placement, r.fits) == (placement, fits), r.fit_reason
    assert r.heap_needed >= r.arena_bytes + r.scratch_bytes
    if placement == "ram":
        assert r.heap_needed >= r.package_bytes
    if placement == "stream":
        assert "too big to load whole" in r.fit_reason
        assert r.max_op_const_bytes < r.const_bytes
    text = r.text()
    assert board in text and ("does NOT fit" in text) is (not fits)


@pytest.mark.parametrize("name", ["tflm_hello_world_int8", "tflm_micro_speech_quantized"])
def test_mutated_models_convert_or_fail_in_one_line(name):
    """Random byte changes: the converter either converts or raises a TinysenseError of one
    line (or a header line and one line per problem), never another exception."""
    src = (CONF / f"{name}.tflite").read_bytes()
    rng = np.random.default_rng(zlib_seed(name))
    for _ in range(80):
        b = bytearray(src)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(8, len(b)))] = int(rng.integers(0, 256))
        try:
            convert_model(bytes(b))
        except TinysenseError as exc:
            lines = str(exc).split("\n")
            if len(lines) > 1:
                assert lines[0].endswith("problems the engine does not support:")
                assert len(lines) == 1 + len(exc.problems)
                assert all(ln.startswith("  ") and "\n" not in ln for ln in lines[1:])


def zlib_seed(name: str) -> int:
    import zlib
    return zlib.crc32(name.encode())


def _patched_many(path: Path, opcodes: dict[int, int], tensor_types: dict[int, int]) -> bytes:
    """A real model with operator codes and tensor types overwritten in place."""
    buf = bytearray(path.read_bytes())
    m = tflite.Model.GetRootAsModel(buf, 0)
    for k, code in opcodes.items():
        oc = m.OperatorCodes(k)
        pos = oc._tab.Pos
        assert oc._tab.Offset(4), "deprecated_builtin_code stored in the flatbuffer"
        buf[pos + oc._tab.Offset(4)] = code
        if oc._tab.Offset(10):                            # builtin_code (newer schema only)
            struct.pack_into("<i", buf, pos + oc._tab.Offset(10), code)
    sg = m.Subgraphs(0)
    for i, ttype in tensor_types.items():
        t = sg.Tensors(i)
        assert t._tab.Offset(6), "tensor type stored in the flatbuffer"
        buf[t._tab.Pos + t._tab.Offset(6)] = ttype
    return bytes(buf)


def _activation_between_ops(path: Path) -> tuple[int, int]:
    """(tensor, index of the op that reads it) for the first op output another op reads."""
    m = read_model(path)
    outs = {o: op.index for op in m.operators for o in op.outputs}
    for op in m.operators:
        for i in op.inputs:
            if i in outs and m.tensors[i].data is None and m.tensors[i].dtype == "int8":
                return i, op.index
    raise AssertionError("no intermediate tensor")


def test_unsupported_model_lists_every_op_and_dtype_at_once():
    model = CONF / "tflm_micro_speech_quantized.tflite"
    m = read_model(model)
    assert len({op.name for op in m.operators}) >= 2
    t, reader = _activation_between_ops(model)
    data = _patched_many(model, {0: 47, 1: 44}, {t: 7})        # EXP, LSTM; tensor -> INT16
    with pytest.raises(TinysenseError) as exc:
        convert_model(data)
    probs = exc.value.problems
    m2 = read_model(data)
    whys = [(p["index"], p["op"], p["why"]) for p in probs]
    ops_named = {p["op"] for p in probs if p["why"].startswith("op not supported")}
    assert {"EXP", "UNIDIRECTIONAL_SEQUENCE_LSTM"} <= ops_named, whys
    exp_ops = [op.index for op in m2.operators if op.name in ("EXP", "UNIDIRECTIONAL_SEQUENCE_LSTM")]
    assert sorted(p["index"] for p in probs if p["why"].startswith("op not supported")) == exp_ops
    assert any(p["why"].startswith("dtype int16 not supported") and f"tensor {t}" in p["why"]
               for p in probs), whys
    lines = str(exc.value).split("\n")
    assert "problems the engine does not support" in lines[0]
    assert len(lines) == 1 + len(probs) and all(ln.startswith("  op ") for ln in lines[1:])


def test_cli_convert_unsupported_lists_problems_as_json(tmp_path):
    model = tmp_path / "bad.tflite"
    model.write_bytes(_patched_many(CONF / "tflm_micro_speech_quantized.tflite",
                                    {0: 47, 1: 44}, {}))
    proc = subprocess.run([sys.executable, "-m", "tinysense", "convert", str(model),
                           "-o", str(tmp_path / "bad.tsm"), "--json", "-"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["model"] == "bad.tflite" and len(doc["problems"]) >= 2
    assert {p["op"] for p in doc["problems"]} >= {"EXP", "UNIDIRECTIONAL_SEQUENCE_LSTM"}
    err = proc.stderr.strip().split("\n")
    assert err[0].startswith("tinysense: error: bad.tflite: ") and \
        len(err) == 1 + len(doc["problems"])
    assert not (tmp_path / "bad.tsm").exists()
