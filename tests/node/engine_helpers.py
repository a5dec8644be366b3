"""Helpers for the engine tests: convert, run on the unix port, run tflite-micro, compare."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinysense.convert import convert_model, dequantize_output, quantize_input

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNER = HERE / "engine_mp" / "run_vectors.py"


def micropython_exe() -> str:
    from conftest import micropython_exe as exe
    return exe()


def run_engine(package: bytes, vectors: list[bytes], narrow: bool = False,
               heap: str = "4M", path: str | None = None, stream: bool = False,
               misaligned: bool = False) -> tuple[list[bytes], int]:
    """Outputs (bytes per vector) of the engine on the unix port, and the worst allocation."""
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "m.tsm"
        pkg.write_bytes(package)
        inp = Path(tmp) / "in.bin"
        inp.write_bytes(b"".join(vectors))
        env = dict(os.environ, MICROPYPATH=path or str(REPO / "firmware"))
        cmd = [micropython_exe(), "-X", f"heapsize={heap}", str(RUNNER), str(pkg), str(inp),
               str(len(vectors))]
        flags = ["narrow"] * narrow + ["stream"] * stream + ["misaligned"] * misaligned
        cmd += [",".join(flags)] if flags else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise AssertionError(f"engine failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    lines = proc.stdout.split("\n")
    outs = [bytes.fromhex(line) for line in lines[:len(vectors)]]
    alloc = int(lines[len(vectors)].split()[1])
    return outs, alloc


def make_vectors(details: list[dict], n_random: int, seed: int = 0) -> list[list[np.ndarray]]:
    """All -128, all 127, all zero-point, then n_random uniform int8 vectors (per input)."""
    rng = np.random.default_rng(seed)
    sets = []
    for fill in ("min", "max", "zp"):
        vec = []
        for d in details:
            shape = tuple(int(s) for s in d["shape"])
            v = {"min": -128, "max": 127, "zp": int(d["zero_point"])}[fill]
            vec.append(np.full(shape, v, np.int8))
        sets.append(vec)
    for _ in range(n_random):
        sets.append([rng.integers(-128, 128, tuple(int(s) for s in d["shape"])).astype(np.int8)
                     for d in details])
    return sets


def compare_model(path, n_random: int = 3, narrow: bool = False, seed: int = 0,
                  mp_path: str | None = None, stream: bool = False,
                  misaligned: bool = False):
    """Convert `path`, run every vector on the engine and in tflite-micro; return mismatches."""
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
    node_out, alloc = run_engine(result.package, [b"".join(v.tobytes() for v in vec)
                                                  for vec in node_vecs], narrow=narrow,
                                 path=mp_path, stream=stream, misaligned=misaligned)
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
