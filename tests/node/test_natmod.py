"""The native-code kernels (natmod/tsnn/, `make natmods`): byte-for-byte the viper kernels.

tsnn.mpy for each unix port's arch (x86: the 32-bit build, the ESP32's int width; x64: the
64-bit PyPI build) is loaded beside the engine and runs next to the viper kernel on every
CONV_2D / FULLY_CONNECTED / DEPTHWISE_CONV_2D op of the op-zoo models and of random
single-op models (tests/node/test_engine_random_ops.py's makers, plus wider shapes): the whole
arena after each op must equal the viper kernel's (output, restored input), with the
constants passed as a buffer and as an int address (streaming), and no call may allocate.
The parameter word indices the C code uses must be those of firmware/tsnode/engine/k*.py.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import NATMOD, UNIX_KINDS, micropython_env, natmod_dir, unix_kind_exe
from engine_helpers import REPO, make_vectors
from test_engine_random_ops import MAKERS
from tflite_build import T, build

from tinysense.convert import convert_model

pytestmark = pytest.mark.node

OPS = REPO / "tests" / "ops"
ZOO = sorted(p for p in OPS.glob("*.tflite")
             if p.name.startswith(("conv_2d", "fully_connected", "depthwise_conv_2d",
                                   "mini_net", "add", "mul", "average_pool_2d",
                                   "max_pool_2d", "mean", "softmax", "svdf"))
             and "int16" not in p.name)   # SOFTMAX_OUT16 / _LUT16: no native kernel
# the conformance models (the unix ports only: on the RV32 board they take minutes)
CONFORMANCE = sorted((REPO / "tests" / "conformance").glob("*.tflite"))
SEEDS = 24


def test_parameter_words_match_the_kernels():
    """build/natmod/tsnn_params.h (compiled into every tsnn.mpy) is what the kernels'
    `_NAME = const(N)` lines give today, and each tsnn.mpy was built after it."""
    sys.path.insert(0, str(REPO / "natmod" / "tsnn"))
    try:
        import gen_params
    finally:
        sys.path.pop(0)
    from tinysense.formats import node_consts

    header = NATMOD / "tsnn_params.h"
    if not header.exists():
        natmod_dir("x64")   # skips or fails with the reason
    assert header.read_text() == gen_params.header(), \
        "build/natmod/tsnn_params.h differs from firmware/tsnode/engine/k*.py: make natmods"
    text = header.read_text()
    for mod, prefix in (("kconv", "_CONV_"), ("kdw", "_DW_")):
        consts = {k: v for k, v in node_consts(f"tsnode/engine/{mod}.py").items()
                  if k.startswith(prefix)}
        assert len(consts) >= 27
        for name, value in consts.items():
            assert f"#define P{name} {value}\n" in text
    for mpy in NATMOD.glob("*/tsnn.mpy"):
        assert mpy.stat().st_mtime >= header.stat().st_mtime, f"{mpy} is older than the header"


def _wide_conv(rng, depthwise: bool) -> bytes:
    """Wider shapes than the op makers: channels in fours (and not), more outputs."""
    h, w = (int(v) for v in rng.integers(3, 13, 2))
    kh, kw = (int(v) for v in rng.choice([1, 3, 5], 2))
    sh, sw = (int(v) for v in rng.integers(1, 3, 2))
    cin = int(rng.choice([3, 4, 8, 13, 16, 32]))
    mult = 1 if not depthwise else int(rng.choice([1, 1, 2]))
    cout = cin * mult if depthwise else int(rng.integers(1, 40))
    same = bool(rng.integers(0, 2)) or kh > h or kw > w
    oh, ow = (h + sh - 1) // sh, (w + sw - 1) // sw
    if not same:
        oh, ow = (h - kh + sh) // sh, (w - kw + sw) // sw
    s_in = float(10 ** rng.uniform(-3, 0))
    s_w = 10 ** rng.uniform(-3, -1, cout)
    s_out = float(s_in * s_w.max() / 10 ** rng.uniform(-4, 0.6))
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    wshape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    tensors = [T((1, h, w, cin), scale=s_in, zero_point=zp_in),
               T(wshape, scale=list(s_w), zero_point=[0] * cout, qdim=3 if depthwise else 0,
                 data=rng.integers(-127, 128, wshape).astype(np.int8)),
               T((cout,), "int32", scale=list(s_in * s_w), zero_point=[0] * cout,
                 data=rng.integers(-(1 << 16), 1 << 16, cout).astype(np.int32)),
               T((1, oh, ow, cout), scale=s_out, zero_point=zp_out)]
    fields = {"Padding": 0 if same else 1, "StrideW": sw, "StrideH": sh,
              "DilationWFactor": 1, "DilationHFactor": 1,
              "FusedActivationFunction": int(rng.choice([0, 1, 3]))}
    if depthwise:
        fields["DepthMultiplier"] = mult
        return build("DEPTHWISE_CONV_2D", tensors, [0, 1, 2], [3],
                     ("DepthwiseConv2DOptions", fields))
    return build("CONV_2D", tensors, [0, 1, 2], [3], ("Conv2DOptions", fields))


def _models(tmp: Path) -> list[tuple[str, bytes]]:
    models = [(p.stem, p.read_bytes()) for p in ZOO + CONFORMANCE]
    for kind in ("conv", "fc", "depthwise", "add", "mul", "avgpool", "maxpool", "mean",
                 "softmax", "svdf"):
        for seed in range(SEEDS):
            rng = np.random.default_rng([zlib.crc32(kind.encode()), seed])
            models.append((f"{kind}_{seed}", MAKERS[kind](rng)))
    for seed in range(SEEDS):
        rng = np.random.default_rng([zlib.crc32(b"natmod-wide"), seed])
        models.append((f"wide_conv_{seed}", _wide_conv(rng, False)))
        models.append((f"wide_dw_{seed}", _wide_conv(rng, True)))
    return models


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    """Every model converted, with its vectors: a LIST file for compare_kernels.py."""
    tmp = tmp_path_factory.mktemp("natmod")
    lines = []
    for k, (name, tfl) in enumerate(_models(tmp)):
        src = tmp / f"{name}.tflite"
        src.write_bytes(tfl)
        result = convert_model(src)
        pkg = tmp / f"{name}.tsm"
        pkg.write_bytes(result.package)
        vecs = make_vectors(result.report.inputs, n_random=2, seed=k)
        inp = tmp / f"{name}.in"
        inp.write_bytes(b"".join(b"".join(v.tobytes() for v in vec) for vec in vecs))
        lines.append(f"{pkg} {inp} {len(vecs)}")
    listing = tmp / "models.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def _check_output(out: str, n_models: int) -> None:
    lines = out.split("\n")
    assert "done" in lines, out[-2000:]
    diffs = [line for line in lines if line.startswith("diff")]
    assert not diffs, f"{len(diffs)} models differ: {diffs[:5]}"
    oks = [line.split() for line in lines if line.startswith("ok")]
    assert len(oks) == n_models
    assert all(int(ok[2]) > 0 for ok in oks), "a model had no op the native kernels run"
    assert max(int(ok[3]) for ok in oks) == 0, "a native kernel call allocated"


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_native_kernels_equal_viper(unix, packages):
    mods = natmod_dir(unix)
    env = micropython_env([str(REPO / "firmware"), str(mods)])
    proc = subprocess.run([unix_kind_exe(unix), "-X", "heapsize=4M",
                           str(Path(__file__).parent / "natmod_mp" / "compare_kernels.py"),
                           str(packages)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    _check_output(proc.stdout, len(packages.read_text().split("\n")) - 1)


@pytest.mark.slow
def test_native_kernels_equal_viper_on_rv32(packages, tmp_path):
    """The same on the RV32 QEMU board (rv32imc, ESP32-C3 class; a private board in
    tmp_path, so a board other tests use is not touched), for the op zoo and the first
    random models of each kind."""
    from tinysense.boards import load_board
    from tinysense.node import open_node
    from tinysense.targets.qemu.rv32 import FIRMWARE, detect_rv32, ensure_rv32, stop_rv32
    from tinysense.targets import Target

    mpy = natmod_dir("rv32imc") / "tsnn.mpy"
    if not FIRMWARE.exists():
        if (REPO / "build" / "micropython" / "UNAVAILABLE").exists():
            pytest.skip(f"the RV32 QEMU board is not built: {FIRMWARE} (make nodes)")
        pytest.fail(f"{FIRMWARE} missing: make nodes", pytrace=False)
    info = detect_rv32()
    if not info.usable:
        pytest.skip(info.reason)
    lines = packages.read_text().split("\n")[:-1]
    conf = {p.stem for p in CONFORMANCE}
    picked = [ln for ln in lines if Path(ln.split()[0]).stem not in conf and (
              not Path(ln.split()[0]).stem.split("_")[-1].isdigit()
              or int(Path(ln.split()[0]).stem.split("_")[-1]) < 6)]
    cfg = load_board("ESP32_GENERIC_C3")
    board, _started = ensure_rv32(cfg, directory=tmp_path / "rv32", parent_bound=True)
    try:
        with open_node(Target("qemu-rv32", board.url, "test_natmod"), cfg) as node:
            node.deploy(progress=None)
            node.put(mpy, "/tsnn.mpy")
            node.mkdir("/nm")
            listing = []
            for ln in picked:
                pkg, inp, nvec = ln.split()
                name = Path(pkg).stem
                node.put(pkg, f"/nm/{name}.tsm")
                node.put(inp, f"/nm/{name}.in")
                listing.append(f"/nm/{name}.tsm /nm/{name}.in {nvec}")
            node.put(("\n".join(listing) + "\n").encode(), "/nm/list.txt")
            src = (Path(__file__).parent / "natmod_mp" / "compare_kernels.py").read_text()
            out = node.exec("LIST = '/nm/list.txt'\n" + src, timeout=900)
    finally:
        stop_rv32(cfg, directory=tmp_path / "rv32")
    _check_output(out, len(picked))


@pytest.mark.parametrize("unix", UNIX_KINDS)
def test_engine_picks_the_native_kernels_at_load(unix, tmp_path):
    """agent.load(kernels=...): "auto" uses tsnn when it imports (not when absent or built
    for another arch: ValueError on import), "native" fails clearly without it, "viper" never
    uses it; the reply says which, and the outputs are the same bytes."""
    from tinysense.convert import write_package

    mods = natmod_dir(unix)
    other = NATMOD / ("x64" if unix == "x86" else "x86")
    if not (other / "tsnn.mpy").exists():
        pytest.skip(f"{other}/tsnn.mpy not built")
    write_package(convert_model(OPS / "depthwise_conv_2d_mult2.tflite"), tmp_path / "m.tsm")
    x = bytes(range(256)) * 4
    script = (
        "from tsnode import agent\n"
        "for k in ('auto', 'native', 'viper'):\n"
        "    try:\n"
        f"        i = agent.load({str(tmp_path / 'm.tsm')!r}, None, k)\n"
        "    except ValueError as e:\n"
        "        print('ERR', k, e)\n"
        "        continue\n"
        f"    print('OUT', k, i['kernels'], agent.infer_hex({x.hex()!r}[:2 * agent._model()"
        ".input_bytes()]))\n")
    # a real tsnn.mpy of another ABI (as one built for an older engine): never run
    from tinysense.paths import REPO_ROOT
    old_abi = tmp_path / "oldabi"
    old_abi.mkdir()
    (old_abi / "tsnn.py").write_text("ABI = 0\n")
    subprocess.run([str(REPO_ROOT / "build" / "micropython" / "mpy-cross"), "-o",
                    str(old_abi / "tsnn.mpy"), str(old_abi / "tsnn.py")], check=True)
    (old_abi / "tsnn.py").unlink()
    script = script.replace("print('OUT', k, i['kernels'],",
                            "print('OUT', k, i['kernels'], i.get('kernels_why', '-')[:12],")
    runs = {}
    for name, extra in (("native", [str(mods)]), ("absent", []), ("other", [str(other)]),
                        ("oldabi", [str(old_abi)])):
        env = micropython_env([str(REPO / "firmware")] + extra)
        proc = subprocess.run([unix_kind_exe(unix), "-X", "heapsize=2M", "-c", script],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[name] = [line for line in proc.stdout.splitlines() if line[:3] in ("OUT", "ERR")]
    outs = {line.split()[-1] for r in runs.values() for line in r if line.startswith("OUT")}
    assert len(outs) == 1, runs   # the same bytes whichever kernels ran
    assert [line.split()[:4] for line in runs["native"]] == [
        ["OUT", "auto", "native", "-"], ["OUT", "native", "native", "-"],
        ["OUT", "viper", "viper", "-"]]
    for name in ("absent", "other", "oldabi"):
        got = runs[name]
        # auto runs viper and says why (one line, in the load reply); native refuses
        assert [line.split()[:3] for line in got] == [
            ["OUT", "auto", "viper"], ["ERR", "native", "kernels='native'"],
            ["OUT", "viper", "viper"]], got
        why = "tsnn.mpy has" if name == "oldabi" else "the native"
        assert got[0].split()[3] == why.split()[0][:12], got
        assert ("tsnn.mpy has ABI 0, this engine needs" if name == "oldabi"
                else "cannot be imported") in got[1], got
        assert got[2].split()[3] == "-"
