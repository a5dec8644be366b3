"""Node side of natmod/tsnn/bench.py: time each conv/FC/DW op of a model on the viper kernel and on
tsnn's native kernel (same arena, same constants). Not a test.

usage (unix port): micropython bench_mp.py PACKAGE REPEAT [stream]
On a board: set ARGS = [package, repeat, stream] before exec'ing this file.
Prints one line per op: `op <i> <opcode> <macs-free key> <viper us> <native us>` (the median
of REPEAT runs, microseconds; on the RV32 QEMU board with -icount shift=0 one us is 1000
instructions), then `done`.
"""

import gc
import sys
import time

import tsnn
import tsnode.engine.model as M

try:
    ARGS
except NameError:
    ARGS = sys.argv[1:]
pkg, rep = ARGS[0], int(ARGS[1])
stream = len(ARGS) > 2 and bool(ARGS[2])
NATIVE = {1: tsnn.conv, 2: tsnn.conv, 3: tsnn.dwconv}

if stream:
    m = M.open_streaming(pkg)
else:
    with open(pkg, "rb") as f:
        m = M.Model(f.read())
gc.collect()


def median_us(fn, ar, cb, p, sc, rep):
    ts = []
    for _ in range(rep):
        t0 = time.ticks_us()
        fn(ar, cb, p, sc)
        ts.append(time.ticks_diff(time.ticks_us(), t0))
    ts.sort()
    return ts[len(ts) // 2]


for i in range(len(m.plan)):
    fn, p, code, src = m.plan[i]
    cb = m.buf
    if m.streams is not None and m.streams[i] is not None:
        st = m.streams[i]
        if m.file is None:
            M._copy(st[1], st[3], st[4])
        else:
            m.file.seek(st[0])
            m.file.readinto(st[1])
        cb = st[2]
    nat = NATIVE.get(code)
    if nat is None:
        fn(m.arena, cb, p, m.scratch)
        continue
    v = median_us(fn, m.arena, cb, p, m.scratch, rep)
    n = median_us(nat, m.arena, cb, p, m.scratch, rep)
    print("op", i, code, src, v, n)
print("done")
