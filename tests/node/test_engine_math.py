"""Engine integer math on the MicroPython unix port vs the CPython oracle (fixedpoint.py).

The conv kernel's requantization is checked on adversarial multipliers, shifts and
accumulators in both the 64-bit path and the 32-bit limb emulation the ESP32 runs: on the
32-bit x86 build (its only path) and on the 64-bit PyPI build (both paths).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import MULTIPLY_PATHS, UNIX_KINDS, micropython_env, unix_kind_exe
from engine_helpers import REPO, micropython_exe
from tinysense.convert import fixedpoint as fp
from tinysense.convert.ops import _conv_blobs

pytestmark = pytest.mark.node
MP = Path(__file__).resolve().parent / "engine_mp"
I32_EDGES = [fp.INT32_MIN, fp.INT32_MIN + 1, -(1 << 30), -65537, -32768, -1, 0, 1, 32767,
             1 << 15, (1 << 30) - 1, 1 << 30, fp.INT32_MAX - 1, fp.INT32_MAX]


def _mp(args, cwd=None, kind=None) -> str:
    env = micropython_env(str(REPO / "firmware"))
    exe = unix_kind_exe(kind) if kind else micropython_exe()
    proc = subprocess.run([exe, "-X", "heapsize=4M", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("kind", UNIX_KINDS)
def test_srdhm_matches_gemmlowp_on_edges_and_random(kind):
    rng = np.random.default_rng(1)
    pairs = [(a, b) for a in I32_EDGES for b in I32_EDGES]
    pairs += [tuple(int(v) for v in rng.integers(fp.INT32_MIN, fp.INT32_MAX, 2,
                                                 endpoint=True)) for _ in range(400)]
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "pairs.bin"
        f.write_bytes(np.array(pairs, dtype="<i4").tobytes())
        got = [int(v) for v in _mp([MP / "srdhm_cases.py", f], kind=kind).split()]
    want = [fp.srdhm(a, b) for a, b in pairs]
    bad = [(p, g, w) for p, g, w in zip(pairs, got, want) if g != w]
    assert not bad, bad[:5]


def _fc_case(seed: int):
    """A fully-connected layer with adversarial per-channel multipliers and shifts."""
    rng = np.random.default_rng(seed)
    k, units = 7 + seed % 13, 24
    w = rng.integers(-127, 128, (units, k)).astype(np.int8)
    bias = rng.integers(-(1 << 16), 1 << 16, units)
    zp_in = int(rng.integers(-128, 128))
    # 2^30 and 3*2^29 make exact rounding ties (the nudge and RDBPOT threshold matter)
    mults = [0, 1, 1 << 30, fp.INT32_MAX, (1 << 31) - 2, 1 << 30, 1 << 30, 3 << 29] + \
        [int(v) for v in rng.integers(1 << 30, 1 << 31, units - 8)]
    # shifts around -14 keep most outputs inside int8, where rounding differences show
    shifts = [int(v) for v in rng.integers(-20, -8, units)]
    shifts[:8] = [-31, -1, -14, 1, 5, 0, 0, -1]
    # channels 5-7: tiny accumulators (|acc| < 512), so SRDHM's ties reach the output
    w[5:8] = 0
    w[5, 0], w[6, 0], w[7, 0], w[7, 1] = 1, -1, 2, -1
    bias[5:8] = (0, 1, -3)
    # channels 8-11: accumulators beyond +-2^30 (the third 15-bit limb), scaled into range
    bias[8:12] = ((1 << 31) - 700000, -(1 << 31) + 700000, (1 << 30) + 12345,
                  -(1 << 30) - 54321)
    shifts[8:12] = [-25, -25, -24, -24]
    zp_out = int(rng.integers(-128, 128))
    amin, amax = (-128, 127) if seed < 2 else sorted(int(v) for v in rng.integers(-128, 128, 2))
    rows = 8
    x = rng.integers(-128, 128, (rows, k)).astype(np.int8)
    x[0] = -128
    x[1] = 127
    return k, units, w, bias, zp_in, mults, shifts, zp_out, amin, amax, rows, x


@pytest.mark.parametrize(("kind", "narrow"), MULTIPLY_PATHS)
@pytest.mark.parametrize("seed", range(4))
def test_conv_kernel_requantize_exact(seed, kind, narrow):
    k, units, w, bias, zp_in, mults, shifts, zp_out, amin, amax, rows, x = _fc_case(seed)
    wb, cb, mb, sb, kk, k4 = _conv_blobs(None, w, bias, zp_in, mults, shifts)
    const = b""
    offs = []
    for blob in (wb, cb, mb, sb):
        offs.append(len(const))
        const += blob + b"\0" * (-len(blob) % 4)
    out_off = (rows * k + 3) & ~3
    arena = bytearray(out_off + rows * units + 16)
    arena[:rows * k] = x.tobytes()
    params = [0, out_off, 1, rows, 1, k, rows, 1, units, 1, 1, 1, 1, 1, 1, 0, 0, offs[0], k4,
              offs[1], offs[2], offs[3], 128 + zp_in, zp_out, amin, amax, k]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "arena.bin").write_bytes(bytes(arena))
        (d / "const.bin").write_bytes(const)
        (d / "params.bin").write_bytes(np.array(params, "<i4").tobytes())
        (d / "scratch").write_text(str(k4 + 8))
        out = bytes.fromhex(_mp([MP / "run_kernel.py", "kconv.conv", d]
                                + (["narrow"] if narrow else []), kind=kind).strip())
    got = np.frombuffer(out[out_off:out_off + rows * units], np.int8).reshape(rows, units)
    assert out[:rows * k] == x.tobytes(), "the kernel must restore its input"
    inside = 0
    for r in range(rows):
        for o in range(units):
            acc = int(bias[o]) + sum(int(w[o, j]) * (int(x[r, j]) - zp_in) for j in range(k))
            want = min(amax, max(amin, fp.mbqm(acc, mults[o], shifts[o]) + zp_out))
            assert got[r, o] == want, (r, o, acc, mults[o], shifts[o])
            inside += amin < want < amax
    if seed < 2:
        assert inside > rows * units // 3, "too few unclamped outputs to test the rounding"


_REQUANT_RUNNER = '''\
import sys
from array import array
import micropython


@micropython.viper
def run(p: ptr32, n: int, wide: int, out: ptr32):
    one = 1
    sb = one << 31
    h30 = one << 30
    zo = 0
    i = 0
    while i < n:
        a = (p[3 * i] ^ sb) - sb
        m = p[3 * i + 1]
        s = (p[3 * i + 2] ^ sb) - sb
BLOCK
        out[i] = t
        i += 1


with open(sys.argv[1], "rb") as f:
    cases = array("i", f.read())
n = len(cases) // 3
out = array("i", [0] * n)
run(cases, n, int(sys.argv[2]), out)
print(" ".join(str(v) for v in out))
'''


def _requant_cases() -> list[tuple[int, int, int]]:
    """(acc, multiplier, shift): every edge of the block's paths, ties and random triples.

    The fast path takes -2^30 <= a < 2^30 (a after the left shift), the limb path the rest;
    accumulators on both sides of that line and of the 15/16-bit limb splits, with the
    multipliers at the ends of [2^30, 2^31) and at the limb splits of m. Left shifts only
    where acc * 2^shift stays an int32 (beyond that tflite-micro's C overflows)."""
    edges = [fp.INT32_MIN, fp.INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1,
             -(1 << 29), -65537, -65536, -32769, -32768, -32767, -1, 0, 1, 32767, 32768,
             65535, 65536, (1 << 29), (1 << 30) - 1, 1 << 30, (1 << 30) + 1,
             fp.INT32_MAX - 1, fp.INT32_MAX]
    mults = [0, 1, 0xFFFF, 0x10000, 1 << 30, (1 << 30) + 1, (1 << 30) + 0xFFFF, 3 << 29,
             (1 << 31) - 0x10000, (1 << 31) - 2, fp.INT32_MAX]
    shifts = [-31, -30, -24, -14, -2, -1, 0, 1, 2, 5]
    cases = [(a, m, s) for a in edges for m in mults for s in shifts
             if fp.INT32_MIN <= a * (1 << max(s, 0)) <= fp.INT32_MAX]
    # ties: a*m + 2^30 exactly divisible by 2^31 and RDBPOT's half-way remainders
    cases += [(a, 1 << 30, s) for a in (-3, -1, 1, 3, -(1 << 20) - 1, (1 << 20) + 1)
              for s in (-1, -2, -3)]
    rng = np.random.default_rng(7)
    for _ in range(3000):
        bits = int(rng.integers(1, 32))
        a = int(rng.integers(-(1 << bits), 1 << bits))
        a = max(fp.INT32_MIN, min(fp.INT32_MAX, a))
        s = int(rng.integers(-31, 3))
        if not fp.INT32_MIN <= a * (1 << max(s, 0)) <= fp.INT32_MAX:
            s = 0
        cases.append((a, int(rng.integers(1 << 30, 1 << 31)), s))
    return cases


@pytest.mark.parametrize(("kind", "narrow"), MULTIPLY_PATHS)
def test_requant_block_matches_tflite_math(kind, narrow):
    """The viper requantization block (the text kconv.py carries; test_boundary keeps the
    other copies identical) against MultiplyByQuantizedMultiplier on every path edge."""
    import re
    import textwrap
    text = (REPO / "firmware" / "tsnode" / "engine" / "kconv.py").read_text()
    block = re.search(r"^( *)# --- requant begin ---\n.*?^\1# --- requant end ---$",
                      text, re.M | re.S).group(0)
    runner = _REQUANT_RUNNER.replace("BLOCK", textwrap.indent(textwrap.dedent(block), " " * 8))
    cases = _requant_cases()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "requant_run.py").write_text(runner)
        (d / "cases.bin").write_bytes(np.array(cases, "<i4").tobytes())
        got = [int(v) for v in _mp([d / "requant_run.py", d / "cases.bin",
                                    0 if narrow or kind == "x86" else 1], kind=kind).split()]
    want = [fp.mbqm(a, m, s) for a, m, s in cases]
    assert len(got) == len(cases)
    bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(cases)} differ, first: {bad[:5]}"
