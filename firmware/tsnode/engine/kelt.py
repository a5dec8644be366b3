"""Elementwise and data-movement kernels (viper): ADD, MUL, table lookups, CONCAT, PAD, COPY."""

import micropython


@micropython.viper
def _binary(ar: ptr8, cb: ptr8, p: ptr32, is_mul: int):
    """ADD: raw = T1[x1] + T2[x2] (tables of the rescaled inputs, left shift 20 included),
    out = RDBPOT(SRDHM(raw, M), r) + zp. MUL: out = MBQM((x1-z1)*(x2-z2), M, s) + zp."""
    one = 1
    sb = one << 31
    h30 = one << 30
    a_off = p[0]
    b_off = p[1]
    dst = p[2]
    t1 = ptr32(int(cb) + p[3])
    t2 = ptr32(int(cb) + p[4])
    z1 = (p[3] ^ sb) - sb
    z2 = (p[4] ^ sb) - sb
    m = p[5]
    s = (p[6] ^ sb) - sb
    if not is_mul:
        s = 0 - s
    zo = (p[7] ^ sb) - sb
    amin = (p[8] ^ sb) - sb
    amax = (p[9] ^ sb) - sb
    bc = p[11]
    d0 = p[12]
    d1 = p[13]
    d2 = p[14]
    d3 = p[15]
    wide = p[24]
    if not bc:
        d0 = 1
        d1 = 1
        d2 = 1
        d3 = p[10]
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
                    pa = a_off + i0 * p[16] + i1 * p[17] + i2 * p[18]
                    pb = b_off + i0 * p[20] + i1 * p[21] + i2 * p[22]
                while i3 < d3:
                    xa = ar[pa]
                    xb = ar[pb]
                    if bc:
                        pa += p[19]
                        pb += p[23]
                    else:
                        pa += 1
                        pb += 1
                    if is_mul:
                        a = (((xa ^ 0x80) - 0x80) - z1) * (((xb ^ 0x80) - 0x80) - z2)
                    else:
                        a = ((t1[xa] ^ sb) - sb) + ((t2[xb] ^ sb) - sb)
                    rs = 0
                    if s > 0:
                        a = a << s
                    else:
                        rs = 0 - s
                    if wide:   # exact 64-bit product: trunc((p + nudge) / 2^31) == (p + 2^30) >> 31
                        t = (a * m + h30) >> 31
                    else:
                        neg = 0
                        if a < 0:
                            a = 0 - a
                            neg = 1
                        a0 = a & 0x7FFF
                        a1 = (a >> 15) & 0x7FFF
                        m0 = m & 0x7FFF
                        m1 = (m >> 15) & 0x7FFF
                        m2 = (m >> 30) & 1
                        e1 = a1 * m0 + a0 * m1 + ((a0 * m0 + h30 - neg) >> 15)
                        if a >= 0 and a < h30:   # |a| < 2^30: no third limb (|INT32_MIN| stays < 0)
                            t = ((a1 * m1 + a0 * m2 + (e1 >> 15)) >> 1) + ((a1 * m2) << 14)
                        else:
                            a2 = (a >> 30) & 3
                            e2 = a2 * m0 + a1 * m1 + a0 * m2 + (e1 >> 15)
                            t = (e2 >> 1) + ((a2 * m1 + a1 * m2) << 14) + ((a2 * m2) << 29)
                        if neg:
                            t = 0 - t
                    if rs > 0:
                        if wide:   # RDBPOT: round half away from zero (no overflow in 64 bits)
                            t = (t + (1 << (rs - 1)) + (t >> 31)) >> rs
                        else:
                            mask = (1 << rs) - 1
                            rem = t & mask
                            thr = mask >> 1
                            if t < 0:
                                thr += 1
                            t = t >> rs
                            if rem > thr:
                                t += 1
                    t += zo
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
    src = p[0]
    dst = p[1]
    n = p[2]
    t = ptr8(int(cb) + p[3])
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


@micropython.viper
def concat(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    dst = p[0]
    outer = p[1]
    out_inner = p[2]
    nin = p[3]
    o = 0
    while o < outer:
        pos = dst + o * out_inner
        k = 0
        while k < nin:
            n = p[5 + 2 * k]
            src = p[4 + 2 * k] + o * n
            i = 0
            while i < n:
                ar[pos + i] = ar[src + i]
                i += 1
            pos += n
            k += 1
        o += 1


@micropython.viper
def pad(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    src = p[0]
    dst = p[1]
    o1 = p[11]
    o2 = p[12]
    o3 = p[13]
    total = p[10] * o1 * o2 * o3
    v = p[14]
    i = 0
    while i < total:
        ar[dst + i] = v
        i += 1
    i0 = 0
    while i0 < p[2]:
        i1 = 0
        while i1 < p[3]:
            i2 = 0
            while i2 < p[4]:
                pos = dst + (((i0 + p[6]) * o1 + i1 + p[7]) * o2 + i2 + p[8]) * o3 + p[9]
                n = p[5]
                i = 0
                while i < n:
                    ar[pos + i] = ar[src + i]
                    i += 1
                src += n
                i2 += 1
            i1 += 1
        i0 += 1


def copy(ar, cb, p, sc):
    _move(ar, p[0], p[1], p[2])


@micropython.viper
def const(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Copy a constant operand from the package into its arena slot (before its reader)."""
    dst = p[0]
    src = p[1]
    n = p[2]
    i = 0
    while i < n:
        ar[dst + i] = cb[src + i]
        i += 1
