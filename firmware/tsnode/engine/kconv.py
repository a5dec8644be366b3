"""Convolution kernels (CONV_2D, FULLY_CONNECTED, DEPTHWISE_CONV_2D) as viper functions.

Exactness: the converter stores weights as w+128 (uint8) and a folded constant
C = bias - (128+zp_in)*sum(w+128) + 128*(128+zp_in)*K per output channel. Per output pixel
the kernel gathers the input patch as x' = x+128 (out-of-image taps filled with zp_in+128,
i.e. x - zp_in = 0, exactly what tflite-micro's skipping gives), then
    acc = dot(w+128, x') - 128*sum(x') + C  ==  bias + sum(w * (x - zp_in))
so the inner loop is two unsigned byte loads, a multiply and an add (unrolled 4x; rows are
padded to 4 with zero weights). Requantization is tflite's MultiplyByQuantizedMultiplier with
double rounding; `wide` (p[-1]) selects a 64-bit product where viper ints are 64-bit, else
an exact 15-bit-limb emulation that never exceeds 31 bits.
"""

import micropython


@micropython.viper
def conv(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    in_off = p[0]
    out_off = p[1]
    nb = p[2]
    ih = p[3]
    iw = p[4]
    ic = p[5]
    oh = p[6]
    ow = p[7]
    oc = p[8]
    kh = p[9]
    kw = p[10]
    sh = p[11]
    sw = p[12]
    dh = p[13]
    dw = p[14]
    pt = p[15]
    pl = p[16]
    wbase = int(cb) + p[17]
    k4 = p[18]
    cs = ptr32(int(cb) + p[19])
    ms = ptr32(int(cb) + p[20])
    ss = ptr32(int(cb) + p[21])
    sb = 1 << 31     # ptr32 loads are zero-extended on 64-bit hosts, so: (v ^ sb) - sb
    fill = p[22]
    zo = (p[23] ^ sb) - sb
    amin = (p[24] ^ sb) - sb
    amax = (p[25] ^ sb) - sb
    wide = p[27]
    pa = sc
    b = 0
    dst = out_off
    while b < nb:
        oy = 0
        while oy < oh:
            y0 = oy * sh - pt
            ox = 0
            while ox < ow:
                x0 = ox * sw - pl
                sx = 0
                j = 0
                ky = 0
                while ky < kh:
                    iy = y0 + ky * dh
                    kx = 0
                    while kx < kw:
                        ix = x0 + kx * dw
                        if iy >= 0 and iy < ih and ix >= 0 and ix < iw:
                            src = in_off + ((b * ih + iy) * iw + ix) * ic
                            end = src + ic
                            while src < end:
                                v = ar[src] ^ 0x80
                                pa[j] = v
                                sx += v
                                j += 1
                                src += 1
                        else:
                            end = j + ic
                            while j < end:
                                pa[j] = fill
                                j += 1
                            sx += fill * ic
                        kx += 1
                    ky += 1
                while j < k4:
                    pa[j] = 0
                    j += 1
                base = 0 - (sx << 7)
                o = 0
                wrow = wbase
                while o < oc:
                    w = ptr8(wrow)
                    acc = 0
                    j = 0
                    while j < k4:
                        acc += (w[j] * pa[j] + w[j + 1] * pa[j + 1] + w[j + 2] * pa[j + 2]
                                + w[j + 3] * pa[j + 3])
                        j += 4
                    a = acc + base + ((cs[o] ^ sb) - sb)
                    m = ms[o]
                    s = (ss[o] ^ sb) - sb
                    rs = 0
                    if s > 0:
                        a = a << s
                    else:
                        rs = 0 - s
                    if wide:
                        if a >= 0:
                            t = (a * m + 0x40000000) >> 31
                        else:
                            t = 0 - (((0 - a) * m + 0x3FFFFFFF) >> 31)
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
                        c0 = a0 * m0 + 0x40000000 - neg
                        c1 = a1 * m0 + a0 * m1 + (c0 >> 15)
                        c2 = a2 * m0 + a1 * m1 + a0 * m2 + (c1 >> 15)
                        t = (c2 >> 1) + ((a2 * m1 + a1 * m2) << 14) + ((a2 * m2) << 29)
                        if neg:
                            t = 0 - t
                    if rs > 0:
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
                    o += 1
                    wrow += k4
                ox += 1
            oy += 1
        b += 1


@micropython.viper
def dwconv(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Depthwise: per pixel, list the in-image taps once (offsets in scratch), then per channel
    acc = bias + sum((w+128 - 128) * (x - zp_in)) over those taps."""
    sb = 1 << 31
    in_off = p[0]
    nb = p[2]
    ih = p[3]
    iw = p[4]
    ic = p[5]
    oh = p[6]
    ow = p[7]
    oc = p[8]
    kh = p[9]
    kw = p[10]
    sh = p[11]
    sw = p[12]
    dh = p[13]
    dw = p[14]
    pt = p[15]
    pl = p[16]
    wbase = ptr8(int(cb) + p[17])
    mult = p[18]
    bs = ptr32(int(cb) + p[19])
    ms = ptr32(int(cb) + p[20])
    ss = ptr32(int(cb) + p[21])
    c1 = 128 + ((p[22] ^ sb) - sb)
    zo = (p[23] ^ sb) - sb
    amin = (p[24] ^ sb) - sb
    amax = (p[25] ^ sb) - sb
    wide = p[26]
    nt_all = kh * kw
    toff = ptr32(sc)
    tidx = ptr32(int(sc) + 4 * nt_all)
    dst = p[1]
    b = 0
    while b < nb:
        oy = 0
        while oy < oh:
            y0 = oy * sh - pt
            ox = 0
            while ox < ow:
                x0 = ox * sw - pl
                nt = 0
                ky = 0
                while ky < kh:
                    iy = y0 + ky * dh
                    if iy >= 0 and iy < ih:
                        kx = 0
                        while kx < kw:
                            ix = x0 + kx * dw
                            if ix >= 0 and ix < iw:
                                toff[nt] = in_off + ((b * ih + iy) * iw + ix) * ic
                                tidx[nt] = ky * kw + kx
                                nt += 1
                            kx += 1
                    ky += 1
                c = 0
                o = 0
                while c < ic:
                    k = 0
                    while k < mult:
                        w = ptr8(int(wbase) + o * nt_all)
                        acc = (bs[o] ^ sb) - sb
                        t = 0
                        while t < nt:
                            acc += (w[tidx[t]] - 128) * ((ar[toff[t] + c] ^ 0x80) - c1)
                            t += 1
                        a = acc
                        m = ms[o]
                        s = (ss[o] ^ sb) - sb
                        rs = 0
                        if s > 0:
                            a = a << s
                        else:
                            rs = 0 - s
                        if wide:
                            if a >= 0:
                                t = (a * m + 0x40000000) >> 31
                            else:
                                t = 0 - (((0 - a) * m + 0x3FFFFFFF) >> 31)
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
                            e0 = a0 * m0 + 0x40000000 - neg
                            e1 = a1 * m0 + a0 * m1 + (e0 >> 15)
                            e2 = a2 * m0 + a1 * m1 + a0 * m2 + (e1 >> 15)
                            t = (e2 >> 1) + ((a2 * m1 + a1 * m2) << 14) + ((a2 * m2) << 29)
                            if neg:
                                t = 0 - t
                        if rs > 0:
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
                        ar[dst + o] = t
                        o += 1
                        k += 1
                    c += 1
                dst += oc
                ox += 1
            oy += 1
        b += 1
