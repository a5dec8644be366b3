"""`tinysense convert MODEL.tflite -o MODEL.tsm [--board B] [--json OUT]`: argparse only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tinysense.cli import check_output, env_default


def cmd_convert(args) -> int:
    from tinysense.convert import UnsupportedModel, convert_model, write_package

    out = Path(args.output) if args.output else Path(args.model).with_suffix(".tsm")
    check_output(out, "-o")
    check_output(args.json, "--json")
    try:
        result = convert_model(args.model, board=args.board)
    except UnsupportedModel as exc:   # --json: the problems as a list, then the error itself
        doc = {"model": Path(args.model).name, "problems": exc.problems}
        if args.json == "-":
            print(json.dumps(doc, indent=1))
        elif args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        raise
    write_package(result, out)
    # with --json - the JSON owns stdout (as validate and bench): the text report goes to stderr
    text = sys.stderr if args.json == "-" else sys.stdout
    print(result.report.text(), file=text)
    if args.tensors:
        print("activation tensors (arena offsets):", file=text)
        print(result.report.tensor_map(), file=text)
    print(f"wrote {out} ({len(result.package):,} bytes)", file=text)
    if args.json == "-":
        print(json.dumps(result.report.to_dict(), indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(result.report.to_dict(), indent=1) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert an int8 .tflite model to a .tsm package")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("-o", "--output", help="output .tsm path (default: beside the model)")
    p.add_argument("--board", default=env_default("TINYSENSE_BOARD"),
                   help="board id or .toml: report whether the model fits its heap "
                        "(env TINYSENSE_BOARD)")
    p.add_argument("--json", help="also write the report as JSON to this file ('-' for stdout)")
    p.add_argument("--tensors", action="store_true",
                   help="also print every activation tensor's arena offset")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("quantize", help="quantize a float Keras model / SavedModel to a "
                                        "full-integer .tflite (needs the train extra)",
                       description="Full-integer quantization with TensorFlow's converter, "
                                   "calibrated on your windows; then float vs quantized "
                                   "agreement on held-out windows and the board fit.")
    p.add_argument("model", help="a Keras model (.keras, .h5) or a SavedModel directory")
    p.add_argument("-o", "--output", required=True, help="the .tflite to write")
    p.add_argument("--calibration", required=True, metavar="DATA.npz",
                   help="calibration windows (array x, else inputs, else the only array)")
    p.add_argument("--heldout", metavar="DATA.npz",
                   help="held-out windows for the agreement report (default: the calibration "
                        "windows)")
    p.add_argument("--scheme", choices=["int8", "16x8"], default="int8",
                   help="int8 (default), or 16x8: int16 activations with int8 weights")
    p.add_argument("--board", default=env_default("TINYSENSE_BOARD", "ESP32_GENERIC"),
                   help="board for the fit verdict (env TINYSENSE_BOARD)")
    p.add_argument("--json", help="also write the report as JSON to this file ('-' for stdout)")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> int:
    from tinysense.quantize import quantize_model

    check_output(args.output, "-o")
    check_output(args.json, "--json")
    text = sys.stderr if args.json == "-" else sys.stdout
    result = quantize_model(args.model, args.calibration, args.output, scheme=args.scheme,
                            heldout=args.heldout, board=args.board,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(result.summary(), file=text)
    if args.json == "-":
        print(json.dumps(result.to_dict(), indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return 0
