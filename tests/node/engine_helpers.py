"""Helpers for the engine tests: convert, run on the unix port, run tflite-micro, compare."""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinysense.convert import convert_model, dequantize_output, quantize_input

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNER = HERE / "engine_mp" / "run_vectors.py"
# ops that have a native kernel in every tsnn.mpy: a model with one reports "native"
NATIVE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SVDF"}


def micropython_exe() -> str:
    from conftest import micropython_exe as exe
    return exe()


@dataclasses.dataclass
class EngineRun:
    outputs: list[bytes]  # per vector
    alloc: int  # the most one inference allocated on the GC heap (bytes, GC off)
    wide: bool  # the ops ran the 64-bit multiply path
    heap_address: int  # where the VM's GC heap is (a buffer in it)
    kernels: str  # what the model's ops used: "viper", or "native" if any op did


def run_engine_full(package: bytes, vectors: list[bytes], narrow: bool = False,
                    heap: str = "4M", path: str | None = None, stream: bool = False,
                    misaligned: bool = False, exe: str | None = None,
                    low_heap: bool = True, natmod: Path | None = None) -> EngineRun:
    """The engine on a unix port (`exe`, default micropython_exe()) over `vectors`, with the
    viper kernels, or the native ones when `natmod` is the directory of a tsnn.mpy for
    that port's arch (conftest.natmod_dir).

    low_heap=False: glibc's malloc as it is, so a 32-bit VM's heap over ~128 KB is mmapped
    above 0x40000000 (see tinysense.targets.supervisor.HEAP_TUNABLES)."""
    from conftest import micropython_env

    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "m.tsm"
        pkg.write_bytes(package)
        inp = Path(tmp) / "in.bin"
        inp.write_bytes(b"".join(vectors))
        mp_path = [path or str(REPO / "firmware")] + ([str(natmod)] if natmod else [])
        env = micropython_env(mp_path, low_heap=low_heap)
        cmd = [exe or micropython_exe(), "-X", f"heapsize={heap}", str(RUNNER), str(pkg),
               str(inp), str(len(vectors))]
        flags = (["narrow"] * narrow + ["stream"] * stream + ["misaligned"] * misaligned
                 + ["native"] * (natmod is not None))
        cmd += [",".join(flags)] if flags else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise AssertionError(f"engine failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    lines = proc.stdout.split("\n")
    outs = [bytes.fromhex(line) for line in lines[:len(vectors)]]
    tail = dict(line.split(" ", 1) for line in lines[len(vectors):] if " " in line)
    return EngineRun(outs, int(tail["alloc"]), tail["wide"] == "1", int(tail["heap"], 16),
                     tail["kernels"])


def run_engine(package: bytes, vectors: list[bytes], narrow: bool = False,
               heap: str = "4M", path: str | None = None, stream: bool = False,
               misaligned: bool = False, exe: str | None = None) -> tuple[list[bytes], int]:
    """Outputs (bytes per vector) of the engine on the unix port, and the worst allocation."""
    run = run_engine_full(package, vectors, narrow=narrow, heap=heap, path=path, stream=stream,
                          misaligned=misaligned, exe=exe)
    return run.outputs, run.alloc


def make_vectors(details: list[dict], n_random: int, seed: int = 0) -> list[list[np.ndarray]]:
    """All smallest code, all largest, all zero-point, then n_random random vectors (per
    input): int8 inputs uniform, int16 ones uniform codes shifted right by 0..15 bits (small
    magnitudes as common as large)."""
    rng = np.random.default_rng(seed)
    sets = []
    for fill in ("min", "max", "zp"):
        vec = []
        for d in details:
            dt = np.dtype(d.get("node_dtype", "int8"))
            shape = tuple(int(s) for s in d["shape"])
            info = np.iinfo(dt)
            v = {"min": info.min, "max": info.max, "zp": int(d["zero_point"])}[fill]
            vec.append(np.full(shape, v, dt))
        sets.append(vec)
    for _ in range(n_random):
        vec = []
        for d in details:
            dt = np.dtype(d.get("node_dtype", "int8"))
            shape = tuple(int(s) for s in d["shape"])
            q = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max + 1, shape)
            if dt == np.int16:
                q = q >> rng.integers(0, 16, shape)
            vec.append(q.astype(dt))
        sets.append(vec)
    return sets


def compare_model(path, n_random: int = 3, narrow: bool = False, seed: int = 0,
                  mp_path: str | None = None, stream: bool = False,
                  misaligned: bool = False, kind: str | None = None,
                  kernels: str = "viper"):
    """Convert `path`, run every vector on the engine and in tflite-micro; return mismatches.

    kind: "x86" or "x64" (conftest.UNIX_KINDS) runs that unix port and checks it took the
    multiply path it must (x86: always 32-bit; x64: 64-bit unless narrow); None: the
    default unix port (micropython_exe()). kernels: "viper" or "native" (conftest.KERNELS;
    native needs `kind`, for the arch of its tsnn.mpy), checked against what the ops used
    when the model has a conv, depthwise or fully-connected op (native kernels for all)."""
    from conftest import natmod_dir, unix_kind_exe

    from tflite_micro.python.tflite_micro import runtime

    result = convert_model(path)
    ins, outs = result.report.inputs, result.report.outputs
    node_vecs = make_vectors(ins, n_random, seed)
    interp = runtime.Interpreter.from_file(str(path))
    expected = []
    for vec in node_vecs:
        for k, (x, io) in enumerate(zip(vec, ins)):
            if io["model_dtype"] == "float32":   # feed the float that quantizes to x exactly
                x = dequantize_output(x, io)
                assert np.array_equal(quantize_input(x, io), vec[k])
            interp.set_input(x, k)
        interp.invoke()
        got = []
        for k, io in enumerate(outs):
            y = interp.get_output(k)
            got.append(np.asarray(y).astype(np.float32).tobytes()
                       if io["model_dtype"] == "float32" else np.asarray(y).tobytes())
        expected.append(got)
    run = run_engine_full(result.package, [b"".join(v.tobytes() for v in vec)
                                           for vec in node_vecs], narrow=narrow, path=mp_path,
                          stream=stream, misaligned=misaligned,
                          exe=unix_kind_exe(kind) if kind else None,
                          natmod=natmod_dir(kind) if kernels == "native" else None)
    if any(op["name"] in NATIVE_OPS for op in result.report.ops):
        assert run.kernels == kernels, f"asked for {kernels} kernels, the ops used {run.kernels}"
    if kind is not None:
        assert run.wide == (kind == "x64" and not narrow), \
            f"{kind} (narrow={narrow}) ran the {'64' if run.wide else '32'}-bit multiply path"
    node_out, alloc = run.outputs, run.alloc
    mismatches = []
    for i, (raw, exp) in enumerate(zip(node_out, expected)):
        pos = 0
        for k, io in enumerate(outs):
            q = np.frombuffer(raw[pos:pos + io["nbytes"]], np.int8)
            pos += io["nbytes"]
            mine = dequantize_output(q, io).tobytes() if io["model_dtype"] == "float32" \
                else q.tobytes()
            if mine != exp[k]:
                mismatches.append((i, k, mine.hex()[:80], exp[k].hex()[:80]))
    return mismatches, alloc, len(node_vecs)
