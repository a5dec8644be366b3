"""Run tsnn's native kernels beside the viper kernels on the same arena, op by op.

usage: micropython compare_kernels.py LIST (on a board: set LIST = path, then exec this file)
LIST: one line per model, `PACKAGE INPUTS NVEC` (INPUTS: NVEC vectors back to back). For every
vector the model runs op by op on the viper kernels; before each op that tsnn has a kernel for,
the arena and scratch are saved, the viper kernel runs, then the native kernel runs on copies
of them (its constants once as the buffer, once as an int address as the streaming engine
passes them) and the whole arena (and for MEAN and SOFTMAX the scratch) must equal the viper ones. Prints per model
`ok PACKAGE <ops checked> <bytes allocated by the native calls>` or `diff PACKAGE op <i> at
<byte> viper <v> native <n>`, then `done`.
"""

import gc
import sys

import tsnn
import tsnode.engine.model as M

# opcode -> native kernel (engine/ops.py _OP_*): FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
# AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, ADD, MUL, SOFTMAX, SVDF (its state is in the arena)
NATIVE = {1: tsnn.conv, 2: tsnn.conv, 3: tsnn.dwconv, 4: tsnn.avgpool, 5: tsnn.maxpool,
          6: tsnn.mean, 7: tsnn.add, 8: tsnn.mul, 11: tsnn.softmax, 19: tsnn.svdf}

# kernels whose scratch words are results the native twin writes alike (MEAN's sums,
# SOFTMAX's reciprocal steps); the convolutions' scratch is a staging area they fill as
# each path needs
SAME_SCRATCH = (6, 11)


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
        m = M.Model(f.read(), kernels="viper")   # the plan is the viper kernels
    with open(inputs, "rb") as f:
        data = f.read()
    size = len(data) // nvec
    ar, cb, sc = m.arena, m.buf, m.scratch
    cb_addr = M.address(cb)
    before = bytearray(len(ar))
    mine = bytearray(len(ar))
    sc_before = bytearray(len(sc))
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
            sc_before[:] = sc
            fn(ar, cb, p, sc)
            for base in (cb, cb_addr):
                mine[:] = before
                sc2[:] = sc_before
                alloc = max(alloc, call(nat, mine, base, p, sc2))
                if mine != ar:
                    at = first_diff(ar, mine)
                    print("diff", pkg, "op", i, "at", at, "viper", ar[at], "native", mine[at])
                    return
                if code in SAME_SCRATCH and sc2 != sc:
                    at = first_diff(sc, sc2)
                    print("diff", pkg, "op", i, "scratch at", at, "viper", sc[at],
                          "native", sc2[at])
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
