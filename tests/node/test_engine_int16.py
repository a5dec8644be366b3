"""int16 ends beyond the random tests: QUANTIZE's multiplier as the pinned tflite-micro computes
it (double(s_in) / double(s_out), scales chosen so a float32 quotient gives other bytes), and
every int16 code through each int16 QUANTIZE pair, on both unix ports, against tflite-micro."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import UNIX_KINDS, unix_kind_exe
from engine_helpers import run_engine_full
from tflite_build import T, build
from tinysense.convert import convert_model
from tinysense.convert import fixedpoint as fp
from tinysense.convert.ops_quant import requant_multiplier

pytestmark = pytest.mark.node
f32 = np.float32
RAMP16 = np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)
RANGES = {"int8": (-128, 127), "int16": (-32768, 32767)}


def _reference(buf: bytes, x: np.ndarray) -> bytes:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(buf, arena_size=1 << 21)
    it.set_input(x, 0)
    it.invoke()
    return it.get_output(0).tobytes()


def _quantize(dt_in, dt_out, s_in, s_out, zp_in=0, zp_out=0, shape=(256, 256)) -> bytes:
    return build("QUANTIZE", [T(shape, dt_in, scale=s_in, zero_point=zp_in),
                              T(shape, dt_out, scale=s_out, zero_point=zp_out)], [0], [1])


def _float_differs():
    """float32 scales whose quotient rounds to another multiplier in float32 than in double,
    and int16 -> int16 outputs over all codes that the two multipliers make differ."""
    rng = np.random.default_rng(3)
    lo, hi = RANGES["int16"]
    codes = np.arange(lo, hi + 1)
    while True:
        s_in = float(f32(10 ** rng.uniform(-4, -2)))
        s_out = float(f32(s_in * 10 ** rng.uniform(-0.3, 0.3)))
        md, sd = requant_multiplier(s_in, s_out)
        mf, sf = fp.quantize_multiplier(float(f32(s_in) / f32(s_out)))
        if (md, sd) == (mf, sf):
            continue
        diff = [int(x) for x in codes[::7]
                if fp.mbqm(int(x), md, sd) != fp.mbqm(int(x), mf, sf)
                and lo <= fp.mbqm(int(x), md, sd) <= hi]
        if diff:
            return s_in, s_out, (md, sd), (mf, sf)


def _engine(buf: bytes, x: np.ndarray, unix: str, narrow: bool = False) -> bytes:
    run = run_engine_full(convert_model(buf).package, [x.tobytes()], narrow=narrow,
                          exe=unix_kind_exe(unix))
    assert run.alloc == 0
    return run.outputs[0]


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_requant_multiplier_is_double(unix):
    s_in, s_out, (md, sd), (mf, sf) = _float_differs()
    buf = _quantize("int16", "int16", s_in, s_out)
    ref = _reference(buf, RAMP16)
    xs = RAMP16.reshape(-1).astype(np.int64)

    def want(m, s):
        return np.array([min(32767, max(-32768, fp.mbqm(int(x), m, s))) for x in xs],
                        "<i2").tobytes()
    assert ref == want(md, sd), "tflite-micro's QUANTIZE is not the double quotient's"
    assert want(mf, sf) != ref      # a float32 quotient would give other bytes
    assert _engine(buf, RAMP16, unix) == ref


PAIRS = [("int16", "int8", 6e-4, 0.059, 0, -128), ("int16", "int16", 3e-5, 7e-4, -5, 1000),
         ("int16", "int32", 1.5e-5, 3e-5, -32768, 0), ("int16", "int32", 2e-3, 1e-6, 7, -3),
         ("int16", "int8", 1e-4, 1e-5, 100, 3),
         # shift 15 and |x - zp| > 2^15: products past 2^30, the requantization's rare branch
         ("int16", "int32", 1e-2, 5e-7, -200, 0)]


@pytest.mark.parametrize("unix", UNIX_KINDS)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}-{p[2]:g}-{p[3]:g}")
def test_every_int16_code(pair, unix):
    """All 65,536 input codes; the x64 port also on its forced 32-bit multiply path."""
    buf = _quantize(*pair)
    ref = _reference(buf, RAMP16)
    assert len(set(np.frombuffer(ref, pair[1]).tolist())) > 2
    assert _engine(buf, RAMP16, unix) == ref
    if unix == "x64":
        assert _engine(buf, RAMP16, unix, narrow=True) == ref


def test_softmax_luts_are_the_c_librarys():
    """The converter's exp LUT uses the correctly rounded exp; SoftmaxPrepare calls the C
    library's expf (float): equal tables where the C library can be loaded here."""
    import ctypes
    import ctypes.util

    from tinysense.convert import ops_quant

    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to compare with")
    libm = ctypes.CDLL(name)
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]

    def c_expf(x):
        return f32(libm.expf(float(x)))
    assert ops_quant.gen_lut16(c_expf, -10.0, 0.0) == ops_quant.exp_lut16()
    lut = ops_quant.exp_lut16()
    assert len(lut) == ops_quant.LUT16_SIZE and lut[0] in (1, 2) and lut[-1] == 32767


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_softmax_int16_every_difference(unix):
    """Rows [x, 0] for every int16 code x (and beta 1, an input scale near the LUT's own):
    every exp LUT segment and offset, and the reciprocal over its range."""
    x = np.stack([RAMP16.reshape(-1), np.zeros(65536, np.int16)], axis=1)
    buf = build("SOFTMAX", [T(x.shape, "int16", scale=2e-4), T(x.shape, "int16",
                                                               scale=1 / 32768)], [0], [1],
                ("SoftmaxOptions", {"Beta": 1.0}))
    ref = _reference(buf, x)
    assert len(set(np.frombuffer(ref, np.int16).tolist())) > 1000
    assert _engine(buf, x, unix) == ref
