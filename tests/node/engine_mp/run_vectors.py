"""Run a .tsm on the unix port for the engine tests: prints one hex line per input vector.

usage: micropython run_vectors.py PACKAGE INPUTS NVEC [narrow,stream,misaligned]
INPUTS holds NVEC vectors back to back (each the model's concatenated int8 inputs). After the
outputs it prints `alloc <bytes>`: the most gc.mem_alloc() grew across one inference.
"""

import gc
import sys
from binascii import hexlify

import tsnode.engine.model as M

flags = sys.argv[4].split(",") if len(sys.argv) > 4 else []
M.FORCE_NARROW = "narrow" in flags
if "stream" in flags:
    m = M.open_streaming(sys.argv[1])
elif "misaligned" in flags:   # like a ROMFS file whose data is not 4-byte aligned
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    held = bytearray(len(raw) + 1)
    held[1:] = raw
    m = M.Model(memoryview(held)[1:])
    assert m.misaligned
else:
    with open(sys.argv[1], "rb") as f:
        m = M.Model(f.read())
with open(sys.argv[2], "rb") as f:
    data = f.read()
n = int(sys.argv[3])
size = len(data) // n
worst = 0
for k in range(n):
    m.set_inputs(data[k * size:(k + 1) * size])
    gc.collect()
    a0 = gc.mem_alloc()
    m.run()
    worst = max(worst, gc.mem_alloc() - a0)
    print(hexlify(m.output_bytes()).decode())
print("alloc", worst)
