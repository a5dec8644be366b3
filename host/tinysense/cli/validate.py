"""CLI for validate, validate-all, bench and bench-all (argparse only; logic in core/bench)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinysense.cli import add_target_args, check_output
from tinysense.progress import Progress


def _kernels_arg(p: argparse.ArgumentParser, both: bool = False) -> None:
    p.add_argument("--kernels", choices=["auto", "native", "viper"] + (["both"] if both else []),
                   default="auto",
                   help="the node's conv/depthwise kernels: auto (native, tsnn.mpy, when "
                   "deployed for the node's arch, else viper), native (an error without "
                   "it) or viper" + ("; both: each model with native, then viper" if both
                                     else ""))


def register(sub) -> None:
    p = sub.add_parser("validate", help="run a model on the node and in tflite-micro; compare "
                       "every output byte")
    p.add_argument("model", type=Path, help="int8 .tflite model")
    add_target_args(p)
    p.add_argument("--vectors", type=int, default=20,
                   help="random input vectors, the first 3 all -128 / all 127 / zero point "
                   "(int16 inputs: their own min / max) (default 20)")
    p.add_argument("--inputs", type=Path, help=".npz with extra inputs (one array per input)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random vectors")
    p.add_argument("--json", type=Path, help="write the result as JSON ('-' for stdout; the "
                   "file's directory must exist)")
    p.add_argument("--no-timing", action="store_true", help="skip the latency measurement")
    p.add_argument("--placement", choices=["auto", "ram", "stream"], default="auto",
                   help="where the node keeps the constants: auto (ROMFS in place, else RAM, "
                   "else streamed op by op), ram, or stream")
    _kernels_arg(p)
    p.add_argument("--html", type=Path, metavar="REPORT.html",
                   help="write a self-contained HTML report with plots (its directory must "
                   "exist)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("validate-all", help="validate every conformance model on one node")
    add_target_args(p)
    p.add_argument("--models", type=Path, nargs="*", help="models (default tests/conformance)")
    p.add_argument("--vectors", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the summary as JSON ('-' for stdout)")
    p.add_argument("--html", type=Path, metavar="DIR",
                   help="write DIR/summary.html and one HTML report per model (DIR is made "
                   "if missing; its parent must exist)")
    _kernels_arg(p)
    p.set_defaults(func=_validate_all)

    from tinysense.bench.stats import SPREAD_LIMIT

    p = sub.add_parser(
        "bench", help="node latency and heap vs the tflite-micro reference",
        description="Time one model on the node and in the tflite-micro reference on the "
        "host, in many short alternating rounds: each side's fastest run counts, the rounds "
        "give the spread of the ratio (marked too wide to trust above "
        f"{SPREAD_LIMIT:.0%}). On the RV32 QEMU board the node's time is its instruction "
        "count.")
    p.add_argument("model", type=Path, help="the int8 .tflite model")
    add_target_args(p)
    _count_args(p)
    p.add_argument("--json", type=Path, help="write the result as JSON here ('-': stdout)")
    _kernels_arg(p)
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "bench-all", help="bench every conformance model; markdown table",
        description="bench for every conformance model on one node; --md writes the table "
        "(docs/benchmarks.md keeps one section per build of the virtual board).")
    add_target_args(p)
    p.add_argument("--models", type=Path, nargs="*", help="models (default tests/conformance)")
    _count_args(p)
    p.add_argument("--md", type=Path, help="write the table here (e.g. docs/benchmarks.md)")
    p.add_argument("--json", type=Path, help="write the summary as JSON here ('-': stdout)")
    _kernels_arg(p, both=True)
    p.set_defaults(func=_bench_all)


def _count_args(p: argparse.ArgumentParser) -> None:
    from tinysense.bench.models import (
        DEFAULT_REPEATS, DEFAULT_ROUNDS, QEMU_REPEATS, QEMU_ROUNDS,
    )

    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed runs per round on each side (default {DEFAULT_REPEATS}; "
                   f"{QEMU_REPEATS} on qemu-rv32, whose instruction count is exact)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"rounds, node and reference alternating (default {DEFAULT_ROUNDS}; "
                   f"{QEMU_ROUNDS} on qemu-rv32)")


def _progress(args: argparse.Namespace) -> Progress:
    """Progress goes to stdout, or to stderr when the JSON goes to stdout (--json -); one
    updating line on a terminal, plain lines otherwise (tinysense.progress)."""
    if not hasattr(args, "_progress"):
        args._progress = Progress(sys.stderr if str(getattr(args, "json", None)) == "-"
                                  else sys.stdout)
    return args._progress


def _validate(args: argparse.Namespace) -> int:
    from tinysense.validate.core import validate_model, write_json

    check_output(args.json, "--json")
    check_output(args.html, "--html")
    with _progress(args):
        result = validate_model(args.model, target=args.target, board=args.board,
                                vectors=args.vectors, inputs=args.inputs, seed=args.seed,
                                timing=not args.no_timing, progress=_progress(args),
                                placement=args.placement, kernels=args.kernels)
    if args.json:
        write_json(result.to_dict(), args.json)
    if args.html:
        from tinysense.report.html import write_validate

        _progress(args)(f"report: {write_validate(result.to_dict(), args.html)}")
    return 0 if result.bit_exact else 1


def _validate_all(args: argparse.Namespace) -> int:
    from tinysense.validate.core import validate_all, write_json

    check_output(args.json, "--json")
    check_output(args.html, "--html", directory=True)
    with _progress(args):
        summary = validate_all(target=args.target, board=args.board,
                               models=args.models or None, vectors=args.vectors,
                               seed=args.seed, progress=_progress(args), kernels=args.kernels)
    if args.json:
        write_json(summary, args.json)
    if args.html:
        from tinysense.report.html import write_validate_all

        _progress(args)(f"report: {write_validate_all(summary, args.html)}")
    return 0 if summary["bit_exact"] else 1


def _bench(args: argparse.Namespace) -> int:
    from tinysense.bench.models import bench_model
    from tinysense.validate.core import write_json

    result = bench_model(args.model, target=args.target, board=args.board,
                         repeats=args.repeats, rounds=args.rounds, progress=_progress(args),
                         kernels=args.kernels)
    if args.json:
        write_json(result.to_dict(), args.json)
    return 0 if result.bit_exact else 1


def _bench_all(args: argparse.Namespace) -> int:
    from tinysense.bench.models import bench_all
    from tinysense.validate.core import write_json

    summary = bench_all(target=args.target, board=args.board, models=args.models or None,
                        repeats=args.repeats, rounds=args.rounds, md=args.md,
                        progress=_progress(args), kernels=args.kernels)
    if args.json:
        write_json(summary, args.json)
    return 0 if all(r["bit_exact"] for r in summary["results"]) and not summary["errors"] \
        else 1
