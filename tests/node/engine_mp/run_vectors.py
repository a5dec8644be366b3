"""Run a .tsm on the unix port for the engine tests: prints one hex line per input vector.

usage: micropython run_vectors.py PACKAGE INPUTS NVEC [narrow,stream,misaligned,native]
INPUTS holds NVEC vectors back to back (each the model's concatenated int8 inputs). The
kernels are viper, or with `native` the native ones (tsnn.mpy on MICROPYPATH: an error
without it). After the outputs it prints `alloc <bytes>`: the most gc.mem_alloc() grew
across one inference (with the GC off, so a collection cannot hide an allocation), then
`wide <0|1>`: whether the ops ran the 64-bit multiply path, `heap <address>` of the GC heap
(a buffer in it) and `kernels <viper|native>`: what the model's ops use.
"""

import gc
import sys

import micropython
from binascii import hexlify

import tsnode.engine.model as M

flags = sys.argv[4].split(",") if len(sys.argv) > 4 else []
M.FORCE_NARROW = "narrow" in flags
kernels = "native" if "native" in flags else "viper"
if "stream" in flags:
    m = M.open_streaming(sys.argv[1], kernels=kernels)
elif "misaligned" in flags:   # like a ROMFS file whose data is not 4-byte aligned
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    held = bytearray(len(raw) + 1)
    held[1:] = raw
    m = M.Model(memoryview(held)[1:], kernels=kernels)
    assert m.misaligned
else:
    with open(sys.argv[1], "rb") as f:
        m = M.Model(f.read(), kernels=kernels)
with open(sys.argv[2], "rb") as f:
    data = f.read()
n = int(sys.argv[3])
size = len(data) // n


def infer(m):
    """One inference; what it allocated. In a function: a new global (a0 in the first
    round) could grow the module's dict inside the measured span."""
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    m.run()
    d = gc.mem_alloc() - a0
    gc.enable()
    return d


worst = 0
for k in range(n):
    m.set_inputs(data[k * size:(k + 1) * size])
    worst = max(worst, infer(m))
    print(hexlify(m.output_bytes()).decode())
print("alloc", worst)
# the wide word the ops got (no ops: what they would have got)
print("wide", max(p[-1] for _f, p, _c, _s in m.plan) if m.plan
      else 0 if M.FORCE_NARROW else M._wide())


@micropython.viper
def _addr(b: ptr8) -> uint:
    return uint(b)


print("heap", hex(_addr(data)))
print("kernels", m.kernels)
