"""`tinysense convert MODEL.tflite -o MODEL.tsm [--board B] [--json OUT]`: argparse only."""

from __future__ import annotations

import json
from pathlib import Path

from tinysense.cli import env_default


def cmd_convert(args) -> int:
    from tinysense.convert import convert_model, write_package

    result = convert_model(args.model, board=args.board)
    out = Path(args.output) if args.output else Path(args.model).with_suffix(".tsm")
    write_package(result, out)
    print(result.report.text())
    if args.tensors:
        print("activation tensors (arena offsets):")
        print(result.report.tensor_map())
    print(f"wrote {out} ({len(result.package):,} bytes)")
    if args.json:
        Path(args.json).write_text(json.dumps(result.report.to_dict(), indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert an int8 .tflite model to a .tsm package")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("-o", "--output", help="output .tsm path (default: beside the model)")
    p.add_argument("--board", default=env_default("TINYSENSE_BOARD"),
                   help="board id or .toml: report whether the model fits its heap "
                        "(env TINYSENSE_BOARD)")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.add_argument("--tensors", action="store_true",
                   help="also print every activation tensor's arena offset")
    p.set_defaults(func=cmd_convert)
