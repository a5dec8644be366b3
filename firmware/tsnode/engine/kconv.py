"""CONV_2D and FULLY_CONNECTED kernel (viper), and the in-place int8 flip the kernels share.

Exactness: the converter stores weights as w+128 (uint8) and a folded constant
C = bias - (128+zp_in)*sum(w+128) + 128*(128+zp_in)*K per output channel. The kernel flips
its input in place to x' = x+128 (and back at the end); per output pixel it gathers the patch
(out-of-image taps filled with zp_in+128, i.e. x - zp_in = 0, exactly what tflite-micro's
skipping gives; 1x1 convolutions and FC use the input pixel directly), then
    acc = dot(w+128, x') - 128*sum(x') + C  ==  bias + sum(w * (x - zp_in))
so the inner loop is two unsigned byte loads, a multiply and an add (pointer-walking,
unrolled 16x then 4x; rows are padded to 4 with zero weights). Requantization is tflite's
MultiplyByQuantizedMultiplier with double rounding: for -2^30 <= a < 2^30 an exact product
from 16/15-bit limbs that fits 31 bits on any port; beyond it the 64-bit product where viper
ints are 64-bit (`wide`, the last parameter word), else an exact 15-bit-limb emulation (ESP32).
That block, between `# --- requant begin ---` and
`# --- requant end ---`, is repeated verbatim in kdw (twice), kelt, kpool, ksvdf (twice) and kquant (a viper call
would cost more than it, docs/engine.md); tests/host/test_boundary.py fails if they differ.
"""

import micropython
from micropython import const

# Parameter words of CONV_2D and FULLY_CONNECTED (docs/formats/tsm.md): the single
# definition of their order; the converter builds records by these names
# (host/tinysense/formats/tsm.py reads them). WIDE is the word the engine appends at load.
_CONV_INPUT = const(0)
_CONV_OUTPUT = const(1)
_CONV_N = const(2)
_CONV_H = const(3)
_CONV_W = const(4)
_CONV_C = const(5)
_CONV_OH = const(6)
_CONV_OW = const(7)
_CONV_OC = const(8)
_CONV_KH = const(9)
_CONV_KW = const(10)
_CONV_SH = const(11)
_CONV_SW = const(12)
_CONV_DH = const(13)
_CONV_DW = const(14)
_CONV_PAD_TOP = const(15)
_CONV_PAD_LEFT = const(16)
_CONV_WEIGHTS = const(17)
_CONV_K4 = const(18)
_CONV_FOLDED = const(19)
_CONV_MULTS = const(20)
_CONV_SHIFTS = const(21)
_CONV_FILL = const(22)
_CONV_ZP_OUT = const(23)
_CONV_AMIN = const(24)
_CONV_AMAX = const(25)
_CONV_K = const(26)
_CONV_WIDE = const(27)


@micropython.viper
def flip(ar: ptr8, off: int, n: int):
    """x ^= 0x80 over n bytes at a 4-aligned arena offset: int8 <-> int8+128 (uint8), in place.
    Convolutions flip their input before and after, so the inner loops need no conversion."""
    w = ptr32(int(ar) + off)
    k = 0x20202020
    k = k << 2         # 0x80808080, built at run time (not a small int on 32-bit)
    i = 0
    n4 = n >> 2
    while i < n4:
        w[i] = w[i] ^ k
        i += 1
    i = n4 << 2
    while i < n:
        ar[off + i] = ar[off + i] ^ 0x80
        i += 1


@micropython.viper
def conv(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    # ptr32 loads are zero-extended on 64-bit hosts, so (v ^ sb) - sb sign-extends. Values
    # >= 2^30 are built at run time: as literals they are not small ints on 32-bit ports.
    one = 1
    sb = one << 31
    h30 = one << 30
    in_off = p[_CONV_INPUT]
    nb = p[_CONV_N]
    ih = p[_CONV_H]
    iw = p[_CONV_W]
    ic = p[_CONV_C]
    oh = p[_CONV_OH]
    ow = p[_CONV_OW]
    oc = p[_CONV_OC]
    kh = p[_CONV_KH]
    kw = p[_CONV_KW]
    sh = p[_CONV_SH]
    sw = p[_CONV_SW]
    dh = p[_CONV_DH]
    dw = p[_CONV_DW]
    pt = p[_CONV_PAD_TOP]
    pl = p[_CONV_PAD_LEFT]
    wbase = int(cb) + p[_CONV_WEIGHTS]
    k4 = p[_CONV_K4]
    cs = ptr32(int(cb) + p[_CONV_FOLDED])
    ms = ptr32(int(cb) + p[_CONV_MULTS])
    ss = ptr32(int(cb) + p[_CONV_SHIFTS])
    fill = p[_CONV_FILL]
    zo = (p[_CONV_ZP_OUT] ^ sb) - sb
    amin = (p[_CONV_AMIN] ^ sb) - sb
    amax = (p[_CONV_AMAX] ^ sb) - sb
    wide = p[_CONV_WIDE]
    arp = ar
    k16 = (k4 >> 4) << 4
    # flip the input in place (inlined: a viper-to-viper call costs ~50 ns, which matters
    # for tiny FC layers); undone at the end
    fw = ptr32(int(ar) + in_off)
    fk = 0x20202020
    fk = fk << 2
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
    # 1x1 without padding: the patch is the input pixel itself (rows past ic read w=0 bytes)
    direct = 1 if kh == 1 and kw == 1 and pt == 0 and pl == 0 else 0
    # whole 32-bit words when channels come in fours (aligned: arena offsets are 4-aligned);
    # at most 512 channels so the 16-bit lane sums cannot overflow
    words = 1 if ic & 3 == 0 and ic <= 512 else 0
    n4 = ic >> 2
    arb = int(ar)
    pa = int(sc)
    dst = p[_CONV_OUTPUT]
    b = 0
    while b < nb:
        oy = 0
        while oy < oh:
            y0 = oy * sh - pt
            ox = 0
            while ox < ow:
                x0 = ox * sw - pl
                sx = 0
                if direct:
                    pa = arb + in_off + ((b * ih + y0) * iw + x0) * ic
                    if words:
                        s2 = 0
                        q32 = ptr32(pa)
                        j = 0
                        while j < n4:
                            v = q32[j]
                            s2 += (v & 0xFF00FF) + ((v >> 8) & 0xFF00FF)
                            j += 1
                        sx = (s2 & 0xFFFF) + ((s2 >> 16) & 0xFFFF)
                    else:
                        q = ptr8(pa)
                        j = 0
                        while j < ic:
                            sx += q[j]
                            j += 1
                else:
                    q = sc
                    j = 0
                    ky = 0
                    while ky < kh:
                        iy = y0 + ky * dh
                        kx = 0
                        while kx < kw:
                            ix = x0 + kx * dw
                            if iy >= 0 and iy < ih and ix >= 0 and ix < iw:
                                src = in_off + ((b * ih + iy) * iw + ix) * ic
                                if words:   # 4 bytes at a time; byte sums in two 16-bit lanes
                                    s32 = ptr32(arb + src)
                                    d32 = ptr32(pa + j)
                                    s2 = 0
                                    i = 0
                                    while i < n4:
                                        v = s32[i]
                                        d32[i] = v
                                        s2 += (v & 0xFF00FF) + ((v >> 8) & 0xFF00FF)
                                        i += 1
                                    sx += (s2 & 0xFFFF) + ((s2 >> 16) & 0xFFFF)
                                    j += ic
                                else:
                                    end = src + ic
                                    while src < end:
                                        v = arp[src]
                                        q[j] = v
                                        sx += v
                                        j += 1
                                        src += 1
                            else:
                                end = j + ic
                                while j < end:
                                    q[j] = fill
                                    j += 1
                                sx += fill * ic
                            kx += 1
                        ky += 1
                    while j < k4:
                        q[j] = 0
                        j += 1
                base = 0 - (sx << 7)
                o = 0
                wrow = wbase
                while o < oc:
                    acc = 0
                    cb = ptr8(wrow)
                    ar = ptr8(pa)
                    end = pa + k16
                    while int(ar) < end:
                        acc += (cb[0] * ar[0] + cb[1] * ar[1] + cb[2] * ar[2] + cb[3] * ar[3]
                                + cb[4] * ar[4] + cb[5] * ar[5] + cb[6] * ar[6] + cb[7] * ar[7]
                                + cb[8] * ar[8] + cb[9] * ar[9] + cb[10] * ar[10]
                                + cb[11] * ar[11] + cb[12] * ar[12] + cb[13] * ar[13]
                                + cb[14] * ar[14] + cb[15] * ar[15])
                        cb = ptr8(int(cb) + 16)
                        ar = ptr8(int(ar) + 16)
                    end = pa + k4
                    while int(ar) < end:
                        acc += cb[0] * ar[0] + cb[1] * ar[1] + cb[2] * ar[2] + cb[3] * ar[3]
                        cb = ptr8(int(cb) + 4)
                        ar = ptr8(int(ar) + 4)
                    a = acc + base + ((cs[o] ^ sb) - sb)
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
                    arp[dst] = t
                    dst += 1
                    o += 1
                    wrow += k4
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
