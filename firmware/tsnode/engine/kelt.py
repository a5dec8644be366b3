"""Elementwise and data-movement kernels (viper): ADD, MUL, LUT, CONCAT, PAD, COPY, CONST."""

import micropython
from micropython import const

# Parameter words (docs/formats/tsm.md), the single definition of their order: the
# converter builds records by these names (host/tinysense/formats/tsm.py reads them).
# WIDE is the word the engine appends at load. ADD:
_ADD_A = const(0)
_ADD_B = const(1)
_ADD_OUTPUT = const(2)
_ADD_T1 = const(3)
_ADD_T2 = const(4)
_ADD_MULT = const(5)
_ADD_RSHIFT = const(6)
_ADD_ZP_OUT = const(7)
_ADD_AMIN = const(8)
_ADD_AMAX = const(9)
_ADD_N = const(10)
_ADD_BCAST = const(11)
_ADD_D0 = const(12)
_ADD_D1 = const(13)
_ADD_D2 = const(14)
_ADD_D3 = const(15)
_ADD_SA0 = const(16)
_ADD_SA1 = const(17)
_ADD_SA2 = const(18)
_ADD_SA3 = const(19)
_ADD_SB0 = const(20)
_ADD_SB1 = const(21)
_ADD_SB2 = const(22)
_ADD_SB3 = const(23)
_ADD_WIDE = const(24)

# MUL (_binary reads the words MUL shares with ADD by their ADD names):
_MUL_A = const(0)
_MUL_B = const(1)
_MUL_OUTPUT = const(2)
_MUL_ZP_A = const(3)
_MUL_ZP_B = const(4)
_MUL_MULT = const(5)
_MUL_SHIFT = const(6)
_MUL_ZP_OUT = const(7)
_MUL_AMIN = const(8)
_MUL_AMAX = const(9)
_MUL_N = const(10)
_MUL_BCAST = const(11)
_MUL_D0 = const(12)
_MUL_D1 = const(13)
_MUL_D2 = const(14)
_MUL_D3 = const(15)
_MUL_SA0 = const(16)
_MUL_SA1 = const(17)
_MUL_SA2 = const(18)
_MUL_SA3 = const(19)
_MUL_SB0 = const(20)
_MUL_SB1 = const(21)
_MUL_SB2 = const(22)
_MUL_SB3 = const(23)
_MUL_WIDE = const(24)

# CONCATENATION: four words, then INPUT_I and INNER_I for each input:
_CAT_OUTPUT = const(0)
_CAT_OUTER = const(1)
_CAT_OUT_INNER = const(2)
_CAT_N_IN = const(3)
_CAT_INPUT_I = const(4)
_CAT_INNER_I = const(5)

# PAD:
_PAD_INPUT = const(0)
_PAD_OUTPUT = const(1)
_PAD_D0 = const(2)
_PAD_D1 = const(3)
_PAD_D2 = const(4)
_PAD_D3 = const(5)
_PAD_BEFORE0 = const(6)
_PAD_BEFORE1 = const(7)
_PAD_BEFORE2 = const(8)
_PAD_BEFORE3 = const(9)
_PAD_O0 = const(10)
_PAD_O1 = const(11)
_PAD_O2 = const(12)
_PAD_O3 = const(13)
_PAD_VALUE = const(14)

# LUT:
_LUT_INPUT = const(0)
_LUT_OUTPUT = const(1)
_LUT_N = const(2)
_LUT_TABLE = const(3)

# COPY:
_COPY_INPUT = const(0)
_COPY_OUTPUT = const(1)
_COPY_N = const(2)

# CONST (copy a constant operand into the arena):
_CONST_OUTPUT = const(0)
_CONST_DATA = const(1)
_CONST_N = const(2)


@micropython.viper
def _binary(ar: ptr8, cb: ptr8, p: ptr32, is_mul: int):
    """ADD: raw = T1[x1] + T2[x2] (tables of the rescaled inputs, left shift 20 included),
    out = RDBPOT(SRDHM(raw, M), r) + zp. MUL: out = MBQM((x1-z1)*(x2-z2), M, s) + zp."""
    one = 1
    sb = one << 31
    h30 = one << 30
    a_off = p[_ADD_A]
    b_off = p[_ADD_B]
    dst = p[_ADD_OUTPUT]
    t1 = ptr32(int(cb) + p[_ADD_T1])
    t2 = ptr32(int(cb) + p[_ADD_T2])
    z1 = (p[_MUL_ZP_A] ^ sb) - sb
    z2 = (p[_MUL_ZP_B] ^ sb) - sb
    m = p[_ADD_MULT]
    s = (p[_MUL_SHIFT] ^ sb) - sb
    if not is_mul:
        s = 0 - ((p[_ADD_RSHIFT] ^ sb) - sb)
    zo = (p[_ADD_ZP_OUT] ^ sb) - sb
    amin = (p[_ADD_AMIN] ^ sb) - sb
    amax = (p[_ADD_AMAX] ^ sb) - sb
    bc = p[_ADD_BCAST]
    d0 = p[_ADD_D0]
    d1 = p[_ADD_D1]
    d2 = p[_ADD_D2]
    d3 = p[_ADD_D3]
    wide = p[_ADD_WIDE]
    if not bc:
        d0 = 1
        d1 = 1
        d2 = 1
        d3 = p[_ADD_N]
    i0 = 0
    while i0 < d0:
        i1 = 0
        while i1 < d1:
            i2 = 0
            while i2 < d2:
                i3 = 0
                pa = a_off
                pb = b_off
                if bc:
                    pa = a_off + i0 * p[_ADD_SA0] + i1 * p[_ADD_SA1] + i2 * p[_ADD_SA2]
                    pb = b_off + i0 * p[_ADD_SB0] + i1 * p[_ADD_SB1] + i2 * p[_ADD_SB2]
                while i3 < d3:
                    xa = ar[pa]
                    xb = ar[pb]
                    if bc:
                        pa += p[_ADD_SA3]
                        pb += p[_ADD_SB3]
                    else:
                        pa += 1
                        pb += 1
                    if is_mul:
                        a = (((xa ^ 0x80) - 0x80) - z1) * (((xb ^ 0x80) - 0x80) - z2)
                    else:
                        a = ((t1[xa] ^ sb) - sb) + ((t2[xb] ^ sb) - sb)
                    # --- requant begin ---
                    if s > 0:
                        a = a << s
                        rs = 0
                    else:
                        rs = 0 - s
                    if (a + h30) >> 31:   # a < -2^30 or a >= 2^30: rare
                        if wide:   # 64-bit: trunc((p + nudge) / 2^31) == (p + 2^30) >> 31
                            t = (a * m + h30) >> 31
                        else:
                            neg = 0
                            if a < 0:
                                a = 0 - a
                                neg = 1
                            a0 = a & 0x7FFF
                            a1 = (a >> 15) & 0x7FFF
                            a2 = (a >> 30) & 3
                            m0 = m & 0x7FFF
                            m1 = (m >> 15) & 0x7FFF
                            m2 = (m >> 30) & 1
                            e1 = a1 * m0 + a0 * m1 + ((a0 * m0 + h30 - neg) >> 15)
                            e2 = a2 * m0 + a1 * m1 + a0 * m2 + (e1 >> 15)
                            t = (e2 >> 1) + ((a2 * m1 + a1 * m2) << 14) + ((a2 * m2) << 29)
                            if neg:
                                t = 0 - t
                            if rs > 0:   # |t| up to 2^31: RDBPOT by remainder and threshold
                                mask = (1 << rs) - 1
                                rem = t & mask
                                thr = mask >> 1
                                if t < 0:
                                    thr += 1
                                t = t >> rs
                                if rem > thr:
                                    t += 1
                                rs = 0
                    else:
                        # -2^30 <= a < 2^30 (nearly always): floor((a*m + 2^30) / 2^31) exact,
                        # from 16/15-bit limbs of a and 15/16-bit limbs of m (0 <= m < 2^31),
                        # no intermediate past 31 bits (docs/engine.md)
                        ah = a >> 15
                        al = a & 0x7FFF
                        mh = m >> 16
                        ml = m & 0xFFFF
                        t = ah * mh + ((((ah * ml + ((al * ml) >> 15) + 0x8000) >> 1)
                                         + al * mh) >> 15)
                    if rs > 0:   # RDBPOT, half away from zero: |t| <= 2^30 or 64-bit
                        t = (t + (1 << (rs - 1)) + (t >> 31)) >> rs
                    t += zo
                    # --- requant end ---
                    if t < amin:
                        t = amin
                    if t > amax:
                        t = amax
                    ar[dst] = t
                    dst += 1
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1


def add(ar, cb, p, sc):
    _binary(ar, cb, p, 0)


def mul(ar, cb, p, sc):
    _binary(ar, cb, p, 1)


@micropython.viper
def lut(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """out[i] = table[in[i]]: LOGISTIC, TANH, RELU, RELU6, QUANTIZE (exact tables)."""
    src = p[_LUT_INPUT]
    dst = p[_LUT_OUTPUT]
    n = p[_LUT_N]
    t = ptr8(int(cb) + p[_LUT_TABLE])
    i = 0
    while i < n:
        ar[dst + i] = t[ar[src + i]]
        i += 1


@micropython.viper
def _move(ar: ptr8, src: int, dst: int, n: int):
    if dst <= src:
        i = 0
        while i < n:
            ar[dst + i] = ar[src + i]
            i += 1
    else:
        i = n - 1
        while i >= 0:
            ar[dst + i] = ar[src + i]
            i -= 1


def concat_words(params):
    """Parameter words a CONCATENATION record must hold: four, then two per input."""
    if len(params) <= _CAT_N_IN:
        return _CAT_INPUT_I
    return _CAT_INPUT_I + 2 * params[_CAT_N_IN]


@micropython.viper
def concat(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    dst = p[_CAT_OUTPUT]
    outer = p[_CAT_OUTER]
    out_inner = p[_CAT_OUT_INNER]
    nin = p[_CAT_N_IN]
    o = 0
    while o < outer:
        pos = dst + o * out_inner
        k = 0
        while k < nin:
            n = p[_CAT_INNER_I + 2 * k]
            src = p[_CAT_INPUT_I + 2 * k] + o * n
            i = 0
            while i < n:
                ar[pos + i] = ar[src + i]
                i += 1
            pos += n
            k += 1
        o += 1


@micropython.viper
def pad(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    src = p[_PAD_INPUT]
    dst = p[_PAD_OUTPUT]
    o1 = p[_PAD_O1]
    o2 = p[_PAD_O2]
    o3 = p[_PAD_O3]
    total = p[_PAD_O0] * o1 * o2 * o3
    v = p[_PAD_VALUE]
    i = 0
    while i < total:
        ar[dst + i] = v
        i += 1
    i0 = 0
    while i0 < p[_PAD_D0]:
        i1 = 0
        while i1 < p[_PAD_D1]:
            i2 = 0
            while i2 < p[_PAD_D2]:
                pos = dst + (((i0 + p[_PAD_BEFORE0]) * o1 + i1 + p[_PAD_BEFORE1]) * o2 + i2
                             + p[_PAD_BEFORE2]) * o3 + p[_PAD_BEFORE3]
                n = p[_PAD_D3]
                i = 0
                while i < n:
                    ar[pos + i] = ar[src + i]
                    i += 1
                src += n
                i2 += 1
            i1 += 1
        i0 += 1


def copy(ar, cb, p, sc):
    _move(ar, p[_COPY_INPUT], p[_COPY_OUTPUT], p[_COPY_N])


@micropython.viper
def constant(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Copy a constant operand from the package into its arena slot (before its reader)."""
    dst = p[_CONST_OUTPUT]
    src = p[_CONST_DATA]
    n = p[_CONST_N]
    i = 0
    while i < n:
        ar[dst + i] = cb[src + i]
        i += 1
