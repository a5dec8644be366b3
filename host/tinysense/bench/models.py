"""Bench a model: node latency vs the tflite-micro reference on the host, MACs, heap vs arena."""

from __future__ import annotations

import dataclasses
import datetime
import math
import platform
from pathlib import Path

from tinysense.boards import BoardConfig, load_board
from tinysense.convert import convert_model
from tinysense.errors import TinysenseError
from tinysense.reference import Reference, count_macs
from tinysense.validate.compare import compare_outputs
from tinysense.validate.core import (
    Progress, _say, conformance_models, model_inputs, prepared_node, reported_arch,
)
from tinysense.validate.nodeside import NodeModel
from tinysense.validate.vectors import make_vectors

DEFAULT_REPEATS = 20
DEFAULT_ROUNDS = 3
# Everything in the markdown file after this line is kept when the table is regenerated.
KEEP_MARKER = "<!-- end of generated part: notes below are kept by bench-all -->"


@dataclasses.dataclass
class BenchResult:
    """One model's numbers (what `tinysense bench --json` writes)."""

    model: str
    target: str
    board: str
    macs: int
    node_ms: float              # median per inference on the node, after a warm-up run
    reference_ms: float         # median tflite-micro invoke on the host, same input
    ratio: float                # node_ms / reference_ms
    node_ns_per_mac: float
    reference_ns_per_mac: float
    node_heap_peak_bytes: int   # engine heap while running (arena + scratch + tables + allocs)
    reference_arena_bytes: int  # tflite-micro print_allocations() total
    heap_ratio: float
    node_package_heap_bytes: int
    node_inference_alloc_bytes: int
    repeats: int
    rounds: int
    bit_exact: bool             # the benched input's outputs equal the reference's
    placement: str = ""
    fits: bool | None = None
    # RV32 QEMU only (-icount shift=0: one instruction per nanosecond of the node's time)
    instructions_per_inference: int | None = None
    instructions_per_mac: float | None = None
    c3_160mhz_lower_bound_ms: float | None = None  # instructions / 160e6 s: CPI >= 1
    # bytes the node's GC heap allocated during one inference (as node_inference_alloc_bytes)
    node_alloc_bytes_per_inference: int | None = None
    node_arch: str | None = None  # mpy arch the node reported (x86, x64, rv32imc, xtensawin)
    kernels: str = ""             # the conv/dwconv kernels the node used: native | viper

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"{self.model}: node {self.node_ms:.3f} ms, reference {self.reference_ms:.3f} ms"
                f" ({self.ratio:.2f}x), {self.macs:,} MACs, {self.node_ns_per_mac:.2f} ns/MAC; "
                f"heap {self.node_heap_peak_bytes:,} B vs arena "
                f"{self.reference_arena_bytes:,} B ({self.heap_ratio:.2f}x)"
                + ("" if self.bit_exact else "; OUTPUT DIFFERS from the reference")
                + self._instructions_line())

    def _instructions_line(self) -> str:
        if self.instructions_per_inference is None:
            return ""
        return (f"\n  RV32 QEMU: {self.instructions_per_inference:,} instructions per "
                f"inference ({self.instructions_per_mac:.1f} per MAC); an ESP32-C3 at 160 MHz "
                f"needs at least {self.c3_160mhz_lower_bound_ms:.1f} ms (a lower bound: "
                "instructions / 160e6, CPI >= 1; QEMU's time is not the C3's)")


def bench_model(model: str | Path, *, target: str = "auto",
                board: str | BoardConfig | None = None, repeats: int = DEFAULT_REPEATS,
                rounds: int = DEFAULT_ROUNDS, seed: int = 0, node=None,
                progress: Progress | None = print, kernels: str = "auto") -> BenchResult:
    """Time one model on the node (agent.bench) and in tflite-micro on the same input.

    Args:
        model: the int8 .tflite file.
        target, board: the node to use (ignored if `node` is given).
        repeats: timed runs per round on each side (each round after a warm-up).
        rounds: node and reference rounds, alternating; each side reports the fastest
            round median.
        seed: seed of the random int8 input.
        node: an already open Node with the firmware deployed.
        progress: one line per step; None for silence.
        kernels: auto | native | viper: the node's conv/dwconv kernels (agent.load).
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    if node is None:
        with prepared_node(target, cfg, progress) as opened:
            return bench_model(model, board=opened.board, repeats=repeats, rounds=rounds,
                               seed=seed, node=opened, progress=progress, kernels=kernels)
    say = _say(progress)
    path = Path(model)
    ref = Reference(path)
    converted = convert_model(path, board=cfg)
    # first random vector (the three before it are the edge cases)
    vec = make_vectors(model_inputs(ref), 4, seed)[3]
    nm = NodeModel(node, converted.package, converted.report, kernels=kernels)
    exact = compare_outputs(nm.infer(list(vec.arrays)), ref.run(list(vec.arrays))).identical
    say(f"bench {path.name}: {rounds} rounds of {repeats} runs, node and reference "
        "alternating ...")
    node_rounds, ref_rounds = [], []
    for _ in range(rounds):
        node_rounds.append(float(nm.bench(repeats)["median_ms"]))
        ref_rounds.append(ref.time_invoke(list(vec.arrays), repeats=repeats, warmup=2))
    # The host is shared (other processes, frequency changes): each side's figure is the
    # fastest of its round medians, so a burst of load during one round does not count
    # against either side, and both sides are measured the same way.
    node_ms, ref_ms = min(node_rounds), min(ref_rounds)
    heap = nm.heap()
    macs = count_macs(ref.graph)
    peak = int(heap["engine_bytes"]) + int(heap["inference_alloc_bytes"])
    arena = ref.arena_bytes()
    result = BenchResult(
        model=path.name, target=node.target.kind, board=cfg.name, macs=macs, node_ms=node_ms,
        reference_ms=ref_ms, ratio=node_ms / ref_ms if ref_ms > 0 else math.inf,
        node_ns_per_mac=node_ms * 1e6 / macs if macs else 0.0,
        reference_ns_per_mac=ref_ms * 1e6 / macs if macs else 0.0,
        node_heap_peak_bytes=peak, reference_arena_bytes=arena,
        heap_ratio=peak / arena if arena else math.inf,
        node_package_heap_bytes=int(heap["package_bytes"]),
        node_inference_alloc_bytes=int(heap["inference_alloc_bytes"]), repeats=repeats,
        rounds=rounds, bit_exact=exact, placement=converted.report.placement,
        fits=converted.report.fits,
        node_alloc_bytes_per_inference=int(heap["inference_alloc_bytes"]),
        node_arch=reported_arch(node), kernels=nm.kernels)
    if node.target.kind == "qemu-rv32":
        from tinysense.targets.qemu.rv32 import c3_lower_bound_ms, instructions

        count = instructions(node_ms)
        result.instructions_per_inference = count
        result.instructions_per_mac = count / macs if macs else 0.0
        result.c3_160mhz_lower_bound_ms = c3_lower_bound_ms(count)
    say(result.summary())
    return result


def geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0 and math.isfinite(v)]
    if not vals:
        return math.nan
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def bench_all(*, target: str = "virtual", board: str | BoardConfig | None = None,
              models: list[Path] | None = None, repeats: int = DEFAULT_REPEATS,
              rounds: int = DEFAULT_ROUNDS, md: Path | None = None,
              progress: Progress | None = print, kernels: str = "auto") -> dict:
    """Bench every conformance model on one node; optionally write the markdown table.

    Returns {"results": [...], "geomean_ratio": g, "max_heap_ratio": h, "environment": {...}}.
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    models = models or conformance_models()
    say = _say(progress)
    results, errors = [], []
    with prepared_node(target, cfg, progress) as node:
        env = _environment(node)
        for i, m in enumerate(models, 1):
            say(f"[{i}/{len(models)}] {m.name}")
            try:
                results.append(bench_model(m, board=node.board, repeats=repeats,
                                           rounds=rounds, node=node, progress=progress,
                                           kernels=kernels))
            except TinysenseError as exc:   # record it; bench the others
                first = str(exc).splitlines()[0]
                say(f"  ERROR: {first}")
                errors.append({"model": m.name, "error": first})
    if not results:
        raise TinysenseError("no model could be benched: " + "; ".join(
            f"{e['model']}: {e['error']}" for e in errors))
    summary = {
        "results": [r.to_dict() for r in results],
        "geomean_ratio": geomean([r.ratio for r in results]),
        "geomean_heap_ratio": geomean([r.heap_ratio for r in results]),
        "max_heap_ratio": max(r.heap_ratio for r in results),
        "environment": env, "board": cfg.name, "target": target, "repeats": repeats,
        "rounds": rounds, "errors": errors, "kernels": kernels,
    }
    say(f"geometric mean node/reference time: {summary['geomean_ratio']:.2f}x over "
        f"{len(results)} models; heap/arena max {summary['max_heap_ratio']:.2f}x")
    if md is not None:
        write_markdown(summary, Path(md))
        say(f"wrote {md}")
    return summary


def _environment(node) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mp = node.exec("import sys\nv = sys.implementation.version\n"
                       "print('%d.%d.%d' % v[:3], '(' + sys.implementation._machine + ')')"
                       ).strip()
    except TinysenseError:
        mp = "?"
    try:
        from importlib.metadata import version
        tflm = version("tflite-micro")
    except Exception:  # noqa: BLE001 - only a label in the report
        tflm = "?"
    return {"host_cpu": cpu, "host": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "micropython": mp, "tflite_micro": tflm,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _generated_by(summary: dict, md: str) -> str:
    """The command that regenerates the table (both tables share it)."""
    kernels = summary.get("kernels")
    flag = f" --kernels {kernels}" if kernels and kernels != "auto" else ""
    return (f"Generated by `make bench` (`tinysense bench-all --target {summary['target']} "
            f"--board {summary['board']}{flag} --md {md}`) on "
            f"{summary['environment']['date']}.")


def _kernels_used(rows: list[dict]) -> str:
    used = sorted({r.get("kernels") for r in rows if r.get("kernels")})
    return " and ".join(used) if used else "viper"


_ARCH_KIND = {"x86": "32-bit virtual", "x64": "64-bit virtual", "rv32imc": "RV32",
              "xtensawin": "Xtensa"}


def _arch_label(rows: list[dict]) -> str:
    arch = next((r.get("node_arch") for r in rows if r.get("node_arch")), None)
    return f" ({_ARCH_KIND.get(arch, arch)}, mpy arch {arch})" if arch else ""


def render_markdown(summary: dict) -> str:
    env = summary["environment"]
    rows = summary["results"]
    lines = [
        "# Benchmarks: node engine vs the tflite-micro reference",
        "",
        _generated_by(summary, "docs/benchmarks.md"),
        "",
        f"- Host: {env['host_cpu']} ({env['host']}), Python {env['python']}.",
        f"- Node: {summary['target']} target{_arch_label(rows)}, board config "
        f"{summary['board']}; MicroPython "
        f"{env['micropython']}. Its time is `tsnode.agent.bench`: median of "
        f"{summary['repeats']} inferences after one warm-up, `time.ticks_us` on the node.",
        f"- Engine kernels for conv/FC/depthwise: {_kernels_used(rows)} (`--kernels`; the "
        "other ops always run viper).",
        f"- Reference: tflite-micro {env['tflite_micro']} Python interpreter (reference "
        f"kernels) on the same host: median of {summary['repeats']} `invoke()` after two "
        "warm-ups, same input (seeded random int8).",
        f"- Each side ran {summary.get('rounds', 1)} rounds, alternating node and reference; "
        "the table shows each side's fastest round median (the host is shared, so a burst of "
        "other load during one round counts against neither side).",
        "- Heap: the node engine's heap while running (arena + scratch + op tables + bytes "
        "allocated by one inference) against tflite-micro's `print_allocations()` arena "
        "total. The package buffer itself (weights, loaded into RAM unless read from ROMFS) "
        "is listed separately, as tflite-micro keeps weights in flash.",
        "",
        "| model | MACs | node ms | reference ms | node / ref | node ns/MAC | ref ns/MAC "
        "| node heap B | ref arena B | heap / arena | package heap B | bit-exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model'].removesuffix('.tflite')} | {r['macs']:,} | {r['node_ms']:.3f} | "
            f"{r['reference_ms']:.3f} | {r['ratio']:.2f}x | {r['node_ns_per_mac']:.2f} | "
            f"{r['reference_ns_per_mac']:.2f} | {r['node_heap_peak_bytes']:,} | "
            f"{r['reference_arena_bytes']:,} | {r['heap_ratio']:.2f}x | "
            f"{r['node_package_heap_bytes']:,} | {'yes' if r['bit_exact'] else 'NO'} |")
    for e in summary.get("errors", []):
        lines.append(f"| {e['model'].removesuffix('.tflite')} | failed: {e['error']} "
                     "| | | | | | | | | | NO |")
    g = summary["geomean_ratio"]
    h = summary["max_heap_ratio"]
    n_err = len(summary.get("errors", []))
    lines += [
        "",
        f"**Geometric mean of node / reference time: {g:.2f}x** over {len(rows)} models"
        + (f" ({n_err} could not be benched)" if n_err else "") + " "
        f"(goal: at most 2.0x: {'met' if g <= 2.0 else 'NOT met'}). "
        f"Heap / arena: geometric mean {summary['geomean_heap_ratio']:.2f}x, worst {h:.2f}x "
        f"(goal: at most 1.25x: {'met' if h <= 1.25 else 'NOT met'}).",
        "",
        KEEP_MARKER,
        "",
    ]
    return "\n".join(lines)


# Published ESP32-C3 (160 MHz) latencies for the same models: tflite-micro with its reference
# kernels, and with ESP-NN (esp-tflite-micro README). Only person detection is published.
C3_ANCHORS_MS = {"tflm_person_detect": (3355.0, 426.0)}


def render_markdown_rv32(summary: dict) -> str:
    """The RV32 QEMU table: instructions (deterministic, -icount shift=0), not host time."""
    env = summary["environment"]
    rows = summary["results"]
    lines = [
        "# Benchmarks on the RV32 QEMU board: instructions per inference",
        "",
        _generated_by(summary, "docs/benchmarks-rv32.md"),
        "",
        f"- Node: the RV32 QEMU board (MicroPython {env['micropython']}; rv32imc code from "
        "MicroPython's RV32 native emitter, no Zba/Zcmp, as on an ESP32-C3), board config "
        f"{summary['board']}. QEMU runs with `-icount shift=0`: one guest instruction is one "
        "nanosecond of the node's clock, so `time.ticks_us` deltas x 1000 are instructions "
        "(to the microsecond: +-1,000). Median of "
        f"{summary['repeats']} inferences per round, {summary.get('rounds', 1)} rounds.",
        f"- Engine kernels for conv/FC/depthwise: {_kernels_used(rows)} (`--kernels`; the "
        "other ops always run viper).",
        "- C3 lower bound: instructions / 160e6 s. An ESP32-C3 at 160 MHz retires at most one "
        "instruction per cycle, and flash cache misses, loads and branches cost more: the "
        "real latency is higher. Neither QEMU's wall time nor this bound is Xtensa (ESP32, "
        "S3) timing; only a board shows that.",
        "- Published C3 figures (esp-tflite-micro README, ESP32-C3 at 160 MHz): tflite-micro "
        "reference kernels / ESP-NN optimised kernels.",
        "",
        "| model | MACs | instructions | instructions / MAC | C3 >= ms | published C3 ms "
        "(reference / ESP-NN) | node heap B | placement | bit-exact |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|:-:|",
    ]
    for r in rows:
        name = r["model"].removesuffix(".tflite")
        anchor = C3_ANCHORS_MS.get(name)
        lines.append(
            f"| {name} | {r['macs']:,} | {r['instructions_per_inference'] or 0:,} | "
            f"{r['instructions_per_mac'] or 0:.1f} | {r['c3_160mhz_lower_bound_ms'] or 0:.1f} | "
            + (f"{anchor[0]:,.0f} / {anchor[1]:,.0f}" if anchor else "") + " | "
            f"{r['node_heap_peak_bytes']:,} | {r.get('placement', '')} | "
            f"{'yes' if r['bit_exact'] else 'NO'} |")
    for e in summary.get("errors", []):
        lines.append(f"| {e['model'].removesuffix('.tflite')} | failed: {e['error']} "
                     "| | | | | | | NO |")
    lines += ["", KEEP_MARKER, ""]
    return "\n".join(lines)


def write_markdown(summary: dict, path: Path) -> None:
    """Write the table, keeping whatever follows KEEP_MARKER in an existing file."""
    kept = ""
    if path.exists():
        old = path.read_text()
        if KEEP_MARKER in old:
            kept = old.split(KEEP_MARKER, 1)[1].lstrip("\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    rv32 = any(r.get("instructions_per_inference") is not None for r in summary["results"])
    path.write_text((render_markdown_rv32 if rv32 else render_markdown)(summary) + kept)
