"""Run tsnn's native kernels beside the viper kernels on the same arena, op by op.

usage: micropython compare_kernels.py LIST (on a board: set LIST = path, then exec this file)
LIST: one line per model, `PACKAGE INPUTS NVEC` (INPUTS: NVEC vectors back to back). For every
vector the model runs op by op on the viper kernels; before each op that tsnn has a kernel for,
the arena is saved, the viper kernel runs, then the native kernel runs on a copy of the saved
arena (its constants once as the buffer, once as an int address as the streaming engine passes
them) and the whole arena must equal the viper one. Prints per model
`ok PACKAGE <ops checked> <bytes allocated by the native calls>` or `diff PACKAGE op <i> at
<byte> viper <v> native <n>`, then `done`.
"""

import gc
import sys

import tsnn
import tsnode.engine.model as M

NATIVE = {1: tsnn.conv, 2: tsnn.conv}   # FULLY_CONNECTED, CONV_2D (engine/ops.py _OP_*)
if hasattr(tsnn, "dwconv"):
    NATIVE[3] = tsnn.dwconv


def call(fn, ar, cb, p, sc):
    """fn(ar, cb, p, sc) with the GC off; the bytes it allocated."""
    gc.disable()
    a0 = gc.mem_alloc()
    fn(ar, cb, p, sc)
    d = gc.mem_alloc() - a0
    gc.enable()
    return d


def first_diff(a, b):
    for i in range(len(a)):
        if a[i] != b[i]:
            return i
    return -1


def check(pkg, inputs, nvec):
    with open(pkg, "rb") as f:
        m = M.Model(f.read())
    with open(inputs, "rb") as f:
        data = f.read()
    size = len(data) // nvec
    ar, cb, sc = m.arena, m.buf, m.scratch
    cb_addr = M.address(cb)
    before = bytearray(len(ar))
    mine = bytearray(len(ar))
    sc2 = bytearray(len(sc))
    checked = 0
    alloc = 0
    for k in range(nvec):
        m.set_inputs(data[k * size:(k + 1) * size])
        for i in range(len(m.plan)):
            fn, p, code, _src = m.plan[i]
            nat = NATIVE.get(code)
            if nat is None:
                fn(ar, cb, p, sc)
                continue
            before[:] = ar
            fn(ar, cb, p, sc)
            for base in (cb, cb_addr):
                mine[:] = before
                alloc = max(alloc, call(nat, mine, base, p, sc2))
                if mine != ar:
                    at = first_diff(ar, mine)
                    print("diff", pkg, "op", i, "at", at, "viper", ar[at], "native", mine[at])
                    return
            checked += 1
    print("ok", pkg, checked, alloc)


try:
    LIST
except NameError:
    LIST = sys.argv[1]
with open(LIST) as f:
    for line in f:
        if line.strip():
            pkg, inputs, nvec = line.split()
            check(pkg, inputs, int(nvec))
print("done")
