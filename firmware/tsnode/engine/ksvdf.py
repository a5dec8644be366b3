"""SVDF kernel (viper): tflite-micro's EvalIntegerSvdfReference (svdf_common.cc) for int8
input and output, with an int16 or int8 activation state and weights_time. Imported only when
a model has one (ops.kernel).

Per inference: the state (batch x filters x memory, row-major, the `@state` arena tensor the
planner keeps apart from every other, reset by the engine at load) moves left by one element;
each filter's feature dot product `sum(wf * (x - zp_in))` is requantized by (M1, S1), clamped
to the state's range and stored, plus zp_state, as the filter's newest state; then per unit
`bias + sum over its rank filters of sum(wt * (state - zp_state))` in int32 (wrapping, as the
C code's int32 arithmetic does) is requantized by (M2, S2) plus zp_out and clamped to int8.
As in tflite-micro, the fused activation is not applied to int8 output. Both products go
through the requantization block kconv.py describes (the marked copies below).
"""

import micropython
from micropython import const

# Parameter words (docs/formats/tsm.md), the single definition of their order. STATE16: 1
# when the state and weights_time are int16, 0 when int8; WF: filters x inputs int8 bytes;
# WT: filters x memory int16 (little-endian) or int8; BIAS: units int32 (zeros without one).
_SVDF_INPUT = const(0)
_SVDF_STATE = const(1)
_SVDF_OUTPUT = const(2)
_SVDF_BATCH = const(3)
_SVDF_N_INPUT = const(4)
_SVDF_N_FILTER = const(5)
_SVDF_N_MEMORY = const(6)
_SVDF_RANK = const(7)
_SVDF_STATE16 = const(8)
_SVDF_WF = const(9)
_SVDF_WT = const(10)
_SVDF_BIAS = const(11)
_SVDF_ZP_IN = const(12)
_SVDF_ZP_STATE = const(13)
_SVDF_ZP_OUT = const(14)
_SVDF_M1 = const(15)
_SVDF_S1 = const(16)
_SVDF_M2 = const(17)
_SVDF_S2 = const(18)
_SVDF_WIDE = const(19)


@micropython.viper
def svdf(ar: ptr8, cb: ptr8, p: ptr32, sc: ptr8):
    """No scratch: each unit's rank filters are summed as they are computed."""
    one = 1
    sb = one << 31
    h30 = one << 30
    ws = 0   # (a << ws) >> ws keeps the low 32 bits, sign-extended, where ints are wider
    t = 65536
    if t * 65536 != 0:
        ws = 32
    x_off = p[_SVDF_INPUT]
    st_off = p[_SVDF_STATE]
    dst = p[_SVDF_OUTPUT]
    nb = p[_SVDF_BATCH]
    ni = p[_SVDF_N_INPUT]
    nf = p[_SVDF_N_FILTER]
    nm = p[_SVDF_N_MEMORY]
    rank = p[_SVDF_RANK]
    s16 = p[_SVDF_STATE16]
    wf = ptr8(int(cb) + p[_SVDF_WF])
    wt8 = ptr8(int(cb) + p[_SVDF_WT])
    wt16 = ptr16(int(cb) + p[_SVDF_WT])
    bias = ptr32(int(cb) + p[_SVDF_BIAS])
    zi = (p[_SVDF_ZP_IN] ^ sb) - sb
    zs = (p[_SVDF_ZP_STATE] ^ sb) - sb
    wide = p[_SVDF_WIDE]
    st8 = ptr8(int(ar) + st_off)
    st16 = ptr16(int(ar) + st_off)
    nu = nf // rank
    total = nb * nf * nm
    # left shift of the whole state by one element (the newest column is written below)
    i = 0
    if s16:
        smin = -32768
        smax = 32767
        while i < total - 1:
            st16[i] = st16[i + 1]
            i += 1
    else:
        smin = -128
        smax = 127
        while i < total - 1:
            st8[i] = st8[i + 1]
            i += 1
    # feature: state[b, r, nm - 1] = zp_state + clamp(MBQM(sum(wf * (x - zp_in)), M1, S1))
    m = p[_SVDF_M1]
    s = (p[_SVDF_S1] ^ sb) - sb
    zo = 0
    b = 0
    while b < nb:
        xb = x_off + b * ni
        pos = b * nf * nm + nm - 1
        wrow = 0
        r = 0
        while r < nf:
            acc = 0
            c = 0
            while c < ni:
                acc += ((wf[wrow + c] ^ 0x80) - 0x80) * (((ar[xb + c] ^ 0x80) - 0x80) - zi)
                c += 1
            a = acc
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
            if t < smin:
                t = smin
            if t > smax:
                t = smax
            if s16:
                st16[pos] = t + zs
            else:
                st8[pos] = t + zs
            pos += nm
            wrow += ni
            r += 1
        b += 1
    # time, rank reduction, bias: out = clamp(MBQM(bias + sum(wt * (state - zs)), M2, S2) + zo)
    m = p[_SVDF_M2]
    s = (p[_SVDF_S2] ^ sb) - sb
    zo = (p[_SVDF_ZP_OUT] ^ sb) - sb
    b = 0
    while b < nb:
        u = 0
        while u < nu:
            acc = (bias[u] ^ sb) - sb
            j = u * rank * nm          # this unit's first filter row of wt
            base = b * nf * nm + j     # and of the state
            end = j + rank * nm
            if s16:
                while j < end:
                    acc += ((wt16[j] ^ 0x8000) - 0x8000) * (
                        ((st16[base] ^ 0x8000) - 0x8000) - zs)
                    j += 1
                    base += 1
            else:
                while j < end:
                    acc += ((wt8[j] ^ 0x80) - 0x80) * (((st8[base] ^ 0x80) - 0x80) - zs)
                    j += 1
                    base += 1
            a = (acc << ws) >> ws
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
            ar[dst] = t
            dst += 1
            u += 1
        b += 1
