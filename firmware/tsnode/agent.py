"""Commands the host calls over the raw REPL: load, put_input/run/get_output (an inference
in bounded chunks), infer_hex, bench, heap, tensor_hex, info.

Every call prints exactly one line (JSON or hex) and returns the same value (docs/engine.md).
"""

import gc
import json
import time
from binascii import a2b_base64, b2a_base64, hexlify, unhexlify

from micropython import const

_RUN_HEADROOM = const(8192)
_PER_OP = const(512)   # parameter array + plan entries per op (~300-450 B measured on x64)
_state = {"model": None, "info": None, "input": None, "mem": None}


def _print(v):
    print(v if isinstance(v, str) else json.dumps(v))
    return v


def _ram_need(n, head):
    """Heap a package of n bytes takes loaded whole, plus room left to run it: arena, scratch,
    per-op tables and _RUN_HEADROOM (one chunk of input or output, the REPL's buffers)."""
    from tsnode.engine import loader as h   # imported already (by the engine's model)

    le = "little"
    a, s, k = h.H_ARENA_SIZE, h.H_SCRATCH_SIZE, h.H_N_OPS
    return (n + int.from_bytes(head[a:a + 4], le) + int.from_bytes(head[s:s + 4], le)
            + _PER_OP * int.from_bytes(head[k:k + 2], le) + _RUN_HEADROOM)


def _open_model(path, stream, kernels):
    """(Model, placement): in place from ROMFS, else the file read whole into the heap, else
    (no room, or stream=True) constants streamed op by op from the file."""
    from tsnode.engine import model as _m   # here, not at import: into a collected heap

    if not stream:
        f = open(path, "rb")
        try:
            return _m.Model(memoryview(f), None, kernels), "romfs"
        except TypeError:   # not a ROMFS file: no buffer protocol
            pass
        try:
            head = f.read(_m.loader.HEADER_SIZE)
            f.seek(0, 2)
            n = f.tell()
            gc.collect()
            if stream is None and _ram_need(n, head) > gc.mem_free():
                raise MemoryError    # no room to load whole and still run: stream instead
            buf = bytearray(n)
            f.seek(0)
            f.readinto(buf)
            f.close()
            return _m.Model(buf, None, kernels), "ram"
        except MemoryError:
            f.close()
            if stream is False:
                raise
            buf = None
            gc.collect()
    return _m.open_streaming(path, kernels), "stream"


def _preimport(path, kernels):
    """Import the kernel modules this package uses before measuring the model's heap (their
    native code is the engine's, like tflite-micro's code, not part of its arena); tsnn
    (the native kernels) too, unless kernels="viper"."""
    from tsnode.engine import loader, model, ops  # noqa: F401  (model: _open_model uses it)

    codes = []
    hs = loader.HEADER_SIZE
    with open(path, "rb") as f:
        head = f.read(hs)
        at = loader.H_CONST_OFF
        n = int.from_bytes(head[at:at + 4], "little") - hs if len(head) == hs else -1
        f.seek(0, 2)
        if head[:4] != loader.MAGIC or not 0 <= n <= f.tell():
            return        # not a package: the real load below says what is wrong
        f.seek(hs)
        for op in loader.Package(head + f.read(n), f, check=False).ops():
            if op[0] not in codes:
                codes.append(op[0])
    # the module objects are long-lived: free the tables' garbage first, so they are not
    # allocated past it in the middle of the heap (the arena needs one piece)
    gc.collect()
    nat = ops.native(kernels)   # ValueError for kernels="native" without tsnn
    for c in codes:
        ops.kernel(c, nat)


def load(path, stream=None, kernels="auto"):
    """Load a .tsm package; prints the model info as one JSON line.

    stream: None picks zero-copy (ROMFS), then RAM, then streaming when the heap runs out;
    True streams constants from the file op by op; False never streams.
    kernels: "auto" (the native conv/dwconv kernels of tsnn.mpy when it imports, else the
    viper ones), "native" (an error without tsnn) or "viper"; the reply's "kernels" says
    which the ops use ("native" if any op does).
    """
    _unload()
    gc.collect()  # the old model is garbage only now (see _unload)
    t0 = time.ticks_ms()
    c0 = gc.mem_alloc()
    _preimport(path, kernels)
    gc.collect()
    m0 = gc.mem_alloc()
    model, placement = _open_model(path, stream, kernels)
    gc.collect()
    m2 = gc.mem_alloc()
    pkg = model.pkg
    zero_copy = placement == "romfs"
    pkg_b = len(model.buf) if placement == "ram" else 0
    eng = m2 - m0 - pkg_b
    _state["model"] = model
    _state["mem"] = (pkg_b, eng, len(model.arena), len(model.scratch), zero_copy)
    ios = []
    for group in (model.inputs, model.outputs):
        lst = []
        for i in group:
            dtype, shape, flags, off, nbytes, zp = pkg.tensor(i)
            lst.append({"tensor": i, "shape": list(shape), "nbytes": nbytes,
                        "zero_point": zp})
        ios.append(lst)
    info = {"ok": True, "ops": pkg.n_ops, "tensors": pkg.n_tensors,
            "arena_bytes": len(model.arena), "scratch_bytes": len(model.scratch),
            "const_bytes": pkg.const_size, "package_bytes": pkg_b, "engine_bytes": eng,
            "code_bytes": m0 - c0,
            "zero_copy": zero_copy, "placement": placement, "kernels": model.kernels,
            "romfs_aligned": zero_copy and not model.misaligned, "inputs": ios[0],
            "outputs": ios[1], "load_ms": time.ticks_diff(time.ticks_ms(), t0)}
    from tsnode.engine import ops
    if ops.why and model.kernels == "viper":
        info["kernels_why"] = ops.why   # "auto" without a usable tsnn.mpy: what was wrong
    _state["info"] = info
    return _print(info)


def unload():
    """Drop the loaded model and collect; prints {"ok": true, "mem_free": bytes}."""
    _unload()
    gc.collect()  # the old model is garbage only now (see _unload)
    return _print({"ok": True, "mem_free": gc.mem_free()})


def _unload():
    """Drop the loaded model (package, arena, tables), so a new load has the whole heap.
    No local may keep the old Model alive past this point (gc cannot free it). The caller
    collects after this returns: while this frame is live, a stale slot of its value stack may
    still point at the Model, and the GC scans the stack conservatively (the 32-bit build
    kept the whole kws model, 54 KB, across a collect here)."""
    m = _state["model"]
    _state["model"] = None
    _state["input"] = None
    _state["info"] = None
    _state["mem"] = None
    if m is not None and m.file is not None:
        m.file.close()
    m = None
    gc.collect()


def _model():
    m = _state["model"]
    if m is None:
        raise RuntimeError("no model loaded: call agent.load(path) first")
    return m


def info():
    _model()
    return _print(_state["info"])


def infer_hex(hexstr, stop=None):
    """Run one inference; input = all inputs' bytes concatenated (hex; int16: little-endian).

    stop: run only the ops up to tflite operator index `stop`, so tensor_hex() can read that
    op's output before later ops reuse its arena memory (the outputs printed are then stale).
    """
    m = _model()
    m.set_inputs(unhexlify(hexstr))
    _state["input"] = True
    if stop is None:
        m.run()
    else:
        m.run_until(stop)
    return _print(hexlify(m.output_bytes()).decode())


def _io_views(m, group, at, n):
    """(tensor view, view start, data start, count) over `group`'s tensors for bytes
    at..at+n of their concatenation; ValueError past the end."""
    pos, parts = 0, []
    for i in group:
        v = m.tensor_view(i)
        lo, hi = max(at, pos), min(at + n, pos + len(v))
        if lo < hi:
            parts.append((v, lo - pos, lo - at, hi - lo))
        pos += len(v)
    if at < 0 or n < 0 or at + n > pos:
        raise ValueError("bytes %d..%d: the model has %d" % (at, at + n, pos))
    return parts


def put_input(at, b64):
    """Write base64 bytes into the inputs at byte `at` of their concatenation, in the arena.
    The host sends an input in chunks of a few KB, so the heap this takes (one chunk's source
    text and bytes) does not grow with the input. Prints {"ok": true, "at": next offset}."""
    m = _model()
    data = memoryview(a2b_base64(b64))
    for v, vat, dat, k in _io_views(m, m.inputs, at, len(data)):
        v[vat:vat + k] = data[dat:dat + k]
    _state["input"] = True
    return _print({"ok": True, "at": at + len(data)})


def run(stop=None):
    """One inference on the inputs as they are in the arena (put_input); stop as infer_hex.
    Prints {"ok": true, "output_bytes": n}; get_output reads them."""
    m = _model()
    if stop is None:
        m.run()
    else:
        m.run_until(stop)
    return _print({"ok": True, "output_bytes": sum(len(m.tensor_view(i)) for i in m.outputs)})


def reset():
    """State tensors (SVDF's) back to their values at load, as tflite-micro's reset().
    Prints {"ok": true, "state_bytes": n}."""
    m = _model()
    m.reset()
    return _print({"ok": True, "state_bytes": sum(s[1] for s in m.states)})


def get_output(at, n):
    """base64 of n bytes of the outputs' concatenation from byte `at` (one chunk)."""
    m = _model()
    buf = bytearray(n)
    for v, vat, dat, k in _io_views(m, m.outputs, at, n):
        buf[dat:dat + k] = v[vat:vat + k]
    return _print(b2a_base64(buf).decode().strip())


def bench(n=10):
    """Median/min/max ms of n inferences of the last input (zeros if none), after a warm-up."""
    m = _model()
    if _state["input"] is None:
        m.set_inputs(bytes(m.input_bytes()))
    m.run()
    times = []
    for _ in range(n):
        t = time.ticks_us()
        m.run()
        times.append(time.ticks_diff(time.ticks_us(), t))
    times.sort()
    gc.collect()
    a0 = gc.mem_alloc()
    m.run()
    d = gc.mem_alloc() - a0
    med = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
    return _print({"n": n, "median_ms": med / 1000, "min_ms": times[0] / 1000,
                   "max_ms": times[-1] / 1000, "alloc_bytes": d,
                   "times_ms": [t / 1000 for t in times]})  # sorted; for the latency plot


def heap():
    """Heap the engine holds (arena + scratch + tables) and what one inference allocates."""
    m = _model()
    pkg_b, eng, arena, scratch, zc = _state["mem"]
    gc.collect()
    gc.disable()  # a collection during the run would hide what it allocated
    try:
        a0 = gc.mem_alloc()
        m.run()
        d = gc.mem_alloc() - a0
    finally:
        gc.enable()
    return _print({"arena_bytes": arena, "scratch_bytes": scratch,
                   "tables_bytes": eng - arena - scratch, "package_bytes": pkg_b,
                   "placement": _state["info"]["placement"],
                   "zero_copy": zc, "engine_bytes": eng, "inference_alloc_bytes": d,
                   "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free()})


def tensor_hex(i):
    """Hex of tflite tensor i as it is now in the arena. After a full inference only tensors
    still live at the end (inputs, outputs) are sure to be intact; use infer_hex(h, stop=k)
    to read the output of operator k."""
    return _print(hexlify(_model().tensor_view(i)).decode())
