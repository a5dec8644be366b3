"""SVDF beyond the random tests: PrepareSvdf's two scales as the pinned tflite-micro computes
them (in double, not the float32 the C source reads as: models chosen so the two give other
bytes), a missing bias (which
the pinned tflite-micro crashes on) as a zero bias, and the state: reset at load and by
Model.reset(), carried across inferences, on both unix ports."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import KERNELS, UNIX_KINDS, natmod_dir, unix_kind_exe
from engine_helpers import REPO, compare_model, run_engine_full
from test_engine_random_ops import svdf_model
from tflite_build import T, build, build_graph
from tinysense.convert import convert_model
from tinysense.convert import fixedpoint as fp
from tinysense.convert.ops_svdf import effective_scales

pytestmark = pytest.mark.node
f32 = np.float32


def _reference(buf: bytes, vectors: list[np.ndarray]) -> list[bytes]:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(buf)
    out = []
    for x in vectors:
        it.set_input(x, 0)
        it.invoke()
        out.append(it.get_output(0).tobytes())
    return out


def _svdf(n_in, units, mem, s_in, s_wf, s_st, s_wt, s_out, wf, wt, bias, dt="int16",
          zp_in=0):
    tensors = [T((1, n_in), scale=s_in, zero_point=zp_in),
               T((units, n_in), scale=s_wf, data=np.asarray(wf, np.int8).reshape(units, n_in)),
               T((units, mem), dt, scale=s_wt, data=np.asarray(wt, dt).reshape(units, mem)),
               T((units,), "int32", scale=float(f32(f32(s_st) * f32(s_wt))),
                 data=np.asarray(bias, np.int32)),
               T((1, units * mem), dt, scale=s_st, variable=True),
               T((1, units), scale=s_out)]
    return build("SVDF", tensors, [0, 1, 2, 3, 4], [5], ("SVDFOptions", {"Rank": 1}))


def _as_float32(a, b, c) -> float:
    """a * b / c in float32 arithmetic, as svdf_common.cc's expressions read."""
    return float(f32(f32(f32(a) * f32(b)) / f32(c)))


def _multipliers(e_double: float, e_float: float):
    return fp.quantize_multiplier(e_double), fp.quantize_multiplier(e_float)


def _scale1_case():
    """Scales and a feature dot product D where effective_scale_1 in double and in float32
    round D to other state values; the output reads the state back exactly (second scale
    1, bias minus the double prediction: 0 under double, +-1 under float32)."""
    rng = np.random.default_rng(1)
    while True:
        s_in, s_wf = float(f32(10 ** rng.uniform(-2, 0))), float(f32(10 ** rng.uniform(-2, -1)))
        s_st = float(f32(s_in * s_wf / 1e-3))
        e_d, e2 = effective_scales(s_in, s_wf, s_st, 1.0, s_st)
        assert e2 == 1.0
        (md, sd), (mf, sf) = _multipliers(e_d, _as_float32(s_in, s_wf, s_st))
        for k in range(32000, 32700):
            centre = int((k + 0.5) / e_d)
            for d in range(centre - 3, centre + 4):
                a, b = fp.mbqm(d, md, sd), fp.mbqm(d, mf, sf)
                if a != b and max(abs(a), abs(b)) <= 32767:
                    return s_in, s_wf, s_st, d, a, b


def test_effective_scale_1_is_double():
    s_in, s_wf, s_st, d, state_d, state_f = _scale1_case()
    q = d // 16129                      # d = 16129 q + 127 x1 + x2: weights 127 and a 1
    x1, x2 = divmod(d - 16129 * q, 127)
    n_in = q + 2
    wf = [127] * (q + 1) + [1]
    x = np.array([[127] * q + [x1, x2]], np.int8)
    buf = _svdf(n_in, 1, 1, s_in, s_wf, s_st, 1.0, s_st, wf, [1], [-state_d])
    ref = _reference(buf, [x, x])
    assert ref == [b"\0", b"\0"], "tflite-micro's state is not the double scale's"
    assert state_f != state_d   # float32 would give other bytes
    for kind in UNIX_KINDS:
        run = run_engine_full(convert_model(buf).package, [x.tobytes()] * 2,
                              exe=unix_kind_exe(kind))
        assert run.outputs == ref, kind


def test_effective_scale_2_is_double():
    """Zero input and weights: the state stays 0 and each unit's output is its bias through
    effective_scale_2; biases at the rounding boundaries where double and float32 differ."""
    rng = np.random.default_rng(2)
    while True:
        s_st, s_wt = float(f32(10 ** rng.uniform(-4, -2))), float(f32(10 ** rng.uniform(-4, -2)))
        s_out = float(f32(s_st * s_wt / 10 ** rng.uniform(-8, -6)))
        _e1, e_d = effective_scales(1.0, 1.0, s_st, s_wt, s_out)
        (md, sd), (mf, sf) = _multipliers(e_d, _as_float32(s_st, s_wt, s_out))
        biases = []
        for k in range(20, 127):
            centre = int((k + 0.5) / e_d)
            biases += [v for v in range(centre - 200, centre + 200)
                       if v < 2 ** 31 and fp.mbqm(v, mf, sf) != fp.mbqm(v, md, sd)][:1]
        if len(biases) >= 8:
            break
    units = len(biases)
    buf = _svdf(1, units, 1, 0.01, 0.01, s_st, s_wt, s_out, [0] * units, [1] * units, biases)
    x = np.zeros((1, 1), np.int8)
    ref = _reference(buf, [x])[0]
    want_f = bytes(max(-128, min(127, fp.mbqm(b, mf, sf))) & 0xFF for b in biases)
    want_d = bytes(max(-128, min(127, fp.mbqm(b, md, sd))) & 0xFF for b in biases)
    assert ref == want_d and want_f != want_d
    for kind in UNIX_KINDS:
        run = run_engine_full(convert_model(buf).package, [x.tobytes()],
                              exe=unix_kind_exe(kind))
        assert run.outputs == [ref], kind


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_no_bias_is_a_zero_bias(unix, tmp_path):
    """Without a bias the pinned tflite-micro's Prepare reads the absent tensor's scale and
    crashes; its Eval starts the sums at 0. The engine runs the model with the bias
    absent as tflite-micro runs the same model with an all-zero bias, over 8 inferences."""
    with_zero = svdf_model(np.random.default_rng(7), bias="zero")
    res = convert_model(svdf_model(np.random.default_rng(7), bias=False))
    shape = tuple(res.report.inputs[0]["shape"])
    xs = [np.random.default_rng(k).integers(-128, 128, shape).astype(np.int8) for k in range(8)]
    ref = _reference(with_zero, xs)
    assert len(set(ref)) > 1
    run = run_engine_full(res.package, [x.tobytes() for x in xs], exe=unix_kind_exe(unix))
    assert run.outputs == ref


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_state_is_reset_at_load_and_by_reset(unix, tmp_path):
    """An int8 state with a zero point: the engine fills it with the zero point at load and
    in Model.reset(), as tflite-micro's ResetVariableTensors; after a reset the same inputs
    give the first run's bytes again (the bytes differ run to run: the state is carried)."""
    import subprocess

    from conftest import micropython_env

    buf = svdf_model(np.random.default_rng(99), s16=False)
    res = convert_model(buf)
    st = next(t for t in res.report.tensors if t["state"])
    assert st["dtype"] == "int8" and res.report.state_bytes == st["nbytes"] > 0
    shape = tuple(res.report.inputs[0]["shape"])
    xs = [np.random.default_rng(k).integers(-128, 128, shape).astype(np.int8) for k in range(4)]
    ref = _reference(buf, xs)
    assert len(set(ref)) > 1
    pkg = tmp_path / "m.tsm"
    pkg.write_bytes(res.package)
    script = tmp_path / "reset.py"
    script.write_text(
        "import sys\nfrom binascii import hexlify, unhexlify\n"
        "import tsnode.engine.model as M\n"
        f"m = M.Model(open({str(pkg)!r}, 'rb').read())\n"
        f"xs = {[x.tobytes().hex() for x in xs]!r}\n"
        "for r in range(2):\n"
        "    for x in xs:\n"
        "        m.set_inputs(unhexlify(x))\n"
        "        m.run()\n"
        "        print(hexlify(m.output_bytes()).decode())\n"
        "    m.reset()\n")
    proc = subprocess.run([unix_kind_exe(unix), str(script)], capture_output=True, text=True,
                          env=micropython_env([str(REPO / "firmware")]), timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = [bytes.fromhex(line) for line in proc.stdout.split()]
    assert got == ref + ref


def test_random_svdf_many_inferences(tmp_path):
    """One random model over 3 fixed and 12 random inputs in a row (the state holds up to 9
    of them), on the 64-bit unix port."""
    import zlib

    rng = np.random.default_rng([zlib.crc32(b"svdf-long"), 0])
    path = tmp_path / "svdf_long.tflite"
    path.write_bytes(svdf_model(rng))
    mismatches, alloc, n = compare_model(path, n_random=12, kind="x64")
    assert not mismatches and alloc == 0 and n == 15


KEYWORD = REPO / "tests" / "conformance"


def int8_part(path) -> bytes:
    """tflite-micro's keyword_scrambled model (tests/conformance/SOURCES.md) between its int16
    ends: from the int8 output of its first QUANTIZE to the int8 output of its last
    FULLY_CONNECTED (7 SVDF and 5 FULLY_CONNECTED ops, weights and scales as published),
    written again with tflite_build. Every SVDF's output is a model output too: the last
    layers saturate on most inputs (the weights are scrambled), the SVDF outputs do not."""
    from tinysense.convert.reader import read_model

    m = read_model(path)
    body = [op for op in m.operators if op.name in ("SVDF", "FULLY_CONNECTED")]
    used = sorted({i for op in body for i in op.inputs + op.outputs if i >= 0})
    new = {old: k for k, old in enumerate(used)}
    tensors = [T(m.tensors[i].shape, m.tensors[i].dtype, scale=list(m.tensors[i].scales),
                 zero_point=[int(z) for z in m.tensors[i].zero_points],
                 qdim=m.tensors[i].quantized_dimension, data=m.tensors[i].data,
                 variable=m.tensors[i].variable) for i in used]
    ops = []
    for op in body:
        o = op.options
        opts = ("SVDFOptions", {"Rank": o.Rank(), "FusedActivationFunction":
                                o.FusedActivationFunction()}) if op.name == "SVDF" else (
            "FullyConnectedOptions", {"FusedActivationFunction": o.FusedActivationFunction()})
        ops.append((op.name, [new[i] for i in op.inputs], [new[i] for i in op.outputs], opts))
    outs = [new[op.outputs[0]] for op in body if op.name == "SVDF"] + [new[body[-1].outputs[0]]]
    return build_graph(tensors, ops, [new[body[0].inputs[0]]], outs)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("unix", UNIX_KINDS)
@pytest.mark.parametrize("part", ["int8", "whole"])
@pytest.mark.parametrize("model", ["keyword_scrambled", "keyword_scrambled_8bit"])
def test_keyword_scrambled_states_are_byte_exact(model, part, unix, kernels, tmp_path):
    """int16 state and weights_time (keyword_scrambled), int8 with zero points (_8bit): over
    8 inferences in a row every output and every one of the 7 state tensors equal
    tflite-micro's byte for byte, with the viper and the native kernels; for the int8 part
    (outputs of every SVDF) and for the whole model (int16 input, QUANTIZE, SOFTMAX to int16,
    QUANTIZE to int32: its one output). The states are compared because the scrambled
    weights saturate every layer's output whatever the input; the states hold the input's
    traces (the conformance checks compare the whole model's outputs only)."""
    import subprocess

    from conftest import micropython_env
    from tflite_micro.python.tflite_micro import runtime

    whole = part == "whole"
    buf = (KEYWORD / f"{model}.tflite").read_bytes() if whole else \
        int8_part(KEYWORD / f"{model}.tflite")
    res = convert_model(buf)
    assert [op["name"] for op in res.report.ops].count("SVDF") == 7
    assert res.report.state_bytes == (4 * 512 + 3 * 1024) * (2 if "8bit" not in model else 1)
    states = [t["index"] for t in res.report.tensors if t["state"]]
    rng = np.random.default_rng(3)
    # whole: int16 codes that the first QUANTIZE (s 6.25e-4 -> 0.0592, zp -128) maps over
    # the int8 range and a little past both ends
    xs = [rng.integers(-3000, 27000, (1, 96)).astype(np.int16) if whole else
          rng.integers(-128, 128, (1, 96)).astype(np.int8) for _ in range(8)]
    it = runtime.Interpreter.from_bytes(
        buf, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    ref, seen = [], set()
    for x in xs:
        it.set_input(x, 0)
        it.invoke()
        st = [np.asarray(it.GetTensor(i, 0)["tensor_data"]).tobytes() for i in states]
        seen |= {bytes(b) for b in st}
        ref.append(b"".join(np.asarray(it.get_output(k)).tobytes()
                            for k in range(len(res.report.outputs)))
                   + b"".join(st))
    assert len(seen) >= 7 * len(xs) - 2   # the states change with every input
    pkg = tmp_path / "m.tsm"
    pkg.write_bytes(res.package)
    script = tmp_path / "states.py"
    script.write_text(
        "from binascii import hexlify, unhexlify\n"
        "import tsnode.engine.model as M\n"
        f"m = M.Model(open({str(pkg)!r}, 'rb').read(), kernels={kernels!r})\n"
        f"assert m.kernels == {kernels!r}\n"
        f"for x in {[x.tobytes().hex() for x in xs]!r}:\n"
        "    m.set_inputs(unhexlify(x))\n"
        "    m.run()\n"
        f"    print(hexlify(m.output_bytes() + b''.join(bytes(m.tensor_view(i)) "
        f"for i in {states!r})).decode())\n")
    path = [str(REPO / "firmware")] + [str(natmod_dir(unix))] * (kernels == "native")
    proc = subprocess.run([unix_kind_exe(unix), str(script)], capture_output=True, text=True,
                          env=micropython_env(path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [bytes.fromhex(line) for line in proc.stdout.split()] == ref
