"""DEPTHWISE_CONV_2D kernel (viper); same requantization as kconv (see its docstring)."""

import micropython
from micropython import const

# Parameter words of DEPTHWISE_CONV_2D (docs/formats/tsm.md): the single definition of
# their order (host/tinysense/formats/tsm.py reads them; WIDE: appended at load).
_DW_INPUT = const(0)
_DW_OUTPUT = const(1)
_DW_N = const(2)
_DW_H = const(3)
_DW_W = const(4)
_DW_C = const(5)
_DW_OH = const(6)
_DW_OW = const(7)
_DW_OC = const(8)
_DW_KH = const(9)
_DW_KW = const(10)
_DW_SH = const(11)
_DW_SW = const(12)
_DW_DH = const(13)
_DW_DW = const(14)
_DW_PAD_TOP = const(15)
_DW_PAD_LEFT = const(16)
_DW_WEIGHTS = const(17)
_DW_DEPTH_MULT = const(18)
_DW_BIAS = const(19)
_DW_MULTS = const(20)
_DW_SHIFTS = const(21)
_DW_ZP_IN = const(22)
_DW_ZP_OUT = const(23)
_DW_AMIN = const(24)
_DW_AMAX = const(25)
_DW_K0 = const(26)
_DW_WIDE = const(27)


@micropython.viper
def dwconv(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """Depthwise. Input flipped to x' = x+128, so x - zp = x' - c1 (c1 = 128 + zp). 3x3 filters
    (multiplier 1) run 9 unrolled taps from a precomputed K0 = bias - c1*sum(w); other
    filters list each pixel's in-image taps and add (w)(x' - c1).

    The flip is inlined (as in kconv): a native pointer passed to another viper function
    becomes an int object, and an address >= 2^30 (RV32 QEMU, ESP32-C6/P4) is then a long
    int allocated on the heap at every call. The per-channel loops walk `ar` and `cb`
    (locals 0 and 1, the only register locals in mpy-cross viper code on RV32) as input and
    weight pointers; the arena is used through the stack copy `arp`."""
    one = 1
    sb = one << 31
    h30 = one << 30
    in_off = p[_DW_INPUT]
    nb = p[_DW_N]
    ih = p[_DW_H]
    iw = p[_DW_W]
    ic = p[_DW_C]
    oh = p[_DW_OH]
    ow = p[_DW_OW]
    oc = p[_DW_OC]
    kh = p[_DW_KH]
    kw = p[_DW_KW]
    sh = p[_DW_SH]
    sw = p[_DW_SW]
    dh = p[_DW_DH]
    dw = p[_DW_DW]
    pt = p[_DW_PAD_TOP]
    pl = p[_DW_PAD_LEFT]
    wb = int(cb) + p[_DW_WEIGHTS]
    mult = p[_DW_DEPTH_MULT]
    bs = ptr32(int(cb) + p[_DW_BIAS])
    ms = ptr32(int(cb) + p[_DW_MULTS])
    ss = ptr32(int(cb) + p[_DW_SHIFTS])
    c1 = 128 + ((p[_DW_ZP_IN] ^ sb) - sb)
    zo = (p[_DW_ZP_OUT] ^ sb) - sb
    amin = (p[_DW_AMIN] ^ sb) - sb
    amax = (p[_DW_AMAX] ^ sb) - sb
    k0 = ptr32(int(cb) + p[_DW_K0])
    wide = p[_DW_WIDE]
    nt_all = kh * kw
    toff = ptr32(sc)
    tidx = ptr32(int(sc) + 4 * nt_all)
    fast = 1 if kh == 3 and kw == 3 and mult == 1 else 0
    d1 = dw * ic
    r1 = dh * iw * ic
    arb = int(ar)
    arp = ar
    # out-of-image taps point at scratch bytes equal to c1 (x' - c1 = 0): with K0 folded in,
    # every pixel of a 3x3 filter runs the same 9 unrolled taps
    zb = int(sc) + 8 * nt_all
    zq = ptr8(zb)
    i = 0
    while i < ic:
        zq[i] = c1
        i += 1
    # flip the input in place; undone at the end
    fw = ptr32(arb + in_off)
    fk = 0x20202020
    fk = fk << 2       # 0x80808080, built at run time (not a small int on 32-bit)
    fn = nb * ih * iw * ic
    fn4 = fn >> 2
    i = 0
    while i < fn4:
        fw[i] = fw[i] ^ fk
        i += 1
    i = fn4 << 2
    while i < fn:
        arp[in_off + i] = arp[in_off + i] ^ 0x80
        i += 1
    dst = p[_DW_OUTPUT]
    b = 0
    while b < nb:
        oy = 0
        while oy < oh:
            y0 = oy * sh - pt
            ox = 0
            while ox < ow:
                x0 = ox * sw - pl
                if fast:
                    pix = arb + in_off + ((b * ih + y0) * iw + x0) * ic
                    v0 = 1 if y0 >= 0 and y0 < ih else 0
                    v1 = 1 if y0 + dh >= 0 and y0 + dh < ih else 0
                    v2 = 1 if y0 + dh + dh >= 0 and y0 + dh + dh < ih else 0
                    h0 = 1 if x0 >= 0 and x0 < iw else 0
                    h1 = 1 if x0 + dw >= 0 and x0 + dw < iw else 0
                    h2 = 1 if x0 + dw + dw >= 0 and x0 + dw + dw < iw else 0
                    # tap offsets from the walking channel pointer ar (starts at zb)
                    q0 = (pix if v0 and h0 else zb) - zb
                    q1 = (pix + d1 if v0 and h1 else zb) - zb
                    q2 = (pix + d1 + d1 if v0 and h2 else zb) - zb
                    q3 = (pix + r1 if v1 and h0 else zb) - zb
                    q4 = (pix + r1 + d1 if v1 and h1 else zb) - zb
                    q5 = (pix + r1 + d1 + d1 if v1 and h2 else zb) - zb
                    q6 = (pix + r1 + r1 if v2 and h0 else zb) - zb
                    q7 = (pix + r1 + r1 + d1 if v2 and h1 else zb) - zb
                    q8 = (pix + r1 + r1 + d1 + d1 if v2 and h2 else zb) - zb
                    o = 0
                    cb = ptr8(wb)
                    ar = zq
                    while o < oc:
                        a = ((k0[o] ^ sb) - sb) + (
                            (cb[0] - 128) * ar[q0] + (cb[1] - 128) * ar[q1]
                            + (cb[2] - 128) * ar[q2] + (cb[3] - 128) * ar[q3]
                            + (cb[4] - 128) * ar[q4] + (cb[5] - 128) * ar[q5]
                            + (cb[6] - 128) * ar[q6] + (cb[7] - 128) * ar[q7]
                            + (cb[8] - 128) * ar[q8])
                        m = ms[o]
                        s = (ss[o] ^ sb) - sb
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
                        arp[dst + o] = t
                        o += 1
                        cb = ptr8(int(cb) + 9)
                        ar = ptr8(int(ar) + 1)
                    dst += oc
                    ox += 1
                    continue
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
                        cb = ptr8(wb + o * nt_all)
                        ar = ptr8(arb + c)
                        acc = (bs[o] ^ sb) - sb
                        j = 0
                        while j < nt:
                            acc += (cb[tidx[j]] - 128) * (ar[toff[j]] - c1)
                            j += 1
                        a = acc
                        m = ms[o]
                        s = (ss[o] ^ sb) - sb
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
                        arp[dst + o] = t
                        o += 1
                        k += 1
                    c += 1
                dst += oc
                ox += 1
            oy += 1
        b += 1
    i = 0
    while i < fn4:
        fw[i] = fw[i] ^ fk
        i += 1
    i = fn4 << 2
    while i < fn:
        arp[in_off + i] = arp[in_off + i] ^ 0x80
        i += 1
