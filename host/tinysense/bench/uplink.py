"""Node-side uplink cost: seal frames on a node (the virtual board by default) and report.

The node code is firmware/tsnode/uplink/bench.py (deployed as .mpy like any firmware); this
module deploys, runs it through the raw REPL and returns its numbers. `seal_cost()` is the
flat summary `tinysense bench-gateway` prints; `tinysense bench-seal` prints the table.
"""

from __future__ import annotations

import json

from tinysense.errors import TinysenseError

SIZES = (16, 64, 256, 1024)


def measure(target: str = "virtual", board: str = "ESP32_GENERIC", frames: int = 1000,
            deploy: bool = True) -> list[dict]:
    """Seal `frames` frames per payload size on the node; one dict per case.

    Args:
        target: auto | virtual | qemu | port/URL (see tinysense.targets).
        board: board config id (its heap applies on the virtual board).
        frames: frames per case (the GC is off while timing; the seal path allocates
            about one small view per frame, so keep this under ~2000 on small heaps).
        deploy: deploy the uplink package first (tsnode/__init__.py and tsnode/uplink/,
            compiled with mpy-cross for the board, as `tinysense deploy` does; the rest of
            the node's files are left alone).
    """
    import shutil
    import tempfile
    from pathlib import Path

    from tinysense.node import open_node
    from tinysense.paths import FIRMWARE_DIR

    code = ("import json\nfrom tsnode.uplink.bench import bench_seal\n"
            f"print(json.dumps(bench_seal({int(frames)}, {SIZES!r})))\n")
    with open_node(target=target, board=board) as node, tempfile.TemporaryDirectory() as tmp:
        if deploy:
            stage = Path(tmp) / "fw"
            shutil.copytree(Path(FIRMWARE_DIR) / "tsnode" / "uplink",
                            stage / "tsnode" / "uplink",
                            ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(Path(FIRMWARE_DIR) / "tsnode" / "__init__.py", stage / "tsnode")
            node.deploy(src=stage, build_dir=Path(tmp) / "build", prune=False, progress=None)
        out = node.exec(code, timeout=120)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise TinysenseError(f"unexpected output from the node seal bench: {out[-300:]!r}"
                             ) from None


def seal_cost(target: str = "virtual", board: str = "ESP32_GENERIC",
              frames: int = 1000) -> dict:
    """Flat summary: us/frame and frames/s for a 64-byte payload, plus the other sizes."""
    rows = measure(target, board, frames)
    summary: dict = {"board": board}
    for row in rows:
        tag = "batch3" if row["what"] != "seal" else f"{row['payload_bytes']}B"
        summary[f"us_{tag}"] = float(row["us_per_frame"])
        if row["what"] == "seal" and row["payload_bytes"] == 64:
            summary["frames_per_s_64B"] = float(row["frames_per_s"])
            summary["alloc_B_per_frame"] = float(row["alloc_bytes_per_frame"])
    return summary


def format_table(rows: list[dict], board: str, target: str) -> str:
    lines = [f"node seal cost on {target} ({board}), AES-128-CCM on cryptolib ECB+CBC:",
             f"  {'case':14} {'payload B':>9} {'us/frame':>9} {'frames/s':>10} "
             f"{'heap B/frame':>12}"]
    for r in rows:
        lines.append(f"  {r['what']:14} {r['payload_bytes']:9d} {r['us_per_frame']:9.1f} "
                     f"{r['frames_per_s']:10.0f} {r['alloc_bytes_per_frame']:12.1f}")
    return "\n".join(lines)
