"""Viper vs native (tsnn.mpy) time per conv/FC/DW op: a benchmark, not a test.

    .venv/bin/python natmod/tsnn/bench.py                       # both unix ports
    .venv/bin/python natmod/tsnn/bench.py --rv32                # and the RV32 QEMU board
    .venv/bin/python natmod/tsnn/bench.py --models tflm_person_detect --repeat 5

Needs `make natmods`. Unix ports: "32-bit virtual" (build/micropython/unix-x86, the tsnn.mpy
for x86) and "64-bit virtual" (.venv/bin/micropython, x64), host time in microseconds. RV32
QEMU board (rv32imc, ESP32-C3 class, `-icount shift=0`): instructions (us x 1000). Each
number is the median of --repeat runs of the op on the same arena; the totals are the sums
over a model's conv/FC/DW ops.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NATMOD = REPO / "build" / "natmod"
NAMES = {1: "FULLY_CONNECTED", 2: "CONV_2D", 3: "DEPTHWISE_CONV_2D"}
UNIX = [("32-bit virtual", REPO / "build" / "micropython" / "unix-x86" / "micropython", "x86"),
        ("64-bit virtual", REPO / ".venv" / "bin" / "micropython", "x64")]
DEFAULT_MODELS = ["tflm_person_detect", "mlperf_kws_ref_model", "tflm_micro_speech_quantized",
                  "mlperf_ad01_int8"]
RV32_MODELS = ["mlperf_kws_ref_model", "tflm_micro_speech_quantized"]


def parse(out: str) -> list[tuple[int, int, int, int, int]]:
    if "done" not in out.split("\n"):
        raise SystemExit(f"bench failed:\n{out[-2000:]}")
    return [tuple(int(x) for x in line.split()[1:]) for line in out.split("\n")
            if line.startswith("op ")]


def report(label: str, model: str, rows, unit: str, scale: float) -> None:
    tv = sum(r[3] for r in rows) * scale
    tn = sum(r[4] for r in rows) * scale
    print(f"{label:15s} {model:30s} {len(rows):3d} ops  viper {tv:12.1f} {unit}  "
          f"native {tn:12.1f} {unit}  {tv / max(tn, 1e-9):5.2f}x")
    by = {}
    for _i, code, _src, v, n in rows:
        a = by.setdefault(code, [0, 0, 0])
        a[0] += 1
        a[1] += v * scale
        a[2] += n * scale
    for code, (k, v, n) in sorted(by.items()):
        print(f"{'':15s}   {NAMES[code]:28s} {k:3d} ops  viper {v:12.1f} {unit}  "
              f"native {n:12.1f} {unit}  {v / max(n, 1e-9):5.2f}x")


def unix_run(exe: Path, arch: str, pkg: Path, repeat: int) -> list:
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'firmware'}:{NATMOD / arch}")
    from tinysense.targets.virtual import vm_env
    env.update({k: v for k, v in vm_env(low_heap=True).items() if k == "GLIBC_TUNABLES"})
    script = REPO / "natmod" / "tsnn" / "bench_mp.py"
    proc = subprocess.run([str(exe), "-X", "heapsize=4M", str(script), str(pkg), str(repeat)],
                          env=env, capture_output=True, text=True)
    return parse(proc.stdout + proc.stderr)


def rv32_run(pkgs: dict[str, Path], repeat: int) -> None:
    from tinysense.node import open_node

    with open_node("qemu-rv32", "ESP32_GENERIC_C3") as node:
        node.deploy(progress=None)   # the engine (tsnode/) as .mpy for rv32imc
        node.put(NATMOD / "rv32imc" / "tsnn.mpy", "/tsnn.mpy")
        src = (REPO / "natmod" / "tsnn" / "bench_mp.py").read_text()
        for model, pkg in pkgs.items():
            node.put(pkg, "/bench.tsm")
            out = node.exec(f"ARGS = ['/bench.tsm', {repeat}, 1]\n" + src, timeout=600)
            report("RV32 QEMU", model, parse(out), "M instr", 1e-3)
            node.exec("import os\nos.remove('/bench.tsm')")
            node.soft_reset()   # a clean heap for the next model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rv32", action="store_true", help="also the RV32 QEMU board")
    a = ap.parse_args()
    from tinysense.convert import convert_model

    models = a.models or DEFAULT_MODELS
    with tempfile.TemporaryDirectory() as tmp:
        pkgs = {}
        for model in models:
            pkg = Path(tmp) / f"{model}.tsm"
            pkg.write_bytes(convert_model(REPO / "tests" / "conformance" /
                                          f"{model}.tflite").package)
            pkgs[model] = pkg
        print("host time per inference's conv/FC/DW ops (us), median of", a.repeat)
        for label, exe, arch in UNIX:
            if not exe.exists() or not (NATMOD / arch / "tsnn.mpy").exists():
                print(f"{label}: not built ({exe}, {NATMOD / arch / 'tsnn.mpy'})")
                continue
            for model, pkg in pkgs.items():
                report(label, model, unix_run(exe, arch, pkg, a.repeat), "us", 1.0)
        if a.rv32:
            rv = {m: p for m, p in pkgs.items() if m in (a.models or RV32_MODELS)}
            rv32_run(rv, max(1, min(a.repeat, 3)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
