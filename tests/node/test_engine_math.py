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
