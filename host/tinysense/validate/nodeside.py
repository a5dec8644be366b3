"""A converted model loaded on a node, driven through tsnode.agent over the raw REPL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinysense.convert import dequantize_output, quantize_input
from tinysense.errors import TinysenseError

REMOTE_DIR = "/models"
_TRACE = Path(__file__).resolve().parent / "nodecode" / "trace.py"


def _json_line(text: str, what: str) -> dict:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise TinysenseError(f"unexpected answer from the node's agent to {what}: "
                             f"{text.strip()[:200]!r}") from None


class NodeModel:
    """Put a .tsm package on the node, load it with the agent, run and inspect it.

    Args:
        node: a connected tinysense.node.Node with the firmware deployed.
        package: the .tsm bytes (convert_model(...).package).
        report: the converter's ConvertReport (inputs/outputs with shapes and dtypes).
        name: file name on the node, under /models.
        placement: "auto" (the agent picks: ROMFS in place, else RAM, else streamed),
            "ram" (the whole package in the heap) or "stream" (constants read from the
            file op by op).
    """

    PLACEMENTS = {"auto": None, "ram": False, "stream": True}   # -> agent.load(stream=...)

    def __init__(self, node, package: bytes, report, name: str = "_validate.tsm",
                 timeout: float = 120, placement: str = "auto"):
        self.node = node
        self.report = report
        self.timeout = timeout
        self.remote = f"{REMOTE_DIR}/{name}"
        # agent.load() drops an earlier model and collects the file copy's garbage before it
        # imports the kernels and allocates (docs/engine.md); the agent itself is small.
        node.exec("import gc\ngc.collect()\nfrom tsnode import agent", timeout=timeout)
        node.mkdir(REMOTE_DIR)
        node.put(package, self.remote)
        try:
            stream = self.PLACEMENTS[placement]
            out = node.exec(f"gc.collect()\nagent.load({self.remote!r}, {stream!r})",
                            timeout=timeout)
        except TinysenseError as exc:
            if "MemoryError" not in str(exc):
                raise
            raise TinysenseError(
                f"the model does not fit the node's heap (agent.load: MemoryError; the "
                f"converter estimated {report.heap_needed:,} B of {report.board}'s "
                f"{report.heap_budget or 0:,} B budget, placement {report.placement}); use a "
                "board with more RAM (PSRAM) or ROMFS, or a smaller model") from None
        self.info = _json_line(out, "agent.load")
        want = [io["nbytes"] for io in report.inputs]
        got = [io["nbytes"] for io in self.info.get("inputs", [])]
        if want != got:
            raise TinysenseError(f"the node loaded a package with input sizes {got}, the "
                                 f"converter wrote {want}; is the node's firmware current "
                                 "(tinysense deploy)?")

    # -- host <-> node representations ---------------------------------------------------
    def node_inputs(self, arrays) -> bytes:
        """The node's int8 input bytes for model-level inputs (float ones are quantized as
        tflite-micro's QUANTIZE would)."""
        parts = []
        for arr, io in zip(arrays, self.report.inputs):
            parts.append(quantize_input(arr, io).tobytes() if io["model_dtype"] != "int8"
                         else np.asarray(arr, np.int8).tobytes())
        return b"".join(parts)

    def model_outputs(self, raw: bytes) -> list[np.ndarray]:
        """Split the node's output bytes per output; dequantize the float ones."""
        outs, pos = [], 0
        need = sum(io["nbytes"] for io in self.report.outputs)
        if len(raw) != need:
            raise TinysenseError(f"the node returned {len(raw)} output bytes, the model has "
                                 f"{need}")
        for io in self.report.outputs:
            q = np.frombuffer(raw[pos:pos + io["nbytes"]], np.int8).reshape(io["shape"])
            pos += io["nbytes"]
            outs.append(dequantize_output(q, io) if io["model_dtype"] != "int8" else q.copy())
        return outs

    # -- agent calls ---------------------------------------------------------------------
    def infer(self, arrays) -> list[np.ndarray]:
        """One inference on the node: model-level inputs in, model-level outputs out."""
        hexstr = self.node_inputs(arrays).hex()
        out = self.node.exec(f"agent.infer_hex({hexstr!r})", timeout=self.timeout)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        try:
            raw = bytes.fromhex(lines[-1].strip())
        except (IndexError, ValueError):
            raise TinysenseError(f"unexpected answer from agent.infer_hex: {out[:200]!r}"
                                 ) from None
        return self.model_outputs(raw)

    def bench(self, repeats: int) -> dict:
        """agent.bench: median/min/max ms of `repeats` runs of the last input, after a
        warm-up run, and the bytes one inference allocated."""
        return _json_line(self.node.exec(f"agent.bench({int(repeats)})",
                                         timeout=self.timeout * 4), "agent.bench")

    def heap(self) -> dict:
        return _json_line(self.node.exec("agent.heap()", timeout=self.timeout), "agent.heap")

    def op_output(self, arrays, op_index: int, tensor: int) -> bytes:
        """Tensor `tensor` right after tflite operator `op_index` ran (public agent API:
        infer_hex(h, stop=k) then tensor_hex(t); one exec and one hex dump per call)."""
        hexstr = self.node_inputs(arrays).hex()
        self.node.exec(f"agent.infer_hex({hexstr!r}, stop={int(op_index)})",
                       timeout=self.timeout)
        out = self.node.exec(f"agent.tensor_hex({int(tensor)})", timeout=self.timeout)
        return bytes.fromhex(out.strip().splitlines()[-1].strip())

    def trace(self, arrays, dump: int = -1) -> list[tuple[int, int, int, str]]:
        """Run op by op on the node: (position, tflite op index, tensor, crc32 or hex)."""
        code = (f"_INPUT_HEX = {self.node_inputs(arrays).hex()!r}\n_DUMP = {int(dump)}\n"
                + _TRACE.read_text())
        rows = []
        for line in self.node.exec(code, timeout=self.timeout * 2).splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[0] in ("C", "T"):
                rows.append((int(parts[1]), int(parts[2]), int(parts[3]), parts[4]))
        return rows
