"""Pooling and MEAN kernels (viper). Pools only clamp; MEAN rescales like tflite-micro."""

import micropython
from micropython import const

# Parameter words (docs/formats/tsm.md), the single definition of their order: the
# converter builds records by these names (host/tinysense/formats/tsm.py reads them).
# AVERAGE_POOL_2D and MAX_POOL_2D:
_POOL_INPUT = const(0)
_POOL_OUTPUT = const(1)
_POOL_N = const(2)
_POOL_H = const(3)
_POOL_W = const(4)
_POOL_C = const(5)
_POOL_OH = const(6)
_POOL_OW = const(7)
_POOL_KH = const(8)
_POOL_KW = const(9)
_POOL_SH = const(10)
_POOL_SW = const(11)
_POOL_PAD_TOP = const(12)
_POOL_PAD_LEFT = const(13)
_POOL_AMIN = const(14)
_POOL_AMAX = const(15)

# MEAN (WIDE: the word the engine appends at load):
_MEAN_INPUT = const(0)
_MEAN_OUTPUT = const(1)
_MEAN_D0 = const(2)
_MEAN_D1 = const(3)
_MEAN_D2 = const(4)
_MEAN_D3 = const(5)
_MEAN_OS0 = const(6)
_MEAN_OS1 = const(7)
_MEAN_OS2 = const(8)
_MEAN_OS3 = const(9)
_MEAN_MULT = const(10)
_MEAN_SHIFT = const(11)
_MEAN_ZP_IN_N = const(12)
_MEAN_ZP_OUT = const(13)
_MEAN_N_OUT = const(14)
_MEAN_WIDE = const(15)


@micropython.viper
def _pool(ar: ptr8, p: ptr32, is_max: int):
    one = 1
    sb = one << 31
    src0 = p[_POOL_INPUT]
    dst = p[_POOL_OUTPUT]
    nb = p[_POOL_N]
    ih = p[_POOL_H]
    iw = p[_POOL_W]
    c = p[_POOL_C]
    oh = p[_POOL_OH]
    ow = p[_POOL_OW]
    kh = p[_POOL_KH]
    kw = p[_POOL_KW]
    sh = p[_POOL_SH]
    sw = p[_POOL_SW]
    pt = p[_POOL_PAD_TOP]
    pl = p[_POOL_PAD_LEFT]
    amin = (p[_POOL_AMIN] ^ sb) - sb
    amax = (p[_POOL_AMAX] ^ sb) - sb
    b = 0
    while b < nb:
        oy = 0
        while oy < oh:
            y0 = oy * sh - pt
            ky0 = 0 - y0 if y0 < 0 else 0
            ky1 = ih - y0 if ih - y0 < kh else kh
            ox = 0
            while ox < ow:
                x0 = ox * sw - pl
                kx0 = 0 - x0 if x0 < 0 else 0
                kx1 = iw - x0 if iw - x0 < kw else kw
                ch = 0
                while ch < c:
                    acc = 0
                    if is_max:
                        acc = -128
                    ky = ky0
                    while ky < ky1:
                        row = src0 + ((b * ih + y0 + ky) * iw + x0) * c + ch
                        kx = kx0
                        while kx < kx1:
                            v = (ar[row + kx * c] ^ 0x80) - 0x80
                            if is_max:
                                if v > acc:
                                    acc = v
                            else:
                                acc += v
                            kx += 1
                        ky += 1
                    if not is_max:
                        n = (ky1 - ky0) * (kx1 - kx0)
                        if acc >= 0:
                            acc = (acc + (n >> 1)) // n
                        else:
                            acc = 0 - ((0 - acc + (n >> 1)) // n)
                    if acc < amin:
                        acc = amin
                    if acc > amax:
                        acc = amax
                    ar[dst] = acc
                    dst += 1
                    ch += 1
                ox += 1
            oy += 1
        b += 1


def avgpool(ar, cb, p, sc):
    _pool(ar, p, 0)


def maxpool(ar, cb, p, sc):
    _pool(ar, p, 1)


@micropython.viper
def mean(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Sum into int32 scratch per output, then MBQM(sum - zp_in*n, M', s') + zp_out."""
    one = 1
    sb = one << 31
    h30 = one << 30
    src = p[_MEAN_INPUT]
    dst = p[_MEAN_OUTPUT]
    d0 = p[_MEAN_D0]
    d1 = p[_MEAN_D1]
    d2 = p[_MEAN_D2]
    d3 = p[_MEAN_D3]
    o0 = p[_MEAN_OS0]
    o1 = p[_MEAN_OS1]
    o2 = p[_MEAN_OS2]
    o3 = p[_MEAN_OS3]
    m = p[_MEAN_MULT]
    s = (p[_MEAN_SHIFT] ^ sb) - sb
    zn = (p[_MEAN_ZP_IN_N] ^ sb) - sb
    zo = (p[_MEAN_ZP_OUT] ^ sb) - sb
    nout = p[_MEAN_N_OUT]
    wide = p[_MEAN_WIDE]
    acc = ptr32(sc)
    i = 0
    while i < nout:
        acc[i] = 0
        i += 1
    i0 = 0
    while i0 < d0:
        i1 = 0
        while i1 < d1:
            i2 = 0
            while i2 < d2:
                i3 = 0
                ob = i0 * o0 + i1 * o1 + i2 * o2
                while i3 < d3:
                    k = ob + i3 * o3
                    acc[k] = acc[k] + (ar[src] ^ 0x80) - 0x80
                    src += 1
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1
    i = 0
    while i < nout:
        a = ((acc[i] ^ sb) - sb) - zn
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
        if t < -128:
            t = -128
        if t > 127:
            t = 127
        ar[dst + i] = t
        i += 1
