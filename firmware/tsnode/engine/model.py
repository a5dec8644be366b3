"""A loaded model: package tables, one arena bytearray, kernel scratch, and the run loop."""

import gc
from array import array

import micropython

from tsnode.engine import ops
from tsnode.engine.loader import Package

# Set before loading to force the 32-bit multiply emulation (tests use it on 64-bit hosts).
FORCE_NARROW = False


@micropython.viper
def _wide() -> int:
    t = 65536
    t = t * 65536
    return 1 if t != 0 else 0


class Model:
    """Load once, then `run()` with no heap allocation.

    buf: the whole package (bytes/bytearray, or a memoryview of a ROMFS file: zero-copy).
    """

    def __init__(self, buf):
        self.pkg = pkg = Package(buf)
        self.buf = buf
        wide = 0 if FORCE_NARROW else _wide()
        plan = []
        for code, src, ins, outs, params in pkg.ops():
            ops.check(code, src, params)
            p = array("i", params)
            p.append(wide)
            plan.append((ops.kernel(code), p, code, src))
        self.plan = plan
        self.inputs, self.outputs = pkg.io()
        gc.collect()
        # +16: 1x1 convolutions read up to 3 bytes past a pixel (times zero weights)
        self.arena = bytearray(pkg.arena_size + 16)
        self.scratch = bytearray(pkg.scratch_size + 64)

    def run(self):
        """One inference over the arena (inputs already in place). Allocates nothing."""
        ar = self.arena
        cb = self.buf
        sc = self.scratch
        for fn, p, _c, _s in self.plan:
            fn(ar, cb, p, sc)

    def run_until(self, stop):
        """Run the ops of tflite operator index <= stop only (for diagnosis: that op's output
        is then still intact in the arena, before later ops reuse its memory)."""
        for fn, p, _c, src in self.plan:
            if src > stop:
                break
            fn(self.arena, self.buf, p, self.scratch)

    def tensor_view(self, i):
        """memoryview of tensor i's bytes (arena, or constants), no copy."""
        dtype, shape, flags, off, nbytes, zp = self.pkg.tensor(i)
        if flags & 1:
            base = self.pkg.const_off + off
            return memoryview(self.buf)[base:base + nbytes]
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
def address(buf: ptr8) -> int:
    """Address of a buffer's first byte (to check 4-byte alignment of zero-copy packages)."""
    return int(buf)
