"""Kernels (viper) of the ops added for issue 13: MAXMIN (MAXIMUM, MINIMUM), SELECT (PRELU's
second pass) and RMAX (REDUCE_MAX). Imported only when a model has one (ops.kernel)."""

import micropython
from micropython import const

# Parameter words (docs/formats/tsm.md), the single definition of their order. MAXMIN:
# out = max(a, b) (is_max 1) or min(a, b) (0) of the raw int8 values, as tflite-micro (no
# requantization); `bcast`, `d*`, `sa*`, `sb*` as ADD's: output shape and element strides.
_MM_A = const(0)
_MM_B = const(1)
_MM_OUTPUT = const(2)
_MM_IS_MAX = const(3)
_MM_N = const(4)
_MM_BCAST = const(5)
_MM_D0 = const(6)
_MM_D1 = const(7)
_MM_D2 = const(8)
_MM_D3 = const(9)
_MM_SA0 = const(10)
_MM_SA1 = const(11)
_MM_SA2 = const(12)
_MM_SA3 = const(13)
_MM_SB0 = const(14)
_MM_SB1 = const(15)
_MM_SB2 = const(16)
_MM_SB3 = const(17)

# SELECT: where the input byte is at or above `zp_in` (as int8), out = table[in] (256 bytes,
# indexed by the byte as uint8); elsewhere the output is left as it is:
_SEL_INPUT = const(0)
_SEL_OUTPUT = const(1)
_SEL_N = const(2)
_SEL_ZP_IN = const(3)
_SEL_TABLE = const(4)

# RMAX (REDUCE_MAX): as MEAN's words, `d*` the input shape padded to 4-D, `os*` the output
# stride of each input axis (0 for reduced axes), `n_out` the output's element count:
_RMAX_INPUT = const(0)
_RMAX_OUTPUT = const(1)
_RMAX_D0 = const(2)
_RMAX_D1 = const(3)
_RMAX_D2 = const(4)
_RMAX_D3 = const(5)
_RMAX_OS0 = const(6)
_RMAX_OS1 = const(7)
_RMAX_OS2 = const(8)
_RMAX_OS3 = const(9)
_RMAX_N_OUT = const(10)


@micropython.viper
def maxmin(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Compares sign-extended bytes; one pass over the output in row-major order."""
    a_off = p[_MM_A]
    b_off = p[_MM_B]
    dst = p[_MM_OUTPUT]
    is_max = p[_MM_IS_MAX]
    bc = p[_MM_BCAST]
    d0 = p[_MM_D0]
    d1 = p[_MM_D1]
    d2 = p[_MM_D2]
    d3 = p[_MM_D3]
    sa3 = p[_MM_SA3]
    sb3 = p[_MM_SB3]
    if not bc:
        d0 = 1
        d1 = 1
        d2 = 1
        d3 = p[_MM_N]
        sa3 = 1
        sb3 = 1
    i0 = 0
    while i0 < d0:
        i1 = 0
        while i1 < d1:
            i2 = 0
            while i2 < d2:
                pa = a_off + i0 * p[_MM_SA0] + i1 * p[_MM_SA1] + i2 * p[_MM_SA2]
                pb = b_off + i0 * p[_MM_SB0] + i1 * p[_MM_SB1] + i2 * p[_MM_SB2]
                if not bc:
                    pa = a_off
                    pb = b_off
                i3 = 0
                while i3 < d3:
                    xa = (ar[pa] ^ 0x80) - 0x80
                    xb = (ar[pb] ^ 0x80) - 0x80
                    if is_max:
                        if xb > xa:
                            xa = xb
                    elif xb < xa:
                        xa = xb
                    ar[dst] = xa
                    pa += sa3
                    pb += sb3
                    dst += 1
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1


@micropython.viper
def select(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """PRELU is a MUL record (x times alpha, the negative branch, for every element) then
    this pass, which overwrites the elements whose input is not negative (x - zp_in >= 0)
    with the positive branch's table: no requantization here."""
    src = p[_SEL_INPUT]
    dst = p[_SEL_OUTPUT]
    n = p[_SEL_N]
    one = 1
    sb = one << 31   # (a literal 1 << 31 is not a small int on 32-bit ports)
    zp = (p[_SEL_ZP_IN] ^ sb) - sb
    t = ptr8(int(cb) + p[_SEL_TABLE])
    i = 0
    while i < n:
        x = ar[src + i]
        if ((x ^ 0x80) - 0x80) >= zp:
            ar[dst + i] = t[x]
        i += 1


@micropython.viper
def reduce_max(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """The output starts at -128 (int8's lowest, ReduceGeneric's initial value); each input
    byte raises its output element. Works in the output buffer: no scratch."""
    src = p[_RMAX_INPUT]
    dst = p[_RMAX_OUTPUT]
    o0 = p[_RMAX_OS0]
    o1 = p[_RMAX_OS1]
    o2 = p[_RMAX_OS2]
    o3 = p[_RMAX_OS3]
    d3 = p[_RMAX_D3]
    n = p[_RMAX_N_OUT]
    i = 0
    while i < n:
        ar[dst + i] = 0x80
        i += 1
    i0 = 0
    while i0 < p[_RMAX_D0]:
        i1 = 0
        while i1 < p[_RMAX_D1]:
            i2 = 0
            while i2 < p[_RMAX_D2]:
                ob = dst + i0 * o0 + i1 * o1 + i2 * o2
                i3 = 0
                while i3 < d3:
                    k = ob + i3 * o3
                    x = ar[src] ^ 0x80   # offset binary: compares as the signed values do
                    if x > (ar[k] ^ 0x80):
                        ar[k] = ar[src]
                    src += 1
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1
