"""Bench a model: node latency vs the tflite-micro reference on the host, MACs, heap vs arena."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import re
from pathlib import Path

from tinysense.boards import BoardConfig, load_board
from tinysense.convert import convert_model
from tinysense.errors import TinysenseError
from tinysense.bench.stats import GROUPS, SPREAD_LIMIT, geomean, ratio_stats
from tinysense.reference import Reference, count_macs
from tinysense.validate.compare import compare_outputs
from tinysense.validate.core import (
    Progress, _say, conformance_models, model_inputs, prepared_node, reported_arch,
)
from tinysense.validate.nodeside import NodeModel
from tinysense.validate.vectors import make_vectors

# Many short rounds (stats.py): each side's fastest run counts; the rounds give the spread.
DEFAULT_REPEATS = 3
DEFAULT_ROUNDS = 30
# RV32 QEMU counts instructions (-icount shift=0): one run is exact, rounds add nothing.
QEMU_REPEATS = 1
QEMU_ROUNDS = 1
# Everything in the markdown file after this line is kept when the table is regenerated.
KEEP_MARKER = "<!-- end of generated part: notes below are kept by bench-all -->"


@dataclasses.dataclass
class BenchResult:
    """One model's numbers (what `tinysense bench --json` writes)."""

    model: str
    target: str
    board: str
    macs: int
    node_ms: float              # fastest inference on the node over all rounds (stats.py)
    reference_ms: float         # fastest tflite-micro invoke on the host, same input
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
    node_median_ms: float = math.nan       # median of all node runs
    reference_median_ms: float = math.nan  # median of all reference runs
    ratio_spread: float = math.nan  # block ratios' range / ratio (stats.ratio_stats)
    ratio_trusted: bool = False     # spread <= stats.SPREAD_LIMIT over >= GROUPS rounds
    ratio_comparable: bool = True   # False on RV32 QEMU: node time is instructions, not host

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"{self.model} ({self.kernels or '?'}): node {self.node_ms:.3f} ms, reference "
                f"{self.reference_ms:.3f} ms ({self.ratio:.2f}x{self._trust()}), {self.macs:,} MACs, {self.node_ns_per_mac:.2f} ns/MAC; "
                f"heap {self.node_heap_peak_bytes:,} B vs arena "
                f"{self.reference_arena_bytes:,} B ({self.heap_ratio:.2f}x)"
                + ("" if self.bit_exact else "; OUTPUT DIFFERS from the reference")
                + self._instructions_line())

    def _trust(self) -> str:
        if not self.ratio_comparable:
            return ": QEMU instruction time vs host time, not a speed comparison"
        text = f", spread {self.ratio_spread:.0%} over {self.rounds} rounds"
        return text if self.ratio_trusted else text + ": TOO WIDE TO TRUST (host busy?)"

    def _instructions_line(self) -> str:
        if self.instructions_per_inference is None:
            return ""
        return (f"\n  RV32 QEMU: {self.instructions_per_inference:,} instructions per "
                f"inference ({self.instructions_per_mac:.1f} per MAC); an ESP32-C3 at 160 MHz "
                f"needs at least {self.c3_160mhz_lower_bound_ms:.1f} ms (a lower bound: "
                "instructions / 160e6, CPI >= 1; QEMU's time is not the C3's)")


def bench_model(model: str | Path, *, target: str = "auto",
                board: str | BoardConfig | None = None, repeats: int | None = None,
                rounds: int | None = None, seed: int = 0, node=None,
                progress: Progress | None = print, kernels: str = "auto") -> BenchResult:
    """Time one model on the node (agent.bench) and in tflite-micro on the same input.

    Args:
        model: the int8 .tflite file.
        target, board: the node to use (ignored if `node` is given).
        repeats: timed runs per round on each side (default DEFAULT_REPEATS, on RV32 QEMU
            QEMU_REPEATS).
        rounds: node and reference rounds, alternating (default DEFAULT_ROUNDS, on RV32
            QEMU QEMU_ROUNDS); each side reports its fastest run, the rounds the spread.
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
    repeats, rounds = _counts(node.target.kind, repeats, rounds)
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
    ref.time_invoke(list(vec.arrays), repeats=1, warmup=2)          # warm the reference
    for i in range(rounds):
        # Short rounds, node and reference interleaved (the order alternates too), so a
        # burst of load on the shared host falls on both sides alike.
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            if side == 0:
                node_rounds.append([float(t) for t in nm.bench(repeats)["times_ms"]])
            else:
                ref_rounds.append([ref.time_invoke(list(vec.arrays), repeats=1, warmup=0)
                                   for _ in range(repeats)])
    st = ratio_stats(node_rounds, ref_rounds)
    node_ms, ref_ms = st["node_ms"], st["reference_ms"]
    heap = nm.heap()
    macs = count_macs(ref.graph)
    peak = int(heap["engine_bytes"]) + int(heap["inference_alloc_bytes"])
    arena = ref.arena_bytes()
    result = BenchResult(
        model=path.name, target=node.target.kind, board=cfg.name, macs=macs, node_ms=node_ms,
        reference_ms=ref_ms, ratio=st["ratio"], node_median_ms=st["node_median_ms"],
        reference_median_ms=st["reference_median_ms"], ratio_spread=st["spread"],
        ratio_trusted=st["trusted"],
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
        # the node's clock is QEMU's instruction count, the reference's is host time
        result.ratio_comparable = False
        result.ratio_trusted = False
    say(result.summary())
    return result


def _counts(kind: str, repeats: int | None, rounds: int | None) -> tuple[int, int]:
    qemu = kind == "qemu-rv32"
    return (max(1, repeats or (QEMU_REPEATS if qemu else DEFAULT_REPEATS)),
            max(1, rounds or (QEMU_ROUNDS if qemu else DEFAULT_ROUNDS)))


KERNEL_SETS = ("native", "viper")


def bench_all(*, target: str = "virtual", board: str | BoardConfig | None = None,
              models: list[Path] | None = None, repeats: int | None = None,
              rounds: int | None = None, md: Path | None = None,
              progress: Progress | None = print, kernels: str = "auto") -> dict:
    """Bench every conformance model on one node; optionally write the markdown table.

    kernels "both" benches each model with native and then with viper kernels.
    Returns {"results": [...], "geomean_ratio": g, "geomean_ratio_by_kernels": {...},
    "max_heap_ratio": h, "environment": {...}, ...}.
    """
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    models = models or conformance_models()
    say = _say(progress)
    sets = list(KERNEL_SETS) if kernels == "both" else [kernels]
    results, errors = [], []
    counts = (repeats, rounds)
    for k in sets:
        # one node session per kernel set: a module imported for one set (tsnn.mpy, the
        # viper kernels) stays in the node's heap and would crowd the other set's models
        with prepared_node(target, cfg, progress) as node:
            env = _environment(node)
            repeats, rounds = _counts(node.target.kind, *counts)
            for i, m in enumerate(models, 1):
                say(f"[{i}/{len(models)}] {m.name}" + (f" ({k})" if len(sets) > 1 else ""))
                try:
                    results.append(bench_model(m, board=node.board, repeats=repeats,
                                               rounds=rounds, node=node, progress=progress,
                                               kernels=k))
                except TinysenseError as exc:   # record it; bench the others
                    first = str(exc).splitlines()[0]
                    say(f"  ERROR: {first}")
                    errors.append({"model": m.name, "error": first, "kernels": k})
    if not results:
        raise TinysenseError("no model could be benched: " + "; ".join(
            f"{e['model']}: {e['error']}" for e in errors))
    by_kernels = {}
    for k in sorted({r.kernels for r in results}):
        rows = [r for r in results if r.kernels == k]
        by_kernels[k] = {"geomean_ratio": geomean([r.ratio for r in rows]), "models": len(rows),
                         "untrusted": [r.model for r in rows if not r.ratio_trusted]}
    summary = {
        "results": [r.to_dict() for r in results],
        "geomean_ratio": geomean([r.ratio for r in results]),
        "geomean_ratio_by_kernels": by_kernels,
        "geomean_heap_ratio": geomean([r.heap_ratio for r in results]),
        "max_heap_ratio": max(r.heap_ratio for r in results),
        "environment": env, "board": cfg.name, "target": target, "repeats": repeats,
        "rounds": rounds, "errors": errors, "kernels": kernels,
        "spread_limit": SPREAD_LIMIT,
        "ratio_comparable": all(r.ratio_comparable for r in results),
    }
    for k, g in by_kernels.items():
        untrusted = g["untrusted"]
        say(f"geometric mean node/reference time ({k}): {g['geomean_ratio']:.2f}x over "
            f"{g['models']} models"
            + ("" if summary["ratio_comparable"] else
               " (QEMU instruction time vs host time: not a speed comparison)")
            + (f"; spread too wide to trust for {', '.join(untrusted)}"
               if untrusted and summary["ratio_comparable"] else ""))
    say(f"heap/arena max {summary['max_heap_ratio']:.2f}x")
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
            # the unix port chosen by the environment (virtual board), for "Generated by"
            "micropython_env": os.environ.get("TINYSENSE_MICROPYTHON") or "",
            "python": platform.python_version(), "micropython": mp, "tflite_micro": tflm,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _generated_by(summary: dict, md: str) -> str:
    """The command that regenerates the table (or, on the virtual board, its build's part)."""
    kernels = summary.get("kernels")
    flag = f" --kernels {kernels}" if kernels and kernels != "auto" else ""
    mp = summary["environment"].get("micropython_env") or ""
    if mp:
        try:
            mp = str(Path(mp).resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            pass
    prefix = f"TINYSENSE_MICROPYTHON={mp} " if mp else ""
    return (f"Generated by `make bench` (`{prefix}tinysense bench-all --target "
            f"{summary['target']} --board {summary['board']}{flag} --md {md}`) on "
            f"{summary['environment']['date']}.")


def _kernels_used(rows: list[dict]) -> str:
    used = sorted({r.get("kernels") for r in rows if r.get("kernels")})
    return " and ".join(used) if used else "viper"


def _kernel_sets(rows: list[dict]) -> list[str]:
    """The kernel sets in the rows, native first."""
    present = {r.get("kernels") or "viper" for r in rows}
    return [k for k in KERNEL_SETS if k in present] + sorted(present - set(KERNEL_SETS))


def _by_model(rows: list[dict]) -> list[tuple[str, dict[str, dict]]]:
    """[(model, {kernels: row})] in first-seen order."""
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        out.setdefault(r["model"], {})[r.get("kernels") or "viper"] = r
    return list(out.items())


_ARCH_KIND = {"x86": "32-bit virtual", "x64": "64-bit virtual", "rv32imc": "RV32",
              "xtensawin": "Xtensa"}
_BUILD_TITLE = {"x86": "32-bit build", "x64": "64-bit build"}


def _arch(rows: list[dict]) -> str | None:
    return next((r.get("node_arch") for r in rows if r.get("node_arch")), None)


def _arch_label(rows: list[dict]) -> str:
    arch = _arch(rows)
    return f" ({_ARCH_KIND.get(arch, arch)}, mpy arch {arch})" if arch else ""


# Goals (issue 12): native kernels at most this node/reference ratio on the virtual board.
NATIVE_RATIO_GOAL = 0.5
HEAP_RATIO_GOAL = 1.25


def _spread(r: dict) -> str:
    s = r.get("ratio_spread")
    if s is None or not isinstance(s, (int, float)) or not math.isfinite(s):
        return "?"
    return f"{s:.0%}" + ("" if r.get("ratio_trusted") else " (too wide)")


def render_markdown(summary: dict) -> str:
    """The virtual board's file: the method, then one section per build (write_markdown
    keeps the other builds' sections)."""
    return _virtual_header(summary) + _virtual_section(summary)


def _virtual_header(summary: dict) -> str:
    env = summary["environment"]
    lines = [
        "# Benchmarks: node engine vs the tflite-micro reference",
        "",
        "The virtual board (MicroPython's unix port) against tflite-micro's reference kernels "
        "on the same host, one section per build of the port (`make bench` runs both).",
        "",
        f"- Host: {env['host_cpu']} ({env['host']}), Python {env['python']}; reference: "
        f"tflite-micro {env['tflite_micro']} Python interpreter (reference kernels), same "
        "input (seeded random int8).",
        f"- Method: {summary.get('rounds', 1)} short rounds of {summary['repeats']} runs per "
        "side, node (`tsnode.agent.bench`, `time.ticks_us` on the node, after a warm-up "
        "inference) and reference (`invoke()`) interleaved round by round. Load on a shared "
        "host only adds time, so each side's figure is its fastest run over all rounds. The "
        f"spread: the rounds cut into {GROUPS} consecutive blocks give the same ratio each; "
        "(largest - smallest) / the ratio estimates how far a repeated run lands, and above "
        f"{SPREAD_LIMIT:.0%} the ratio is marked too wide to trust (the host was busy: run "
        "again on a quiet machine).",
        "- Engine kernels for conv/FC/depthwise: native (`natmod/tsnn`, the .mpy for the "
        "node's arch) or viper (`--kernels`); the other ops always run viper.",
        "- Heap: the node engine's heap while running (arena + scratch + op tables + bytes "
        "allocated by one inference) against tflite-micro's `print_allocations()` arena "
        "total. The package buffer itself (weights, loaded into RAM unless read from ROMFS) "
        "is listed separately, as tflite-micro keeps weights in flash.",
        "",
        "",
    ]
    return "\n".join(lines)


def _virtual_section(summary: dict) -> str:
    env = summary["environment"]
    rows = summary["results"]
    arch = _arch(rows) or "unknown"
    sets = _kernel_sets(rows)
    title = _BUILD_TITLE.get(arch, f"{_ARCH_KIND.get(arch, arch)} build")
    lines = [
        f"<!-- build {arch} -->",
        f"## {title} (mpy arch {arch})",
        "",
        _generated_by(summary, "docs/benchmarks.md"),
        "",
        f"Node: {summary['target']} target{_arch_label(rows)}, MicroPython "
        f"{env['micropython']}, board config {summary['board']}.",
        "",
        "| model | MACs | reference ms | "
        + " | ".join(f"{k} ms | {k} / ref | {k} spread" for k in sets)
        + " | node heap B | ref arena B | heap / arena | package heap B | bit-exact |",
        "|---|---:|---:|" + "---:|---:|---:|" * len(sets) + "---:|---:|---:|---:|:-:|",
    ]
    for model, by in _by_model(rows):
        first = next(iter(by.values()))
        ref = min(r["reference_ms"] for r in by.values())
        cells = []
        for k in sets:
            r = by.get(k)
            cells.append(f"{r['node_ms']:.3f} | {r['ratio']:.2f}x | {_spread(r)}" if r
                         else "| |")
        lines.append(
            f"| {model.removesuffix('.tflite')} | {first['macs']:,} | {ref:.3f} | "
            + " | ".join(cells) + f" | {first['node_heap_peak_bytes']:,} | "
            f"{first['reference_arena_bytes']:,} | {first['heap_ratio']:.2f}x | "
            f"{first['node_package_heap_bytes']:,} | "
            f"{'yes' if all(r['bit_exact'] for r in by.values()) else 'NO'} |")
    for e in summary.get("errors", []):
        lines.append(f"| {e['model'].removesuffix('.tflite')} | failed"
                     + (f" ({e['kernels']})" if e.get("kernels") else "")
                     + f": {e['error']} |" + " |" * (3 * len(sets) + 5) + " NO |")
    n_err = len(summary.get("errors", []))
    lines.append("")
    for k in sets:
        kr = [r for r in rows if (r.get("kernels") or "viper") == k]
        g = geomean([r["ratio"] for r in kr])
        untrusted = [r["model"].removesuffix(".tflite") for r in kr if not r.get("ratio_trusted")]
        goal = (f" (goal: at most {NATIVE_RATIO_GOAL}x: "
                f"{'met' if g <= NATIVE_RATIO_GOAL else 'NOT met'})" if k == "native" else "")
        lines.append(
            f"- **Geometric mean of node / reference time, {k}: {g:.2f}x** over {len(kr)} "
            "models" + goal + "."
            + (f" Spread too wide to trust for: {', '.join(untrusted)}." if untrusted else ""))
    h = max(r["heap_ratio"] for r in rows)
    lines += [
        f"- Heap / arena: geometric mean {geomean([r['heap_ratio'] for r in rows]):.2f}x, "
        f"worst {h:.2f}x (goal: at most {HEAP_RATIO_GOAL}x: "
        f"{'met' if h <= HEAP_RATIO_GOAL else 'NOT met'})"
        + (f"; {n_err} runs could not be benched." if n_err else "."),
        "",
        f"<!-- end build {arch} -->",
        "",
    ]
    return "\n".join(lines)


_SECTION_RE = re.compile(r"<!-- build (\S+) -->\n.*?<!-- end build \1 -->\n\n?", re.S)
_BUILD_ORDER = {"x86": 0, "x64": 1}


def _merge_sections(old_generated: str, new_section: str) -> str:
    """The builds' sections of an existing file with `new_section` replacing its build's."""
    sections = {m.group(1): m.group(0).rstrip("\n") + "\n\n"
                for m in _SECTION_RE.finditer(old_generated)}
    arch = _SECTION_RE.match(new_section).group(1)
    sections[arch] = new_section.rstrip("\n") + "\n\n"
    return "".join(sections[a] for a in sorted(sections, key=lambda a: (_BUILD_ORDER.get(a, 9),
                                                                         a)))


# Published ESP32-C3 (160 MHz) latencies for the same models: tflite-micro with its reference
# kernels, and with ESP-NN (esp-tflite-micro README). Only person detection is published.
C3_ANCHORS_MS = {"tflm_person_detect": (3355.0, 426.0)}
# Goals (issue 12): RV32 instructions per inference, by kernel set.
RV32_GOALS = {"native": {"tflm_person_detect": 55_000_000, "mlperf_kws_ref_model": 20_000_000},
              "viper": {"tflm_person_detect": 150_000_000}}


def render_markdown_rv32(summary: dict) -> str:
    """The RV32 QEMU table: instructions (deterministic, -icount shift=0), not host time."""
    env = summary["environment"]
    rows = summary["results"]
    sets = _kernel_sets(rows)
    lines = [
        "# Benchmarks on the RV32 QEMU board: instructions per inference",
        "",
        _generated_by(summary, "docs/benchmarks-rv32.md"),
        "",
        f"- Node: the RV32 QEMU board (MicroPython {env['micropython']}; rv32imc code from "
        "MicroPython's RV32 native emitter, no Zba/Zcmp, as on an ESP32-C3), board config "
        f"{summary['board']}. QEMU runs with `-icount shift=0`: one guest instruction is one "
        "nanosecond of the node's clock, so `time.ticks_us` deltas x 1000 are instructions "
        "(to the microsecond: +-1,000); the count is deterministic, so "
        f"{summary['repeats']} run(s) after a warm-up inference, {summary.get('rounds', 1)} "
        "round(s), suffice. The tflite-micro reference runs on the host: a node/reference "
        "ratio here would compare QEMU's instruction clock with host time and means nothing, "
        "so none is shown.",
        "- Engine kernels for conv/FC/depthwise: " + " and ".join(sets) + " (`--kernels`; the "
        "other ops always run viper; native is `natmod/tsnn`'s rv32imc .mpy).",
        "- C3 lower bound: instructions / 160e6 s. An ESP32-C3 at 160 MHz retires at most one "
        "instruction per cycle, and flash cache misses, loads and branches cost more: the "
        "real latency is higher. Neither QEMU's wall time nor this bound is Xtensa (ESP32, "
        "S3) timing; only a board shows that.",
        "- Published C3 figures (esp-tflite-micro README, ESP32-C3 at 160 MHz): tflite-micro "
        "reference kernels / ESP-NN optimised kernels.",
        "",
        "| model | MACs | "
        + " | ".join(f"{k} instructions | {k} / MAC | {k} C3 >= ms" for k in sets)
        + " | published C3 ms (reference / ESP-NN) | node heap B | placement | bit-exact |",
        "|---|---:|" + "---:|---:|---:|" * len(sets) + "---:|---:|:-:|:-:|",
    ]
    for model, by in _by_model(rows):
        name = model.removesuffix(".tflite")
        first = next(iter(by.values()))
        anchor = C3_ANCHORS_MS.get(name)
        cells = []
        for k in sets:
            r = by.get(k)
            cells.append(f"{r['instructions_per_inference'] or 0:,} | "
                         f"{r['instructions_per_mac'] or 0:.1f} | "
                         f"{r['c3_160mhz_lower_bound_ms'] or 0:.1f}" if r else "| |")
        lines.append(
            f"| {name} | {first['macs']:,} | " + " | ".join(cells) + " | "
            + (f"{anchor[0]:,.0f} / {anchor[1]:,.0f}" if anchor else "") + " | "
            f"{first['node_heap_peak_bytes']:,} | {first.get('placement', '')} | "
            f"{'yes' if all(r['bit_exact'] for r in by.values()) else 'NO'} |")
    for e in summary.get("errors", []):
        lines.append(f"| {e['model'].removesuffix('.tflite')} | failed"
                     + (f" ({e['kernels']})" if e.get("kernels") else "")
                     + f": {e['error']} |" + " |" * (3 * len(sets) + 3) + " NO |")
    goals = []
    for kset, targets in RV32_GOALS.items():
        for model, by in _by_model(rows):
            name = model.removesuffix(".tflite")
            if name in targets and kset in by:
                n = by[kset]["instructions_per_inference"] or 0
                goal = targets[name]
                met = n <= goal if kset == "native" else n < goal
                goals.append(f"{name} {n / 1e6:.1f} M with {kset} (goal: "
                             f"{'at most' if kset == 'native' else 'under'} {goal / 1e6:.0f} M: "
                             f"{'met' if met else 'NOT met'})")
    if goals:
        lines += ["", "Goals: " + "; ".join(goals) + "."]
    lines += ["", KEEP_MARKER, ""]
    return "\n".join(lines)


def write_markdown(summary: dict, path: Path) -> None:
    """Write the table, keeping whatever follows KEEP_MARKER in an existing file; on the
    virtual board, also the sections of the other builds (32-bit, 64-bit)."""
    kept, old_generated = "", ""
    if path.exists():
        old = path.read_text()
        if KEEP_MARKER in old:
            old_generated, kept = old.split(KEEP_MARKER, 1)
            kept = kept.lstrip("\n")
        else:
            old_generated = old
    path.parent.mkdir(parents=True, exist_ok=True)
    rv32 = any(r.get("instructions_per_inference") is not None for r in summary["results"])
    if rv32:
        text = render_markdown_rv32(summary)
    else:
        text = (_virtual_header(summary)
                + _merge_sections(old_generated, _virtual_section(summary))
                + KEEP_MARKER + "\n\n")
    path.write_text(text + kept)
