"""SOFTMAX (int8 -> int8, scale 1/256, zp -128; or int8 -> int16, scale 1/65536, zp -32768)
exactly as tflite-micro's reference kernel.

exp(beta*s*(x - max)) depends only on d = max - x (0..255), so the converter stores the
gemmlowp exp_on_negative_values results (and their Rescale<12>) as two 256-word tables.
The node sums, takes gemmlowp's fixed-point reciprocal (Newton-Raphson, signed SRDHMs
emulated in 15-bit limbs so it is the same on 32- and 64-bit viper) and scales each term.
"""

import micropython
from micropython import const

# Parameter words of SOFTMAX (docs/formats/tsm.md), the single definition of their
# order (host/tinysense/formats/tsm.py reads them).
_SM_INPUT = const(0)
_SM_OUTPUT = const(1)
_SM_ROWS = const(2)
_SM_DEPTH = const(3)
_SM_EXP = const(4)
_SM_EXPR = const(5)


@micropython.viper
def _srdhm(s: ptr32, i: int, j: int, k: int):
    """s[k] = SaturatingRoundingDoublingHighMul(s[i], s[j]) (int32, any signs)."""
    one = 1
    sb = one << 31
    h30 = one << 30
    a = (s[i] ^ sb) - sb
    b = (s[j] ^ sb) - sb
    mn = 0 - sb
    if a == mn and b == mn:
        s[k] = sb - 1
        return
    neg = 0
    if a < 0:
        a = 0 - a
        neg ^= 1
    if b < 0:
        b = 0 - b
        neg ^= 1
    a0 = a & 0x7FFF
    a1 = (a >> 15) & 0x7FFF
    a2 = (a >> 30) & 3
    b0 = b & 0x7FFF
    b1 = (b >> 15) & 0x7FFF
    b2 = (b >> 30) & 3
    e0 = a0 * b0 + h30 - neg
    e1 = a1 * b0 + a0 * b1 + (e0 >> 15)
    e2 = a2 * b0 + a1 * b1 + a0 * b2 + (e1 >> 15)
    t = (e2 >> 1) + ((a2 * b1 + a1 * b2) << 14) + ((a2 * b2) << 29)
    if neg:
        t = 0 - t
    s[k] = t


# Helpers pass int32 values through the scratch words, never as arguments or return values:
# an int >= 2^30 crossing a call is boxed, which allocates on 32-bit ports. For the same
# reason callers pass the scratch bytearray itself (`sc`), never a native pointer to it: a
# pointer crossing a call is an int too, and addresses >= 2^30 (RV32 QEMU, ESP32-C6/P4)
# would allocate at every call.


@micropython.viper
def _sat_shl(s: ptr32, k: int, e: int):
    """s[k] = gemmlowp SaturatingRoundingMultiplyByPOT<e>(s[k]) for e > 0."""
    one = 1
    sb = one << 31
    v = (s[k] ^ sb) - sb
    thr = (1 << (31 - e)) - 1
    if v > thr:
        s[k] = sb - 1
    elif v < 0 - thr:
        s[k] = 0 - sb
    else:
        s[k] = v << e


@micropython.viper
def _recip(sc):
    """s[0] = one_over_one_plus_x_for_x_in_0_1(s[6]), s[6] in [0, 2^31); uses s[0..6]."""
    s = ptr32(sc)
    one = 1
    h30 = one << 30
    c48 = 0x2D2D2D2D
    c48 = c48 << 1                    # 1515870810: 48/17 in Q2
    x = s[6]
    s[1] = (x >> 1) + h30             # RoundingHalfSum(x, 1.0) for x >= 0
    s[2] = -1010580540
    _srdhm(sc, 1, 2, 3)
    s[4] = c48 + s[3]                 # x (Q2)
    n = 0
    while n < 3:
        _srdhm(sc, 1, 4, 3)            # half_denominator * x
        s[5] = 0x20000000 - s[3]      # 1 - that
        _srdhm(sc, 4, 5, 3)
        _sat_shl(sc, 3, 2)
        s[4] = s[4] + s[3]
        n += 1
    _sat_shl(sc, 4, 1)
    s[0] = s[4]


@micropython.viper
def softmax(ar, cb, p, sc):
    """int8 output (opcode SOFTMAX)."""
    _softmax(ar, cb, p, sc, 0)


@micropython.viper
def softmax_out16(ar, cb, p, sc):
    """int16 output (opcode SOFTMAX_OUT16: the same words and tables): the last rounding shift is
    8 bits shorter and the result is offset by -32768 (tflite-micro's Softmax<int8, int16>)."""
    _softmax(ar, cb, p, sc, 1)


# The kernels pass the objects through (never a native pointer: see above); o16 is 0 or 1.
@micropython.viper
def _softmax(ar: ptr8, cb: ptr8, p: ptr32, sc, o16: int):
    src = p[_SM_INPUT]
    dst = p[_SM_OUTPUT]
    rows = p[_SM_ROWS]
    depth = p[_SM_DEPTH]
    ex = ptr32(int(cb) + p[_SM_EXP])
    exr = ptr32(int(cb) + p[_SM_EXPR])
    s = ptr32(sc)
    one = 1
    sb = one << 31
    r = 0
    while r < rows:
        mx = -128
        c = 0
        while c < depth:
            v = (ar[src + c] ^ 0x80) - 0x80
            if v > mx:
                mx = v
            c += 1
        total = 0
        c = 0
        while c < depth:
            total += exr[mx - ((ar[src + c] ^ 0x80) - 0x80)]
            c += 1
        hp1 = 0
        while hp1 < 32 and ((total >> (31 - hp1)) & 1) == 0:
            hp1 += 1
        nbits = 12 - hp1
        s[6] = (total << hp1) & (sb - 1)
        _recip(sc)
        e = nbits + 23
        lo = -128
        if o16:
            e = nbits + 15
            lo = -32768
        hi = -1 - lo
        mask = (1 << e) - 1
        c = 0
        while c < depth:
            s[1] = ex[mx - ((ar[src + c] ^ 0x80) - 0x80)]
            _srdhm(sc, 0, 1, 2)
            t = s[2]
            rem = t & mask
            thr = mask >> 1
            t = (t >> e) + lo
            if rem > thr:
                t += 1
            if t > hi:
                t = hi
            if o16:    # little-endian int16 (the arena offset is 4-aligned)
                ar[dst + 2 * c] = t
                ar[dst + 2 * c + 1] = t >> 8
            else:
                ar[dst + c] = t
            c += 1
        src += depth
        dst += depth << o16
        r += 1
