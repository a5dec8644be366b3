"""Elementwise kernels (viper) of the ops added for issue 13: MAXMIN (MAXIMUM, MINIMUM) and
SELECT (PRELU's second pass). Imported only when a model has one (ops.kernel)."""

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
