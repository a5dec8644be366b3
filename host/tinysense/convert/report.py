"""The converter's report: what the package holds and whether it fits the board's heap."""

from __future__ import annotations

import dataclasses

# What a node holds besides arena, scratch and package, per pointer size (4: every ESP32, the
# 32-bit virtual board and the RV32 QEMU board; 8: the 64-bit virtual board fallback), as
# (engine fixed, engine per op, app reserve) in bytes. Engine fixed: the kernels' native code
# and module objects; per op: its parameter array and plan entries; app reserve: the rest of
# the firmware a deployed node holds beside the model (supervisor, board seam, agent, uplink
# ccm/frame/records, app), which the fit verdict promises the model runs beside. Measured with
# the modules compiled by mpy-cross for the node (tests/hil/test_memory.py prints them): app
# modules 23.5 KB and engine ~9 KB on the 32-bit x86 build, 33.0 KB and ~13 KB (18 KB with
# what the agent imports) on the 64-bit build; 24.3 KB of app modules on the 32-bit build
# since the agent's chunked I/O (put_input/run/get_output). Rounded up on purpose. The verdict
# is for the board, so it uses 4 unless told the node is 64-bit (test_fit_verdict.py does).
NODE_OVERHEAD = {4: (13000, 200, 26000), 8: (20000, 320, 32000)}
# Big blocks need contiguous free memory in a heap shared with many small objects: allow a
# quarter of the arena and of the package buffer on top. The streaming buffer is allocated
# right after the arena following a collection (engine/model.py), into the least fragmented
# heap the node will have, so it gets a twentieth. Calibrated on the 32-bit virtual board
# with ESP32_GENERIC_C3's config at other heap sizes: mlperf_ad01 (89.6 KB streaming buffer)
# really needs 142-145 KB, resnet (49 KB arena, 37.6 KB buffer) 160-163 KB; a quarter of the
# buffer put ad01 at 163.6 KB, refused on a C3 where it runs.
FRAGMENTATION = 0.25
FRAGMENTATION_STREAM_BUFFER = 0.05
# Room to run once loaded. The host writes the input into the model's input tensors and reads
# the output back in chunks of IO_CHUNK bytes, one raw-REPL exec each (agent.put_input /
# get_output, tinysense.validate.nodeside), so this is a constant whatever the model's I/O: the
# REPL's compile buffers (4 KB) plus one chunk's exec: its base64 source text, the string and
# the decoded bytes, 4.0 KB for a 1,536 B chunk (measured with the GC off on the 32-bit virtual
# board; the earlier single exec of the whole input as hex took ~4.4x the input: 13.2 KB for
# resnet's 3 KB, and 6x with the output, which refused person_detect and vww on a C3).
# Without it a model can load and then fail its first inference (mlperf_ad01 streamed on
# ESP32_GENERIC_C3 beside the app: loads with 12.8 KB free in pieces, its input cannot be
# allocated). tests/hil/test_fit_verdict.py checks that verdict and node agree on every board.
IO_CHUNK = 1536
RUN_RESERVE_BYTES = 4096 + 3 * IO_CHUNK
# MACs, as convert, validate and bench count them (reference.count_macs uses this too): the
# multiply-accumulates of these ops, one per weight tap per output element (SVDF: per batch row
# and filter, its inputs and its memory: weights_feature and weights_time). Bias additions,
# pools, ADD/MUL/MEAN and requantisation are not multiply-accumulates and are not counted.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SVDF")


@dataclasses.dataclass
class ConvertReport:
    model: str
    ops: list[dict]
    macs: int
    const_bytes: int
    arena_bytes: int
    scratch_bytes: int
    package_bytes: int
    tables_bytes: int                # header + tensor/op tables (held in RAM when streaming)
    max_op_const_bytes: int          # the largest op's constants (the streaming buffer)
    tensors: list[dict]
    inputs: list[dict]
    outputs: list[dict]
    board: str | None = None
    heap_budget: int | None = None
    placement: str = "ram"
    heap_needed: int = 0
    fits: bool | None = None
    fit_reason: str = ""
    state_bytes: int = 0             # of arena_bytes: state kept across inferences (SVDF)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def tensor_map(self) -> str:
        """The arena plan: one line per activation tensor, by offset."""
        rows = sorted((t for t in self.tensors if t["offset"] is not None),
                      key=lambda t: (t["offset"], t["index"]))
        return "\n".join(f"  arena {t['offset']:>8,}..{t['offset'] + t['nbytes']:<8,} tensor "
                         f"{t['index']:3d} {t['name'][:40]:<40} {t['shape']}" for t in rows)

    def __post_init__(self):
        # the ops' own work estimates count pool windows and elementwise outputs too; only
        # MAC_OPS are multiply-accumulates
        for op in self.ops:
            if op.get("name") not in MAC_OPS:
                op["macs"] = 0
        self.macs = sum(int(op.get("macs", 0)) for op in self.ops)

    def text(self) -> str:
        lines = [f"model {self.model}: {len(self.ops)} ops, {self.macs:,} MACs"]
        for op in self.ops:
            lines.append(f"  {op['index']:3d} {op['name']:<18} -> {op['out_shape']!s:<18} "
                         f"{op['macs']:>11,} MACs")
        state = f" (state {self.state_bytes:,} B)" if self.state_bytes else ""
        lines.append(f"constants {self.const_bytes:,} B   arena {self.arena_bytes:,} B{state}   "
                     f"scratch {self.scratch_bytes:,} B   package {self.package_bytes:,} B")
        for kind, items in (("input", self.inputs), ("output", self.outputs)):
            for io in items:
                node = io.get("node_dtype", "int8")
                lines.append(f"{kind} tensor {io['tensor']} {io['shape']} {node} "
                             f"scale={io['scale']:.6g} zero_point={io['zero_point']}"
                             + (f" (model {io['model_dtype']})"
                                if io['model_dtype'] != node else ""))
        if self.board:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(f"board {self.board}: {verdict} (placement {self.placement}, needs "
                         f"~{self.heap_needed:,} B of {self.heap_budget:,} B heap): "
                         f"{self.fit_reason}")
        return "\n".join(lines)


def fit(report: ConvertReport, board, word_bytes: int = 4) -> None:
    """Decide where the weights live on `board` and whether the heap budget holds.

    romfs: constants read in place from flash; ram: the package loaded whole; stream: each
    op's constants read from the file into one buffer just before the op runs (slower).

    Args:
        word_bytes: the node's pointer size: 4 for a board (and the 32-bit nodes), 8 for
            the 64-bit virtual board, whose objects are larger.
    """
    engine_fixed, per_op, app_reserve = NODE_OVERHEAD[word_bytes]
    engine = engine_fixed + per_op * len(report.ops)
    run = RUN_RESERVE_BYTES
    work = report.arena_bytes + report.scratch_bytes + engine + app_reserve + run

    def frag(block, share=FRAGMENTATION):
        return int(FRAGMENTATION * report.arena_bytes + share * block)

    report.board = board.name
    report.heap_budget = board.heap_budget
    ram = work + report.package_bytes + frag(report.package_bytes)
    stream = work + report.tables_bytes + report.max_op_const_bytes + \
        frag(report.max_op_const_bytes, FRAGMENTATION_STREAM_BUFFER)
    if board.has_romfs and report.package_bytes <= board.romfs_size:
        # tinysense's ROMFS images put a package on a 4-byte boundary (flash/romfs.py), so
        # the engine needs no staging buffer for it: only arena, engine and tables in the heap
        # plus the tables' size: calibrated on the 32-bit virtual board with ROMFS
        # (person_detect runs beside the app from 125.6 KB of heap, vww from 135.0 KB)
        report.placement = "romfs"
        report.heap_needed = work + report.tables_bytes + frag(0)
        why = ("constants are read in place from the ROMFS partition (an image built by "
               "tinysense deploy --romfs, which aligns the package)")
    elif ram <= board.heap_budget or stream >= ram:
        report.placement, report.heap_needed = "ram", ram
        why = "the whole package is loaded into the heap"
    else:
        report.placement, report.heap_needed = "stream", stream
        why = ("too big to load whole (~%s B); each op's constants are read from the file "
               "as it runs" % f"{ram:,}")
    why += " (includes %s B for the app's other modules and %s B to run)" % (
        f"{app_reserve:,}", f"{run:,}")
    report.fits = report.heap_needed <= board.heap_budget
    if not report.fits:
        why += "; use a board with PSRAM or ROMFS, or a smaller model"
    report.fit_reason = why
