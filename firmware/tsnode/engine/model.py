"""A loaded model: package tables, one arena bytearray, kernel scratch, and the run loop."""

import gc
from array import array

import micropython

from tsnode.engine import loader, ops

# Set before loading to force the 32-bit multiply emulation (tests use it on 64-bit hosts).
FORCE_NARROW = False


@micropython.viper
def _wide() -> int:
    t = 65536
    t = t * 65536
    return 1 if t != 0 else 0


class Model:
    """Load once, then `run()` with no heap allocation.

    buf: the whole package (bytes/bytearray, or a memoryview of a ROMFS file: zero-copy);
    or, to stream constants layer by layer, the package's first const_off bytes (see
    `open_streaming`) with `file` the open package file. A buffer that is not 4-byte aligned
    (a ROMFS image does not align file data) is used in place too, but each op's constants
    are copied to an aligned buffer before it runs (int32 loads fault when unaligned).
    kernels: "auto" (the native kernels, ops.NATIVE, when tsnn imports, else viper), "native"
    (ValueError without tsnn) or "viper"; `self.kernels` says what the ops use ("native" if
    any op does).
    """

    def __init__(self, buf, file=None, kernels="auto"):
        self.pkg = pkg = loader.Package(buf, file)
        self.buf = buf
        self.file = file
        self.misaligned = file is None and address(buf) & 3 != 0
        staged = file is not None or self.misaligned
        wide = 0 if FORCE_NARROW else _wide()
        nat = ops.native(kernels)
        used = "viper"
        # the big buffers first, while the heap is least fragmented
        big = 0
        if staged:
            for op in pkg.ops(consts=True):
                big = max(big, op[6])
        gc.collect()
        # +4: 1x1 convolutions read up to 3 bytes past a pixel (times zero weights)
        self.arena = bytearray(pkg.arena_size + 4)
        self.scratch = bytearray(pkg.scratch_size + 4)
        self.streams = None
        if staged:
            # one buffer for the largest op's constants; each op reads its region into it
            # and its kernel gets (buffer address - region start) as the constants base
            self.cbuf = bytearray(max(big, 4))
        plan = []
        regions = []
        for code, src, ins, outs, params, c_start, c_len in pkg.ops(consts=True):
            ops.check(code, src, params)
            p = array("i", params + (wide,))   # sized once (append over-allocates)
            fn = ops.kernel(code, nat)
            if nat is not None and code in ops.NATIVE:
                used = "native"
            plan.append((fn, p, code, src))
            regions.append((c_start, c_len))
        self.kernels = used
        self.plan = plan          # (kernel, params, opcode, tflite op index) per op
        self._calls = [(e[0], e[1]) for e in plan]   # run()'s loop: 2-tuples unpack faster
        if staged:
            base = address(self.cbuf)
            mv = memoryview(self.cbuf)
            src = address(buf) if self.misaligned else 0
            self.streams = [(s, mv[:n], base - s, src + s, n) if n else None
                            for s, n in regions]
        self.inputs, self.outputs = pkg.io()
        # state tensors (loader.F_STATE): (offset, bytes, fill byte), set at load and reset()
        self.states = []
        for i in range(pkg.n_tensors):
            dtype, _s, flags, off, nbytes, zp = pkg.tensor(i)
            if flags & loader.F_STATE:
                self.states.append((off, nbytes, zp & 0xFF if dtype == loader.DT_INT8 else 0))
        self.reset()

    def reset(self):
        """Every state tensor back to its initial value, as tflite-micro's ResetVariableTensors
        (at AllocateTensors and reset()): an int8 one to its zero point, an int16 one to 0.
        Allocates nothing."""
        for off, n, fill in self.states:
            _fill(self.arena, off, n, fill)

    def run(self):
        """One inference over the arena (inputs already in place). Allocates nothing."""
        ar = self.arena
        cb = self.buf
        sc = self.scratch
        if self.streams is None:
            for fn, p in self._calls:
                fn(ar, cb, p, sc)
            return
        f = self.file
        plan = self.plan
        streams = self.streams
        for i in range(len(plan)):
            fn, p, _c, _s = plan[i]
            st = streams[i]
            if st is None:
                fn(ar, cb, p, sc)
            else:
                if f is None:
                    _copy(st[1], st[3], st[4])
                else:
                    f.seek(st[0])
                    f.readinto(st[1])
                fn(ar, st[2], p, sc)

    def run_op(self, i):
        """Run plan entry i alone (reads its constants first when streaming)."""
        fn, p, _c, _s = self.plan[i]
        cb = self.buf
        if self.streams is not None and self.streams[i] is not None:
            st = self.streams[i]
            if self.file is None:
                _copy(st[1], st[3], st[4])
            else:
                self.file.seek(st[0])
                self.file.readinto(st[1])
            cb = st[2]
        fn(self.arena, cb, p, self.scratch)

    def run_until(self, stop):
        """Run the ops of tflite operator index <= stop only (for diagnosis: that op's output
        is then still intact in the arena, before later ops reuse its memory)."""
        for i in range(len(self.plan)):
            if self.plan[i][3] > stop:
                break
            self.run_op(i)

    def tensor_view(self, i):
        """memoryview of tensor i's bytes (arena, or constants), no copy."""
        dtype, shape, flags, off, nbytes, zp = self.pkg.tensor(i)
        if flags & loader.F_CONST:   # weights live re-laid-out in op constants (nbytes 0)
            return memoryview(b"")
        return memoryview(self.arena)[off:off + nbytes]

    def set_inputs(self, data):
        """Copy the concatenated bytes of every input into the arena."""
        pos = 0
        for i in self.inputs:
            v = self.tensor_view(i)
            n = len(v)
            if pos + n > len(data):
                raise ValueError("input: got %d bytes, model needs %d" % (
                    len(data), self.input_bytes()))
            v[:] = data[pos:pos + n]
            pos += n
        if pos != len(data):
            raise ValueError("input: got %d bytes, model needs %d" % (len(data), pos))

    def input_bytes(self):
        return sum(self.pkg.tensor(i)[4] for i in self.inputs)

    def output_bytes(self):
        out = bytearray()
        for i in self.outputs:
            out += self.tensor_view(i)
        return out


@micropython.viper
def _fill(dst: ptr8, off: int, n: int, v: int):
    i = off
    end = off + n
    while i < end:
        dst[i] = v
        i += 1


@micropython.viper
def _copy(dst: ptr8, src: ptr8, n: int):
    """Copy n bytes from an address (any alignment) into a buffer."""
    i = 0
    while i < n:
        dst[i] = src[i]
        i += 1


@micropython.viper
def address(buf: ptr8) -> int:
    """Address of a buffer's first byte (to check 4-byte alignment of zero-copy packages)."""
    return int(buf)


def open_streaming(path, kernels="auto"):
    """A Model that keeps `path` open and reads each op's constants when it runs: the heap
    holds the tables, the arena and one buffer the size of the largest op's constants."""
    f = open(path, "rb")
    try:
        buf = loader.read_tables(f)
    except ValueError:
        f.close()
        raise
    return Model(buf, f, kernels)
