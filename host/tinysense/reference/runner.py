"""The desktop reference: the real tflite-micro interpreter, run, timed and inspected."""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from tinysense.errors import TinysenseError
from tinysense.reference.graph import Graph, TensorInfo, model_bytes, read_graph

_TOTAL_RE = re.compile(rb"Arena allocation total (\d+) bytes")
# tflite-micro segfaults (rather than failing) when the arena is too small, so size it
# generously: every non-constant tensor kept apart (kPreserveAllTensors) plus slack for
# persistent buffers, node structures and kernel scratch. Host memory is cheap.
_ARENA_SLACK = 1 << 20


def _tensor_bytes(t: TensorInfo) -> int:
    n = 1
    for d in t.shape:
        n *= max(int(d), 1)
    return n * np.dtype(t.numpy_dtype).itemsize


def _arena_size(graph: Graph, model_len: int) -> int:
    live = sum(_tensor_bytes(t) for t in graph.tensors if not t.constant)
    return 4 * live + 2 * model_len + _ARENA_SLACK


class Reference:
    """One tflite-micro interpreter for one model.

    Args:
        model: path to a .tflite file, or its bytes.
        preserve_all: keep every tensor after invoke (InterpreterConfig.kPreserveAllTensors)
            so `tensors()` can read intermediate results; then `arena_bytes()` is unavailable.
    """

    def __init__(self, model, *, preserve_all: bool = False, arena_size: int | None = None):
        self.path = None if isinstance(model, (bytes, bytearray, memoryview)) else str(model)
        self.model = model_bytes(model)
        self.graph = read_graph(self.model)
        self.preserve_all = preserve_all
        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all
                  else runtime.InterpreterConfig.kAllocationRecording)
        size = arena_size or _arena_size(self.graph, len(self.model))
        try:
            self._interp = runtime.Interpreter.from_bytes(
                self.model, arena_size=size, intrepreter_config=config)
        except Exception as exc:
            raise TinysenseError(f"the tflite-micro reference cannot load this model: "
                                 f"{_one_line(exc)}") from None
        self.input_details = [self._interp.get_input_details(i)
                              for i in range(len(self.graph.inputs))]
        self.output_details = [self._interp.get_output_details(i)
                               for i in range(len(self.graph.outputs))]
        self._invoked = False

    # -- running -------------------------------------------------------------------------
    def set_inputs(self, inputs) -> None:
        """Copy one array per graph input (a single array is allowed for one input)."""
        arrays = _as_list(inputs)
        if len(arrays) != len(self.input_details):
            raise TinysenseError(f"the model has {len(self.input_details)} input(s), "
                                 f"got {len(arrays)} array(s)")
        for i, (arr, det) in enumerate(zip(arrays, self.input_details)):
            self._interp.set_input(self._coerce(arr, det, i), i)

    def invoke(self) -> None:
        try:
            self._interp.invoke()
        except Exception as exc:
            raise TinysenseError(f"tflite-micro invoke failed: {_one_line(exc)}") from None
        self._invoked = True

    def outputs(self) -> list[np.ndarray]:
        return [np.array(self._interp.get_output(i), copy=True)
                for i in range(len(self.output_details))]

    def run(self, inputs) -> list[np.ndarray]:
        """Set the inputs, invoke once, return copies of every output."""
        self.set_inputs(inputs)
        self.invoke()
        return self.outputs()

    def time_invoke(self, inputs, *, repeats: int = 20, warmup: int = 2) -> float:
        """Median wall time of one invoke() in milliseconds.

        The inputs are set again before every invoke, outside the timed part: tflite-micro's
        planner may reuse an input tensor's memory for later activations.
        """
        for _ in range(warmup):
            self.set_inputs(inputs)
            self.invoke()
        samples = []
        for _ in range(max(repeats, 1)):
            self.set_inputs(inputs)
            t0 = time.perf_counter_ns()
            self._interp.invoke()
            samples.append(time.perf_counter_ns() - t0)
        self._invoked = True
        return statistics.median(samples) / 1e6

    # -- inspecting ----------------------------------------------------------------------
    def arena_bytes(self) -> int:
        """The arena total tflite-micro's RecordingMicroAllocator reports (after an invoke)."""
        if self.preserve_all:
            raise TinysenseError("arena_bytes needs a recording interpreter, "
                                 "not one made with preserve_all=True")
        if not self._invoked:
            self.run([np.zeros(d["shape"], d["dtype"]) for d in self.input_details])
        text = _capture_stderr(self._interp.print_allocations)
        match = _TOTAL_RE.search(text)
        if not match:
            raise TinysenseError("tflite-micro printed no 'Arena allocation total' line: "
                                 + text.decode(errors="replace")[:200])
        return int(match.group(1))

    def tensors(self) -> dict[int, np.ndarray]:
        """Every non-constant tensor after the last invoke, by tensor index (copies)."""
        if not self.preserve_all:
            raise TinysenseError("tensors() needs Reference(..., preserve_all=True)")
        out = {}
        for t in self.graph.tensors:
            if t.constant:
                continue
            # GetTensor has no bounds check (an index past the end crashes the process),
            # so only indices from the model's own tensor table are asked for.
            data = self._interp.GetTensor(t.index, 0)["tensor_data"]
            out[t.index] = np.array(data, copy=True)
        return out

    def _coerce(self, arr, det, i: int) -> np.ndarray:
        arr = np.asarray(arr)
        shape = tuple(int(d) for d in det["shape"])
        if arr.size != int(np.prod(shape)):
            raise TinysenseError(f"input {i} has {arr.size} values, the model expects shape "
                                 f"{shape} ({int(np.prod(shape))} values)")
        if arr.dtype != det["dtype"]:
            if not np.can_cast(arr.dtype, det["dtype"], casting="same_kind") or (
                    np.issubdtype(det["dtype"], np.integer)
                    and np.issubdtype(arr.dtype, np.integer)
                    and (arr.min(initial=0) < np.iinfo(det["dtype"]).min
                         or arr.max(initial=0) > np.iinfo(det["dtype"]).max)):
                raise TinysenseError(f"input {i} has dtype {arr.dtype}, the model expects "
                                     f"{np.dtype(det['dtype']).name}")
            arr = arr.astype(det["dtype"])
        return np.ascontiguousarray(arr.reshape(shape))


# -- module-level conveniences ----------------------------------------------------------
def run(model, inputs) -> list[np.ndarray]:
    """Outputs of one inference of `model` (path or bytes) on `inputs` (one array per input)."""
    return Reference(model).run(inputs)


def arena_bytes(model) -> int:
    """tflite-micro's arena total for `model` (the `print_allocations()` figure)."""
    return Reference(model).arena_bytes()


def all_tensors(model, inputs) -> dict[int, np.ndarray]:
    """Every non-constant tensor after one inference, by tensor index."""
    ref = Reference(model, preserve_all=True)
    ref.run(inputs)
    return ref.tensors()


def time_invoke(model, inputs, *, repeats: int = 20, warmup: int = 2) -> float:
    """Median milliseconds of one tflite-micro invoke of `model` on `inputs`."""
    return Reference(model).time_invoke(inputs, repeats=repeats, warmup=warmup)


def _as_list(inputs) -> list:
    if isinstance(inputs, np.ndarray):
        return [inputs]
    if isinstance(inputs, dict):
        return [inputs[k] for k in sorted(inputs)]
    if isinstance(inputs, Sequence):
        return list(inputs)
    return [inputs]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _capture_stderr(fn) -> bytes:
    """Run fn and return what it wrote to file descriptor 2 (C++ code bypasses sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 2)
            fn()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read()
