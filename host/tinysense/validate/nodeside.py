"""A converted model loaded on a node, driven through tsnode.agent over the raw REPL."""

from __future__ import annotations

import base64
import json

import numpy as np

from tinysense.convert import dequantize_output, quantize_input
from tinysense.node.snippets import script
from tinysense.convert.report import IO_CHUNK
from tinysense.errors import TinysenseError

REMOTE_DIR = "/models"
# Input and output cross the raw REPL in IO_CHUNK pieces (2,048 base64 characters per exec),
# written straight into the model's tensors in the arena (agent.put_input / get_output): what
# running a model costs the node's heap is one chunk, whatever the model's input size, as the
# converter's fit verdict counts it (RUN_RESERVE_BYTES in convert/report.py).


def _node_dtype(io: dict) -> np.dtype:
    """The little-endian numpy dtype of an io tensor's bytes on the node (reports from before
    int16 ends have no node_dtype: int8)."""
    return np.dtype(io.get("node_dtype", "int8")).newbyteorder("<")


def _json_line(text: str, what: str) -> dict:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise TinysenseError(f"unexpected answer from the node's agent to {what}: "
                             f"{text.strip()[:200]!r}") from None


def in_romfs(node, report, placement: str = "auto") -> bool:
    """Whether the package goes to the node's ROMFS: the converter planned ROMFS for this
    node's board (it has a partition: a board config's, or the RV32 QEMU board's) and the
    caller left the placement to it."""
    return placement == "auto" and report.placement == "romfs" and node.board.has_romfs


def place_package(node, package: bytes, report, name: str = "_validate.tsm",
                  placement: str = "auto") -> str:
    """Put the package where the converter planned it and return its node path: the ROMFS
    partition (/rom/models/NAME, tinysense.flash.romfs.put_models) when in_romfs(), else the
    filesystem (/models/NAME). A ROMFS copy already there (same size and header, which holds
    the package's CRC) is kept: writing ROMFS resets the node, so a caller that must fill the
    heap before the load (tests/hil/test_fit_verdict.py) places the package first."""
    if not in_romfs(node, report, placement):
        remote = f"{REMOTE_DIR}/{name}"
        node.mkdir(REMOTE_DIR)
        node.put(package, remote)
        return remote
    from tinysense.flash.romfs import MODELS_DIR, put_models

    rom = f"/rom/{MODELS_DIR}/{name}"
    have = node.exec(f"from binascii import hexlify\ntry:\n f = open({rom!r}, 'rb')\n"
                     f" h = hexlify(f.read(64)).decode()\n f.seek(0, 2)\n print(h, f.tell())\n"
                     " f.close()\nexcept OSError:\n print('-')", timeout=30).split()
    if have == [package[:64].hex(), str(len(package))]:
        return rom
    return put_models(node, {name: package})[0]


class NodeModel:
    """Put a .tsm package on the node, load it with the agent, run and inspect it.

    Args:
        node: a connected tinysense.node.Node with the firmware deployed.
        package: the .tsm bytes (convert_model(...).package).
        report: the converter's ConvertReport (inputs/outputs with shapes and dtypes).
        name: file name on the node, under /models.
        placement: "auto" (in the node's ROMFS partition when the converter planned ROMFS,
            which resets the node; else on the filesystem, the agent picking RAM or streamed),
            "ram" (the whole package in the heap) or "stream" (constants read from the
            file op by op).
        kernels: "auto" | "native" | "viper": agent.load's kernels (the native conv/dwconv
            kernels when tsnn.mpy is on the node; "native" fails without it); `self.kernels`
            is what the node reported using.
    """

    PLACEMENTS = {"auto": None, "ram": False, "stream": True}   # -> agent.load(stream=...)

    def __init__(self, node, package: bytes, report, name: str = "_validate.tsm",
                 timeout: float = 120, placement: str = "auto", kernels: str = "auto"):
        self.node = node
        self.report = report
        self.timeout = timeout
        in_rom = in_romfs(node, report, placement)
        if in_rom:   # before the imports: writing the ROMFS partition resets the node
            self.remote = place_package(node, package, report, name, placement)
        # agent.load() drops an earlier model and collects the file copy's garbage before it
        # imports the kernels and allocates (docs/engine.md); the agent itself is small.
        node.exec("import gc\ngc.collect()\nfrom tsnode import agent", timeout=timeout)
        if not in_rom:
            self.remote = place_package(node, package, report, name, placement)
        try:
            stream = self.PLACEMENTS[placement]
            out = node.exec(f"gc.collect()\nagent.load({self.remote!r}, {stream!r}, "
                            f"{kernels!r})", timeout=timeout)
        except TinysenseError as exc:
            if "MemoryError" not in str(exc):
                raise
            raise TinysenseError(
                f"the model does not fit the node's heap (agent.load: MemoryError; the "
                f"converter estimated {report.heap_needed:,} B of {report.board}'s "
                f"{report.heap_budget or 0:,} B budget, placement {report.placement}); use a "
                "board with more RAM (PSRAM) or ROMFS, or a smaller model") from None
        self.info = _json_line(out, "agent.load")
        self.kernels = str(self.info.get("kernels", "viper"))   # an older agent: viper only
        # why "auto" ran viper: no tsnn.mpy, another arch's, or another ABI's ("" otherwise)
        self.kernels_why = str(self.info.get("kernels_why") or "")
        want = [io["nbytes"] for io in report.inputs]
        got = [io["nbytes"] for io in self.info.get("inputs", [])]
        if want != got:
            raise TinysenseError(f"the node loaded a package with input sizes {got}, the "
                                 f"converter wrote {want}; is the node's firmware current "
                                 "(tinysense deploy)?")

    # -- host <-> node representations ---------------------------------------------------
    def node_inputs(self, arrays) -> bytes:
        """The node's input bytes for model-level inputs: int8 / int16 (little-endian) as
        they are, float ones quantized as tflite-micro's QUANTIZE would."""
        parts = []
        for arr, io in zip(arrays, self.report.inputs):
            parts.append(quantize_input(arr, io).tobytes() if io["model_dtype"] == "float32"
                         else np.asarray(arr, _node_dtype(io)).tobytes())
        return b"".join(parts)

    def model_outputs(self, raw: bytes) -> list[np.ndarray]:
        """Split the node's output bytes per output; dequantize the float ones."""
        outs, pos = [], 0
        need = sum(io["nbytes"] for io in self.report.outputs)
        if len(raw) != need:
            raise TinysenseError(f"the node returned {len(raw)} output bytes, the model has "
                                 f"{need}")
        for io in self.report.outputs:
            q = np.frombuffer(raw[pos:pos + io["nbytes"]], _node_dtype(io)).reshape(io["shape"])
            pos += io["nbytes"]
            outs.append(dequantize_output(q, io) if io["model_dtype"] == "float32"
                        else q.copy())
        return outs

    # -- agent calls ---------------------------------------------------------------------
    def infer(self, arrays) -> list[np.ndarray]:
        """One inference on the node: model-level inputs in, model-level outputs out."""
        return self.model_outputs(self._run(self.node_inputs(arrays)))

    def _put_input(self, data: bytes) -> str:
        """Send the input in IO_CHUNK pieces into the node's input tensors (agent.put_input);
        the last piece is returned as code for the caller's next exec (saves a round trip)."""
        calls = [f"agent.put_input({at}, {base64.b64encode(data[at:at + IO_CHUNK])!r})"
                 for at in range(0, len(data), IO_CHUNK)] or ["None"]
        for call in calls[:-1]:
            self.node.exec(call, timeout=self.timeout)
        return calls[-1]

    def _run(self, data: bytes, stop: int | None = None) -> bytes:
        """Input in, one inference (or the ops up to `stop`), every output byte back: one
        exec for a model whose input and output fit one chunk each."""
        need = sum(io["nbytes"] for io in self.report.outputs)
        code = self._put_input(data) + f"\nagent.run({stop!r})"
        raw = b""
        while True:
            n = min(IO_CHUNK, need - len(raw))
            out = self.node.exec(f"{code}\nagent.get_output({len(raw)}, {n})",
                                 timeout=self.timeout)
            lines = [ln for ln in out.splitlines() if ln.strip()]
            try:
                raw += base64.b64decode(lines[-1].strip(), validate=True)
            except (IndexError, ValueError):
                raise TinysenseError(f"unexpected answer from agent.get_output: "
                                     f"{out[:200]!r}") from None
            if len(raw) >= need or n == 0:
                return raw
            code = "None"

    def bench(self, repeats: int) -> dict:
        """agent.bench: median/min/max ms of `repeats` runs of the last input, after a
        warm-up run, and the bytes one inference allocated."""
        return _json_line(self.node.exec(f"agent.bench({int(repeats)})",
                                         timeout=self.timeout * 4), "agent.bench")

    def heap(self) -> dict:
        return _json_line(self.node.exec("agent.heap()", timeout=self.timeout), "agent.heap")

    def op_output(self, arrays, op_index: int, tensor: int) -> bytes:
        """Tensor `tensor` right after tflite operator `op_index` ran (public agent API:
        put_input, run(stop=k), then tensor_hex(t))."""
        self._run(self.node_inputs(arrays), stop=int(op_index))
        out = self.node.exec(f"agent.tensor_hex({int(tensor)})", timeout=self.timeout)
        return bytes.fromhex(out.strip().splitlines()[-1].strip())

    def trace(self, arrays, dump: int = -1) -> list[tuple[int, int, int, str]]:
        """Run op by op on the node: (position, tflite op index, tensor, crc32 or hex)."""
        code = self._put_input(self.node_inputs(arrays))   # into the arena, in chunks
        code = f"{code}\n_DUMP = {int(dump)}\n" + script("trace")
        rows = []
        for line in self.node.exec(code, timeout=self.timeout * 2).splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[0] in ("C", "T"):
                rows.append((int(parts[1]), int(parts[2]), int(parts[3]), parts[4]))
        return rows
