"""The int16 ends of 16x8 models (imported only by models with one).

requant: QUANTIZE between integer types other than int8 -> int8 (that one is a LUT):
tflite-micro's Requantize (reference/requantize.h) from int8 or int16 to int8, int16 or
int32, as `clamp(MBQM(x - zp_in, M, s) + zp_out)` to the output type's range.
softmax_lut16: SOFTMAX int16 -> int16, tflite-micro's SoftmaxInt16: exp(x - max) from a
513-entry LUT with linear interpolation, the sum's reciprocal from another, both tables
computed by the converter as SoftmaxPrepare's gen_lut does.
Both requantize through the block kconv.py describes (the marked copies below).
"""

import micropython
from micropython import const

# Parameter words (docs/formats/tsm.md), the single definition of their order. IN16: 1 when
# the input is int16, 0 when int8; OUT_BYTES: 1, 2 or 4 (int8, int16, int32 output).
_RQ_INPUT = const(0)
_RQ_OUTPUT = const(1)
_RQ_N = const(2)
_RQ_IN16 = const(3)
_RQ_OUT_BYTES = const(4)
_RQ_ZP_IN = const(5)
_RQ_ZP_OUT = const(6)
_RQ_MULT = const(7)
_RQ_SHIFT = const(8)
_RQ_WIDE = const(9)

# SOFTMAX_LUT16's words: EXP and RECIP are 513 int16 each (little-endian); MULT, SHIFT the
# input multiplier (s_in * beta / (10 / 65535)).
_SL_INPUT = const(0)
_SL_OUTPUT = const(1)
_SL_ROWS = const(2)
_SL_DEPTH = const(3)
_SL_EXP = const(4)
_SL_RECIP = const(5)
_SL_MULT = const(6)
_SL_SHIFT = const(7)
_SL_WIDE = const(8)


@micropython.viper
def requant(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Elementwise; no scratch, no allocation. Input and output are 4-aligned arena tensors;
    int16 and int32 elements are little-endian (read and written through ptr16 / ptr32)."""
    one = 1
    sb = one << 31
    h30 = one << 30
    n = p[_RQ_N]
    in16 = p[_RQ_IN16]
    ob = p[_RQ_OUT_BYTES]
    x8 = ptr8(int(ar) + p[_RQ_INPUT])
    x16 = ptr16(int(ar) + p[_RQ_INPUT])
    y8 = ptr8(int(ar) + p[_RQ_OUTPUT])
    y16 = ptr16(int(ar) + p[_RQ_OUTPUT])
    y32 = ptr32(int(ar) + p[_RQ_OUTPUT])
    zi = (p[_RQ_ZP_IN] ^ sb) - sb
    zo = (p[_RQ_ZP_OUT] ^ sb) - sb
    m = p[_RQ_MULT]
    s = (p[_RQ_SHIFT] ^ sb) - sb
    wide = p[_RQ_WIDE]
    lo = -128
    if ob == 2:
        lo = -32768
    hi = -1 - lo
    i = 0
    while i < n:
        if in16:
            a = ((x16[i] ^ 0x8000) - 0x8000) - zi
        else:
            a = ((x8[i] ^ 0x80) - 0x80) - zi
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
        if ob == 4:   # int32: MBQM's result plus zp_out is already in range (as in C)
            y32[i] = t
        else:
            if t < lo:
                t = lo
            if t > hi:
                t = hi
            if ob == 2:
                y16[i] = t
            else:
                y8[i] = t
        i += 1


@micropython.viper
def softmax_lut16(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Per row: the max; each exp(x - max) from the LUT (kept in the output, as the C code
    does); the sum's reciprocal from the other LUT; each output exp * reciprocal, rounded.
    Every product fits 31 bits (LUT values are at most 2^15), so no wide path is needed but
    MBQM's. No scratch, no allocation."""
    one = 1
    sb = one << 31
    h30 = one << 30
    rows = p[_SL_ROWS]
    depth = p[_SL_DEPTH]
    x = ptr16(int(ar) + p[_SL_INPUT])
    y = ptr16(int(ar) + p[_SL_OUTPUT])
    ex = ptr16(int(cb) + p[_SL_EXP])
    rc = ptr16(int(cb) + p[_SL_RECIP])
    m = p[_SL_MULT]
    s = (p[_SL_SHIFT] ^ sb) - sb
    wide = p[_SL_WIDE]
    zo = 32767     # recentres MBQM's [-65535, 0] to the LUT's [-32768, 32767]
    base = 0
    r = 0
    while r < rows:
        mx = -32768
        c = 0
        while c < depth:
            v = ((x[base + c] ^ 0x8000) - 0x8000)
            if v > mx:
                mx = v
            c += 1
        total = 0
        c = 0
        while c < depth:
            a = ((x[base + c] ^ 0x8000) - 0x8000) - mx
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
            if t < -32768:
                t = -32768
            if t > 32767:
                t = 32767
            i = 256 + (t >> 7)
            lo = (ex[i] ^ 0x8000) - 0x8000
            e = lo + (((((ex[i + 1] ^ 0x8000) - 0x8000) - lo) * (t & 0x7F) + 64) >> 7)
            y[base + c] = e
            total += e
            c += 1
        hp1 = 0        # CountLeadingZeros(total), total > 0
        while hp1 < 32 and ((total >> (31 - hp1)) & 1) == 0:
            hp1 += 1
        v = total << (hp1 - 1)              # < 2^31; (v + 2^13) >> 14 without passing it
        t = (v >> 14) + ((v >> 13) & 1) - 98304
        if t < -32768:
            t = -32768
        if t > 32767:
            t = 32767
        i = 256 + (t >> 7)
        lo = (rc[i] ^ 0x8000) - 0x8000
        q = lo + (((((rc[i + 1] ^ 0x8000) - 0x8000) - lo) * (t & 0x7F) + 64) >> 7)
        rs = 31 - hp1
        half = 1 << (rs - 1)
        c = 0
        while c < depth:
            t = ((((y[base + c] ^ 0x8000) - 0x8000) * q) + half) >> rs
            if t < 0:
                t = 0
            if t > 32767:
                t = 32767
            y[base + c] = t
            c += 1
        base += depth
        r += 1
