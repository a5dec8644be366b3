"""Data-movement kernel (viper) for the shape ops: REMAP (STRIDED_SLICE, TRANSPOSE,
RESIZE_NEAREST_NEIGHBOR). Imported only when a model has one (ops.kernel)."""

import micropython
from micropython import const

# Parameter words (docs/formats/tsm.md), the single definition of their order. REMAP:
# output element (i0, i1, i2, i3) of a d0 x d1 x d2 x d3 output, written in row-major order,
# is input byte t0[i0] + t1[i1] + t2[i2] + t3[i3]: t0..t3 are int32 tables of byte offsets
# (d0..d3 words each) the converter computes from the op's indices (docs/engine.md).
_RM_INPUT = const(0)
_RM_OUTPUT = const(1)
_RM_D0 = const(2)
_RM_D1 = const(3)
_RM_D2 = const(4)
_RM_D3 = const(5)
_RM_T0 = const(6)
_RM_T1 = const(7)
_RM_T2 = const(8)
_RM_T3 = const(9)


@micropython.viper
def remap(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """out[i0, i1, i2, i3] = in[t0[i0] + t1[i1] + t2[i2] + t3[i3]]; input and output are
    distinct arena buffers (the planner keeps both live across the op)."""
    src = p[_RM_INPUT]
    dst = p[_RM_OUTPUT]
    d0 = p[_RM_D0]
    d1 = p[_RM_D1]
    d2 = p[_RM_D2]
    d3 = p[_RM_D3]
    t0 = ptr32(int(cb) + p[_RM_T0])
    t1 = ptr32(int(cb) + p[_RM_T1])
    t2 = ptr32(int(cb) + p[_RM_T2])
    t3 = ptr32(int(cb) + p[_RM_T3])
    i0 = 0
    while i0 < d0:
        b0 = src + t0[i0]
        i1 = 0
        while i1 < d1:
            b1 = b0 + t1[i1]
            i2 = 0
            while i2 < d2:
                b2 = b1 + t2[i2]
                i3 = 0
                while i3 < d3:
                    ar[dst] = ar[b2 + t3[i3]]
                    dst += 1
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1
