"""Validate a model on a node against tflite-micro: every output byte, on many inputs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tinysense.boards import BoardConfig, load_board
from tinysense.convert import convert_model
from tinysense.errors import TinysenseError
from tinysense.paths import CONFORMANCE_DIR
from tinysense.progress import detail, step
from tinysense.reference import Reference, count_macs
from tinysense.validate.compare import compare_outputs
from tinysense.validate.nodeside import NodeModel
from tinysense.validate.vectors import InputSpec, Vector, load_inputs, make_vectors

Progress = Callable[[str], None]
DEFAULT_VECTORS = 20
BENCH_REPEATS = 10


@dataclasses.dataclass
class ValidateResult:
    """What `tinysense validate` reports (and writes with --json)."""

    model: str
    target: str
    board: str
    vectors: int
    mismatches: int                 # vectors whose outputs differ in at least one byte
    mismatched_values: int          # output elements that differ, over all vectors
    max_abs_diff: float
    bit_exact: bool
    node_ms: float | None           # median per inference (agent.bench)
    reference_ms: float | None      # median tflite-micro invoke on the host, same input
    node_heap_peak_bytes: int | None   # heap the engine holds while running (agent.heap)
    reference_arena_bytes: int      # tflite-micro's arena total (print_allocations)
    node_package_heap_bytes: int | None = None  # heap holding the package (0 if zero-copy)
    node_inference_alloc_bytes: int | None = None
    # The same figure under the name issue 11 gave it: bytes the node's GC heap allocated
    # during one inference (gc.mem_alloc() delta around it, GC off; agent.heap).
    node_alloc_bytes_per_inference: int | None = None
    node_arch: str | None = None    # mpy arch the node reported (x86, x64, rv32imc, xtensawin)
    macs: int = 0
    placement: str = ""             # the converter's plan for the board
    node_placement: str = ""        # where the node's agent put the constants (ram/stream/romfs)
    kernels: str = ""               # the conv/dwconv kernels the node used: native | viper
    kernels_why: str = ""           # why kernels="auto" ran viper (no/another tsnn.mpy)
    fits: bool | None = None
    failures: list[dict] = dataclasses.field(default_factory=list)
    first_mismatch: dict | None = None   # the first op whose output differs, when found
    # For the HTML report (tinysense.report.html): every timed node inference, the output
    # values of both sides over all vectors, and per-op agreement when diagnosing a mismatch.
    node_times_ms: list[float] = dataclasses.field(default_factory=list)
    outputs: list[dict] = dataclasses.field(default_factory=list)
    op_errors: list[dict] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        verdict = "BIT-EXACT" if self.bit_exact else "MISMATCH"
        line = (f"{verdict}: {self.model} on {self.target} ({self.board}): "
                f"{self.vectors - self.mismatches}/{self.vectors} vectors identical")
        if not self.bit_exact:
            line += (f", {self.mismatched_values} values differ, max |diff| "
                     f"{self.max_abs_diff:g}")
        if self.node_ms is not None and self.reference_ms:
            line += (f"; node {self.node_ms:.3f} ms vs reference {self.reference_ms:.3f} ms "
                     f"({self.node_ms / self.reference_ms:.2f}x)")
        if self.node_heap_peak_bytes is not None:
            line += (f"; heap {self.node_heap_peak_bytes:,} B vs arena "
                     f"{self.reference_arena_bytes:,} B")
        if self.first_mismatch:
            fm = self.first_mismatch
            line += (f"\nfirst differing op: #{fm['op_index']} {fm['op_name']} (output tensor "
                     f"{fm['tensor']} '{fm['tensor_name']}', {fm['differing_values']} of "
                     f"{fm['values']} values differ, max |diff| {fm['max_abs_diff']:g}; "
                     f"vector '{fm['vector']}')")
        return line


def _say(progress: Progress | None) -> Progress:
    return progress or (lambda line: None)


@contextlib.contextmanager
def prepared_node(target: str, board: BoardConfig, progress: Progress | None = print,
                  deploy: bool = True) -> Iterator:
    """Open the node and deploy the firmware once (what validate and bench need)."""
    from tinysense.node import open_node

    say = _say(progress)
    with open_node(target, board) as node:
        say(f"node: {node.target.kind} at {node.target.url} ({board.name})")
        if deploy:
            node.deploy(progress=progress)
        yield node


def model_inputs(ref: Reference) -> list[InputSpec]:
    return [InputSpec.from_details(d) for d in ref.input_details]


def _first_difference(want: np.ndarray, got: np.ndarray | None) -> dict:
    if got is not None and got.size == want.size:
        c = compare_outputs([got], [want.reshape(-1)])
        return {"differing_values": c.differing_values, "max_abs_diff": c.max_abs_diff,
                "first_element": c.first[1] if c.first else None}
    return {"differing_values": int(want.size), "max_abs_diff": float("inf"),
            "first_element": 0}


def _diagnose(nm: NodeModel, ref_model: bytes, graph, vector: Vector, say: Progress) -> dict:
    """Run the node op by op and the reference with kPreserveAllTensors on the same input;
    return the first op whose output tensor differs (or an explanation if none does)."""
    say("diagnosing: running the node op by op against tflite-micro's preserved tensors")
    ref = Reference(ref_model, preserve_all=True)
    ref.run(list(vector.arrays))
    tensors = ref.tensors()
    arrays = list(vector.arrays)

    def found(src: int, pos, t: int, got: np.ndarray | None) -> dict:
        info = graph.tensors[t]
        return {"op_index": src, "op_name": graph.ops[src].name, "position": pos,
                "tensor": t, "tensor_name": info.name, "shape": list(info.shape),
                "values": int(tensors[t].size), "vector": vector.label,
                **_first_difference(tensors[t], got)}

    try:
        rows = nm.trace(arrays)
    except TinysenseError as exc:   # an engine without Model.run_op: the public agent API
        say(f"op-by-op trace failed ({str(exc).splitlines()[0]}); reading each op's output "
            "with agent.infer_hex(stop=k) + tensor_hex instead")
        for op in nm.report.ops:
            for t in graph.ops[op["index"]].outputs:
                if t in tensors:
                    raw = nm.op_output(arrays, op["index"], t)
                    got = np.frombuffer(raw, tensors[t].dtype)
                    if got.tobytes() != tensors[t].tobytes():
                        return found(op["index"], None, t, got)
        rows = []
    # Every traced op's agreement, for the report's per-op plot (magnitude: first one only).
    ops = [{"op_index": src, "op": graph.ops[src].name, "tensor": t,
            "identical": tensors.get(t) is None or int(crc) == zlib.crc32(tensors[t].tobytes())}
           for pos, src, t, crc in rows]
    for (pos, src, t, crc), op in zip(rows, ops):
        want = tensors.get(t)
        if op["identical"]:
            continue
        dump = [r for r in nm.trace(arrays, dump=pos) if r[2] == t]
        got = np.frombuffer(bytes.fromhex(dump[0][3]), want.dtype) if dump else None
        first = found(src, pos, t, got)
        op["max_abs_diff"] = first["max_abs_diff"]
        op["differing_values"] = first["differing_values"]
        return {**first, "ops": ops}
    return {"op_index": None, "op_name": "(none: every op the node runs matched when run op "
            "by op; the difference is in a full run only, or in the host-side QUANTIZE / "
            "DEQUANTIZE of float inputs / outputs)", "position": None,
            "tensor": None, "tensor_name": "", "shape": [], "values": 0,
            "vector": vector.label, "differing_values": 0, "max_abs_diff": 0.0, "ops": ops}


def validate_model(model: str | Path, *, target: str = "auto", board: str | BoardConfig |
                   None = None, vectors: int = DEFAULT_VECTORS, inputs: Path | None = None,
                   seed: int = 0, node=None, progress: Progress | None = print,
                   timing: bool = True, diagnose: bool = True,
                   placement: str = "auto", kernels: str = "auto") -> ValidateResult:
    """Convert `model`, run it on the node and in tflite-micro, and compare every output byte.

    Args:
        model: the int8 .tflite file.
        target: where the node is (auto | virtual | qemu | port/URL); ignored if `node` given.
        board: board id, TOML path or config (default ESP32_GENERIC).
        vectors: random vectors, the first three being all -128, all 127, all zero point
            (an int16 input: all -32768, all 32767).
        inputs: an .npz of extra model inputs (one array per input, optional batch axis).
        seed: seed of the random vectors.
        node: an already open Node with the firmware deployed (validate-all shares one).
        progress: called with one line per step; None for silence.
        timing: also measure node and reference latency (agent.bench, time_invoke).
        diagnose: on a mismatch, find the first op whose output differs.
        placement: auto | ram | stream: where the node keeps the constants (see NodeModel).
        kernels: auto | native | viper: the node's conv/dwconv kernels (see NodeModel).
    """
    say = _say(progress)
    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    path = Path(model)
    ref = Reference(path)
    specs = model_inputs(ref)
    vecs = make_vectors(specs, vectors, seed)
    if inputs is not None:
        vecs += load_inputs(Path(inputs), specs)
    if not vecs:
        raise TinysenseError("nothing to validate: --vectors 0 and no --inputs")
    if node is None:   # convert for the board as the node presents it (node.board)
        with prepared_node(target, cfg, progress) as opened:
            return validate_model(model, board=opened.board, vectors=vectors, inputs=inputs,
                                  seed=seed, node=opened, progress=progress, timing=timing,
                                  diagnose=diagnose, placement=placement, kernels=kernels)
    cfg = _node_board(node, cfg)
    converted = convert_model(path, board=cfg)
    rep = converted.report
    say(f"converted {path.name}: {len(rep.ops)} ops, {rep.macs:,} MACs, arena "
        f"{rep.arena_bytes:,} B, package {rep.package_bytes:,} B; {cfg.name}: "
        f"{'fits' if rep.fits else 'does NOT fit'} ({rep.placement})")
    return validate_converted(node, ref, converted, vecs, cfg, progress=progress,
                              timing=timing, diagnose=diagnose, placement=placement,
                              kernels=kernels)


def _node_board(node, cfg: BoardConfig) -> BoardConfig:
    """The node's own view of `cfg` (the RV32 QEMU board adds its ROMFS partition:
    tinysense.targets.node_board), when the node runs that board."""
    board = getattr(node, "board", None)
    return board if isinstance(board, BoardConfig) and board.name == cfg.name else cfg


def reported_arch(node) -> str | None:
    """The mpy arch the node reports (sys.implementation._mpy: x86, x64, rv32imc, xtensawin),
    or None for a node that loads no native code."""
    from tinysense.node.deploy import MPY_ARCHS

    mpy = int(node.exec("import sys\nprint(getattr(sys.implementation, '_mpy', 0))").strip())
    index = mpy >> 10 & 0x3F
    return MPY_ARCHS[index] if 0 < index < len(MPY_ARCHS) else None


def _check_same_model(ref: Reference, rep) -> None:
    """The package must have the reference model's input and output shapes."""
    mine = ([list(ref.graph.tensors[i].shape) for i in ref.graph.inputs],
            [list(ref.graph.tensors[i].shape) for i in ref.graph.outputs])
    theirs = ([list(io["shape"]) for io in rep.inputs], [list(io["shape"]) for io in rep.outputs])
    if mine != theirs:
        raise TinysenseError(f"the package's input/output shapes {theirs} differ from the "
                             f"model's {mine}: it was converted from another model; convert "
                             "this model again")


def validate_converted(node, ref: Reference, converted, vecs: list[Vector], cfg: BoardConfig,
                       *, progress: Progress | None = print, timing: bool = True,
                       diagnose: bool = True, placement: str = "auto",
                       kernels: str = "auto") -> ValidateResult:
    """The node half of validate_model: `converted` (a ConvertResult, normally of the same
    model as `ref`) on an open node with the firmware deployed, against `ref`."""
    say = _say(progress)
    path = Path(ref.path) if ref.path else Path("model.tflite")
    rep = converted.report
    _check_same_model(ref, rep)
    nm = NodeModel(node, converted.package, rep, placement=placement, kernels=kernels)
    if nm.kernels_why and kernels == "auto":
        say(f"kernels: viper ({nm.kernels_why})")
    failures, total_bad, max_diff = [], 0, 0.0
    first_bad: Vector | None = None
    outputs: list[dict] = []
    for i, vec in enumerate(vecs, 1):
        got = nm.infer(list(vec.arrays))
        want = ref.run(list(vec.arrays))
        _collect_outputs(outputs, got, want)
        c = compare_outputs(got, want)
        status = "identical" if c.identical else (
            f"DIFFERS: {c.differing_values} values, max |diff| {c.max_abs_diff:g}")
        if c.identical:     # an updating line on a terminal; a difference stays on screen
            step(progress, i, len(vecs), f"{vec.label}: {status}", indent="  ")
        else:
            say(f"  [{i}/{len(vecs)}] {vec.label}: {status}")
        if not c.identical:
            failures.append({"vector": i - 1, "label": vec.label,
                             "differing_values": c.differing_values,
                             "max_abs_diff": c.max_abs_diff,
                             "first": list(c.first) if c.first else None})
            total_bad += c.differing_values
            max_diff = max(max_diff, c.max_abs_diff)
            first_bad = first_bad or vec
    node_ms = ref_ms = None
    times: list[float] = []
    if timing:
        last = list(vecs[-1].arrays)
        nm.infer(last)       # agent.bench reruns the last input
        bench = nm.bench(BENCH_REPEATS)
        node_ms = float(bench["median_ms"])
        times = [float(t) for t in bench.get("times_ms", [])]
        ref_ms = ref.time_invoke(last, repeats=BENCH_REPEATS)
    heap = nm.heap()
    result = ValidateResult(
        model=path.name, target=node.target.kind, board=cfg.name, vectors=len(vecs),
        mismatches=len(failures), mismatched_values=total_bad, max_abs_diff=max_diff,
        bit_exact=not failures, node_ms=node_ms, reference_ms=ref_ms,
        node_heap_peak_bytes=int(heap["engine_bytes"]) + int(heap["inference_alloc_bytes"]),
        reference_arena_bytes=ref.arena_bytes(),
        node_package_heap_bytes=int(heap["package_bytes"]),
        node_inference_alloc_bytes=int(heap["inference_alloc_bytes"]),
        node_alloc_bytes_per_inference=int(heap["inference_alloc_bytes"]),
        node_arch=reported_arch(node),
        macs=count_macs(ref.graph), placement=rep.placement, fits=rep.fits,
        node_placement=str(nm.info.get("placement", "")), kernels=nm.kernels,
        kernels_why=nm.kernels_why,
        failures=failures, node_times_ms=times, outputs=outputs)
    if first_bad is not None and diagnose:
        result.first_mismatch = _diagnose(nm, ref.model, ref.graph, first_bad, say)
        result.op_errors = result.first_mismatch.pop("ops", [])
    say(result.summary())
    return result


_OUTPUT_VALUES_MAX = 20_000  # per output tensor kept for the report's node-vs-reference plot


def _collect_outputs(outputs: list[dict], got: list[np.ndarray], want: list[np.ndarray]) -> None:
    """Append this vector's output values (node and reference) per output tensor."""
    for k, (g, w) in enumerate(zip(got, want)):
        if len(outputs) <= k:
            outputs.append({"index": k, "name": f"output {k}", "node": [], "reference": []})
        entry = outputs[k]
        room = _OUTPUT_VALUES_MAX - len(entry["reference"])
        if room > 0 and g.size == w.size:
            entry["node"].extend(np.asarray(g).reshape(-1)[:room].tolist())
            entry["reference"].extend(np.asarray(w).reshape(-1)[:room].tolist())


def write_json(data, out: Path | str) -> None:
    """Write a result (or a list of them) as JSON; '-' writes to stdout."""
    text = json.dumps(_finite(data), indent=2, default=_jsonable, allow_nan=False) + "\n"
    if str(out) == "-":
        print(text, end="")
    else:
        Path(out).write_text(text)


def _finite(value):
    """Strict JSON has no Infinity/NaN: a non-finite float (a shape mismatch) becomes null."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def validate_all(*, target: str = "auto", board: str | BoardConfig | None = None,
                 models: list[Path] | None = None, vectors: int = DEFAULT_VECTORS,
                 seed: int = 0, progress: Progress | None = print,
                 kernels: str = "auto") -> dict:
    """Validate every conformance model on one node. Models the converter says do not fit
    the board's heap budget are listed as skipped, with the reason, not run.

    A model that fails with an error (e.g. it does not load) is recorded and the others
    still run. Returns {"board", "target", "results": [ValidateResult dicts], "errors":
    [{"model", "error"}], "skipped": [...], "bit_exact": every model ran and was bit-exact}.
    """

    cfg = board if isinstance(board, BoardConfig) else load_board(board)
    say = _say(progress)
    models = models or conformance_models()
    results, skipped, errors = [], [], []
    with prepared_node(target, cfg, progress) as node:
        cfg = _node_board(node, cfg)
        for i, m in enumerate(models, 1):
            step(progress, i, len(models), m.name)
            try:
                report = convert_model(m, board=cfg).report
                if not report.fits:
                    say(f"  skipped: does not fit {cfg.name} ({report.heap_needed:,} B needed,"
                        f" budget {report.heap_budget:,} B; {report.fit_reason})")
                    skipped.append({"model": m.name, "reason": "does not fit the heap budget",
                                    "heap_needed": report.heap_needed,
                                    "heap_budget": report.heap_budget})
                    continue
                results.append(validate_model(m, board=cfg, vectors=vectors, seed=seed,
                                              node=node, progress=detail(progress),
                                              kernels=kernels))
                if not results[-1].bit_exact:
                    say(f"  {m.name}: NOT bit-exact")
            except TinysenseError as exc:   # record it and go on with the other models
                first = str(exc).splitlines()[0]
                say(f"  ERROR: {first}")
                errors.append({"model": m.name, "error": first})
    ok = bool(results) and all(r.bit_exact for r in results) and not errors
    say(f"validate-all {cfg.name}: {sum(r.bit_exact for r in results)}/{len(results)} "
        f"bit-exact, {len(errors)} failed with an error, {len(skipped)} skipped (do not fit)")
    return {"board": cfg.name, "target": target, "results": [r.to_dict() for r in results],
            "errors": errors, "skipped": skipped, "bit_exact": ok}


def conformance_models(directory: Path = CONFORMANCE_DIR) -> list[Path]:
    models = sorted(Path(directory).glob("*.tflite"))
    if not models:
        raise TinysenseError(f"no .tflite models in {directory}; expected the conformance set "
                             "(tests/conformance/)")
    return models
