/*
 * tsnn: tinysense's int8 kernels as native code, a MicroPython dynamic native module.
 *
 * Each function takes what its viper twin in firmware/tsnode/engine/ takes, with the same
 * parameter words (their indices come from the viper modules' `_NAME = const(N)` lines
 * through the generated tsnn_params.h), the same arena layout and scratch use, and gives
 * the same bytes:
 *
 *   tsnn.conv(arena, consts, params, scratch)     kconv.conv: CONV_2D, FULLY_CONNECTED
 *   tsnn.dwconv(arena, consts, params, scratch)   kdw.dwconv: DEPTHWISE_CONV_2D
 *   tsnn.add / tsnn.mul (same arguments)          kelt.add / kelt.mul: ADD, MUL
 *   tsnn.avgpool / tsnn.maxpool                   kpool.avgpool / maxpool: the pools
 *   tsnn.mean                                     kpool.mean: MEAN
 *   tsnn.softmax                                  ksoftmax.softmax: SOFTMAX
 *   tsnn.svdf                                     ksvdf.svdf: SVDF (int16 or int8 state)
 *
 * Arguments convert as viper's ptr8 arguments do (a buffer, or an int address: the
 * streaming engine passes its constants base as an int). Nothing is allocated per call.
 *
 * Arithmetic (docs/engine.md "How the kernels compute"): weights are w+128 (uint8), the
 * input is flipped in place to x' = x+128 and back at the end. Requantization is
 * tflite-micro's MultiplyByQuantizedMultiplier with double rounding, on the exact 64-bit
 * product; the accumulator and the left shift wrap in 32 bits as on the ESP32.
 */
#include "py/dynruntime.h"

#include "tsnn_params.h"

#define ARG_PTR(o) ((uint8_t *)mp_fun_table.native_from_obj((o), MP_NATIVE_TYPE_PTR8))

static inline int32_t rd32(const uint8_t *base, uint32_t off, uint32_t i) {
    return ((const int32_t *)(base + off))[i];
}

// MultiplyByQuantizedMultiplier (double rounding) then + zo.
static inline int32_t requant(int32_t a, int32_t m, int32_t s, int32_t zo) {
    int rs = 0;
    if (s > 0) {
        a = (int32_t)((uint32_t)a << s);
    } else {
        rs = -s;
    }
    // SRDHM: (p + nudge) / 2^31 truncating == (p + 2^30) >> 31 (m >= 0: no saturation)
    int64_t prod = (int64_t)a * (int64_t)m;
    int32_t t = (int32_t)((prod + ((int64_t)1 << 30)) >> 31);
    if (rs > 0) {   // RDBPOT
        int32_t mask = (int32_t)(((uint32_t)1 << rs) - 1);
        int32_t rem = t & mask;
        int32_t thr = (mask >> 1) + (t < 0);
        t = (t >> rs) + (rem > thr);
    }
    return t + zo;
}

static inline uint8_t clamp8(int32_t t, int32_t amin, int32_t amax) {
    if (t < amin) {
        t = amin;
    }
    if (t > amax) {
        t = amax;
    }
    return (uint8_t)t;
}

// x ^= 0x80 over n bytes at a 4-aligned address.
static void flip(uint8_t *q, uint32_t n) {
    uint32_t *w = (uint32_t *)q;
    uint32_t n4 = n >> 2;
    for (uint32_t i = 0; i < n4; i++) {
        w[i] ^= 0x80808080u;
    }
    for (uint32_t i = n4 << 2; i < n; i++) {
        q[i] ^= 0x80;
    }
}

static void check_words(mp_obj_t p_obj, size_t need, const char *msg) {
    mp_buffer_info_t bi;
    if (mp_get_buffer(p_obj, &bi, MP_BUFFER_READ) && bi.len < need * 4) {
        mp_raise_ValueError(msg);
    }
}

static mp_obj_t conv(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    check_words(args[2], P_CONV_WIDE, "tsnn.conv: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    uint8_t *cb = ARG_PTR(args[1]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    uint8_t *sc = ARG_PTR(args[3]);
    uint32_t in_off = p[P_CONV_INPUT];
    int32_t nb = p[P_CONV_N], ih = p[P_CONV_H], iw = p[P_CONV_W], ic = p[P_CONV_C];
    int32_t oh = p[P_CONV_OH], ow = p[P_CONV_OW], oc = p[P_CONV_OC];
    int32_t kh = p[P_CONV_KH], kw = p[P_CONV_KW], sh = p[P_CONV_SH], sw = p[P_CONV_SW];
    int32_t dh = p[P_CONV_DH], dw = p[P_CONV_DW], pt = p[P_CONV_PAD_TOP];
    int32_t pl = p[P_CONV_PAD_LEFT];
    const uint8_t *wbase = cb + (uint32_t)p[P_CONV_WEIGHTS];
    int32_t k4 = p[P_CONV_K4];
    uint32_t cs_off = p[P_CONV_FOLDED], ms_off = p[P_CONV_MULTS], ss_off = p[P_CONV_SHIFTS];
    uint8_t fill = (uint8_t)p[P_CONV_FILL];
    int32_t zo = p[P_CONV_ZP_OUT], amin = p[P_CONV_AMIN], amax = p[P_CONV_AMAX];
    uint8_t *in = ar + in_off;
    uint32_t fn = (uint32_t)(nb * ih * iw * ic);
    flip(in, fn);
    int direct = kh == 1 && kw == 1 && pt == 0 && pl == 0;
    uint8_t *dst = ar + (uint32_t)p[P_CONV_OUTPUT];
    for (int32_t b = 0; b < nb; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            int32_t y0 = oy * sh - pt;
            for (int32_t ox = 0; ox < ow; ox++) {
                int32_t x0 = ox * sw - pl;
                const uint8_t *pa;
                uint32_t sx = 0;
                if (direct) {
                    // the pixel itself; rows past ic read up to 3 bytes on (times w = 0)
                    pa = in + ((b * ih + y0) * iw + x0) * ic;
                    for (int32_t j = 0; j < ic; j++) {
                        sx += pa[j];
                    }
                } else {
                    uint8_t *q = sc;
                    for (int32_t ky = 0; ky < kh; ky++) {
                        int32_t iy = y0 + ky * dh;
                        for (int32_t kx = 0; kx < kw; kx++) {
                            int32_t ix = x0 + kx * dw;
                            if (iy >= 0 && iy < ih && ix >= 0 && ix < iw) {
                                const uint8_t *s = in + ((b * ih + iy) * iw + ix) * ic;
                                for (int32_t j = 0; j < ic; j++) {
                                    uint8_t v = s[j];
                                    q[j] = v;
                                    sx += v;
                                }
                            } else {
                                for (int32_t j = 0; j < ic; j++) {
                                    q[j] = fill;
                                }
                                sx += (uint32_t)fill * (uint32_t)ic;
                            }
                            q += ic;
                        }
                    }
                    while (q < sc + k4) {
                        *q++ = 0;
                    }
                    pa = sc;
                }
                uint32_t base = 0u - (sx << 7);
                const uint8_t *wr = wbase;
                int32_t o = 0;
                // four output channels per pass over the patch: each x byte loaded once
                for (; o + 4 <= oc; o += 4) {
                    const uint8_t *w0 = wr, *w1 = wr + k4, *w2 = wr + 2 * k4, *w3 = wr + 3 * k4;
                    uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    for (int32_t j = 0; j < k4; j++) {
                        uint32_t x = pa[j];
                        a0 += w0[j] * x;
                        a1 += w1[j] * x;
                        a2 += w2[j] * x;
                        a3 += w3[j] * x;
                    }
                    uint32_t acc[4] = {a0, a1, a2, a3};
                    for (int i = 0; i < 4; i++) {
                        int32_t a = (int32_t)(acc[i] + base + (uint32_t)rd32(cb, cs_off, o + i));
                        int32_t t = requant(a, rd32(cb, ms_off, o + i), rd32(cb, ss_off, o + i), zo);
                        *dst++ = clamp8(t, amin, amax);
                    }
                    wr += 4 * k4;
                }
                for (; o < oc; o++) {
                    uint32_t a0 = 0;
                    for (int32_t j = 0; j < k4; j++) {
                        a0 += wr[j] * (uint32_t)pa[j];
                    }
                    int32_t a = (int32_t)(a0 + base + (uint32_t)rd32(cb, cs_off, o));
                    int32_t t = requant(a, rd32(cb, ms_off, o), rd32(cb, ss_off, o), zo);
                    *dst++ = clamp8(t, amin, amax);
                    wr += k4;
                }
            }
        }
    }
    flip(in, fn);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(conv_obj, 4, 4, conv);

static mp_obj_t dwconv(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    check_words(args[2], P_DW_WIDE, "tsnn.dwconv: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    uint8_t *cb = ARG_PTR(args[1]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    uint8_t *sc = ARG_PTR(args[3]);
    uint32_t in_off = p[P_DW_INPUT];
    int32_t nb = p[P_DW_N], ih = p[P_DW_H], iw = p[P_DW_W], ic = p[P_DW_C];
    int32_t oh = p[P_DW_OH], ow = p[P_DW_OW], oc = p[P_DW_OC];
    int32_t kh = p[P_DW_KH], kw = p[P_DW_KW], sh = p[P_DW_SH], sw = p[P_DW_SW];
    int32_t dh = p[P_DW_DH], dw = p[P_DW_DW], pt = p[P_DW_PAD_TOP], pl = p[P_DW_PAD_LEFT];
    const uint8_t *wb = cb + (uint32_t)p[P_DW_WEIGHTS];
    int32_t mult = p[P_DW_DEPTH_MULT];
    uint32_t bs_off = p[P_DW_BIAS], ms_off = p[P_DW_MULTS], ss_off = p[P_DW_SHIFTS];
    uint32_t k0_off = p[P_DW_K0];
    int32_t c1 = 128 + p[P_DW_ZP_IN];
    int32_t zo = p[P_DW_ZP_OUT], amin = p[P_DW_AMIN], amax = p[P_DW_AMAX];
    int32_t nt_all = kh * kw;
    // scratch as kdw uses it: tap offsets, tap indices, then a row of c1 bytes
    uint32_t *toff = (uint32_t *)sc;
    uint32_t *tidx = (uint32_t *)(sc + 4 * nt_all);
    uint8_t *zb = sc + 8 * nt_all;
    for (int32_t i = 0; i < ic; i++) {
        zb[i] = (uint8_t)c1;
    }
    uint8_t *in = ar + in_off;
    uint32_t fn = (uint32_t)(nb * ih * iw * ic);
    flip(in, fn);
    int fast = kh == 3 && kw == 3 && mult == 1;
    int32_t d1 = dw * ic, r1 = dh * iw * ic;
    uint8_t *dst = ar + (uint32_t)p[P_DW_OUTPUT];
    for (int32_t b = 0; b < nb; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            int32_t y0 = oy * sh - pt;
            for (int32_t ox = 0; ox < ow; ox++) {
                int32_t x0 = ox * sw - pl;
                if (fast) {
                    // out-of-image taps read the c1 row: with K0 = bias - c1*sum(w) folded
                    // in, they add exactly zero
                    const uint8_t *q[9];
                    const uint8_t *pix = in + ((b * ih + y0) * iw + x0) * ic;
                    for (int ky = 0; ky < 3; ky++) {
                        int32_t iy = y0 + ky * dh;
                        int vy = iy >= 0 && iy < ih;
                        for (int kx = 0; kx < 3; kx++) {
                            int32_t ix = x0 + kx * dw;
                            q[ky * 3 + kx] = vy && ix >= 0 && ix < iw
                                ? pix + ky * r1 + kx * d1 : zb;
                        }
                    }
                    const uint8_t *w = wb;
                    for (int32_t o = 0; o < oc; o++) {
                        int32_t acc = rd32(cb, k0_off, o)
                            + (w[0] - 128) * q[0][o] + (w[1] - 128) * q[1][o]
                            + (w[2] - 128) * q[2][o] + (w[3] - 128) * q[3][o]
                            + (w[4] - 128) * q[4][o] + (w[5] - 128) * q[5][o]
                            + (w[6] - 128) * q[6][o] + (w[7] - 128) * q[7][o]
                            + (w[8] - 128) * q[8][o];
                        int32_t t = requant(acc, rd32(cb, ms_off, o), rd32(cb, ss_off, o), zo);
                        dst[o] = clamp8(t, amin, amax);
                        w += 9;
                    }
                    dst += oc;
                    continue;
                }
                int32_t nt = 0;
                for (int32_t ky = 0; ky < kh; ky++) {
                    int32_t iy = y0 + ky * dh;
                    if (iy < 0 || iy >= ih) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < kw; kx++) {
                        int32_t ix = x0 + kx * dw;
                        if (ix >= 0 && ix < iw) {
                            toff[nt] = ((b * ih + iy) * iw + ix) * ic;
                            tidx[nt] = ky * kw + kx;
                            nt++;
                        }
                    }
                }
                int32_t o = 0;
                for (int32_t c = 0; c < ic; c++) {
                    for (int32_t k = 0; k < mult; k++) {
                        const uint8_t *w = wb + o * nt_all;
                        int32_t acc = rd32(cb, bs_off, o);
                        for (int32_t j = 0; j < nt; j++) {
                            acc += (w[tidx[j]] - 128) * (in[toff[j] + c] - c1);
                        }
                        int32_t t = requant(acc, rd32(cb, ms_off, o), rd32(cb, ss_off, o), zo);
                        dst[o] = clamp8(t, amin, amax);
                        o++;
                    }
                }
                dst += oc;
            }
        }
    }
    flip(in, fn);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(dwconv_obj, 4, 4, dwconv);

// ---- ADD, MUL (kelt._binary) ----
static mp_obj_t binary(const mp_obj_t *args, int is_mul) {
    check_words(args[2], P_ADD_WIDE, "tsnn.add/mul: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    uint8_t *cb = ARG_PTR(args[1]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    int32_t a_off = p[P_ADD_A], b_off = p[P_ADD_B];
    uint8_t *dst = ar + (uint32_t)p[P_ADD_OUTPUT];
    const int32_t *t1 = (const int32_t *)(cb + (uint32_t)p[P_ADD_T1]);
    const int32_t *t2 = (const int32_t *)(cb + (uint32_t)p[P_ADD_T2]);
    int32_t z1 = p[P_MUL_ZP_A], z2 = p[P_MUL_ZP_B];
    int32_t m = p[P_ADD_MULT];
    int32_t s = is_mul ? p[P_MUL_SHIFT] : (int32_t)(0u - (uint32_t)p[P_ADD_RSHIFT]);
    int32_t zo = p[P_ADD_ZP_OUT], amin = p[P_ADD_AMIN], amax = p[P_ADD_AMAX];
    int32_t bc = p[P_ADD_BCAST];
    int32_t d0 = p[P_ADD_D0], d1 = p[P_ADD_D1], d2 = p[P_ADD_D2], d3 = p[P_ADD_D3];
    int32_t s3a = 1, s3b = 1;
    if (!bc) {
        d0 = 1;
        d1 = 1;
        d2 = 1;
        d3 = p[P_ADD_N];
    } else {
        s3a = p[P_ADD_SA3];
        s3b = p[P_ADD_SB3];
    }
    for (int32_t i0 = 0; i0 < d0; i0++) {
        for (int32_t i1 = 0; i1 < d1; i1++) {
            for (int32_t i2 = 0; i2 < d2; i2++) {
                int32_t pa = a_off, pb = b_off;
                if (bc) {
                    pa = a_off + i0 * p[P_ADD_SA0] + i1 * p[P_ADD_SA1] + i2 * p[P_ADD_SA2];
                    pb = b_off + i0 * p[P_ADD_SB0] + i1 * p[P_ADD_SB1] + i2 * p[P_ADD_SB2];
                }
                const uint8_t *qa = ar + (uint32_t)pa, *qb = ar + (uint32_t)pb;
                if (is_mul) {
                    for (int32_t i3 = 0; i3 < d3; i3++) {
                        int32_t a = ((int32_t)(int8_t)*qa - z1) * ((int32_t)(int8_t)*qb - z2);
                        qa += s3a;
                        qb += s3b;
                        *dst++ = clamp8(requant(a, m, s, zo), amin, amax);
                    }
                } else {
                    for (int32_t i3 = 0; i3 < d3; i3++) {
                        int32_t a = (int32_t)((uint32_t)t1[*qa] + (uint32_t)t2[*qb]);
                        qa += s3a;
                        qb += s3b;
                        *dst++ = clamp8(requant(a, m, s, zo), amin, amax);
                    }
                }
            }
        }
    }
    return mp_const_none;
}

static mp_obj_t add(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return binary(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(add_obj, 4, 4, add);

static mp_obj_t mul(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return binary(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mul_obj, 4, 4, mul);

// ---- AVERAGE_POOL_2D, MAX_POOL_2D (kpool._pool) ----
static mp_obj_t pool(const mp_obj_t *args, int is_max) {
    check_words(args[2], P_POOL_AMAX + 1, "tsnn.avgpool/maxpool: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    const uint8_t *in = ar + (uint32_t)p[P_POOL_INPUT];
    uint8_t *dst = ar + (uint32_t)p[P_POOL_OUTPUT];
    int32_t nb = p[P_POOL_N], ih = p[P_POOL_H], iw = p[P_POOL_W], c = p[P_POOL_C];
    int32_t oh = p[P_POOL_OH], ow = p[P_POOL_OW], kh = p[P_POOL_KH], kw = p[P_POOL_KW];
    int32_t sh = p[P_POOL_SH], sw = p[P_POOL_SW], pt = p[P_POOL_PAD_TOP];
    int32_t pl = p[P_POOL_PAD_LEFT], amin = p[P_POOL_AMIN], amax = p[P_POOL_AMAX];
    for (int32_t b = 0; b < nb; b++) {
        for (int32_t oy = 0; oy < oh; oy++) {
            int32_t y0 = oy * sh - pt;
            int32_t ky0 = y0 < 0 ? -y0 : 0;
            int32_t ky1 = ih - y0 < kh ? ih - y0 : kh;
            for (int32_t ox = 0; ox < ow; ox++) {
                int32_t x0 = ox * sw - pl;
                int32_t kx0 = x0 < 0 ? -x0 : 0;
                int32_t kx1 = iw - x0 < kw ? iw - x0 : kw;
                int32_t n = (ky1 - ky0) * (kx1 - kx0);
                if (!is_max && n == 0) {
                    mp_raise_ValueError("tsnn.avgpool: a window with no input pixel");
                }
                const uint8_t *px = in + ((b * ih + y0) * iw + x0) * c;
                for (int32_t ch = 0; ch < c; ch++) {
                    int32_t acc = is_max ? -128 : 0;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const uint8_t *row = px + ky * iw * c + ch;
                        for (int32_t kx = kx0; kx < kx1; kx++) {
                            int32_t v = (int8_t)row[kx * c];
                            if (is_max) {
                                if (v > acc) {
                                    acc = v;
                                }
                            } else {
                                acc += v;
                            }
                        }
                    }
                    if (!is_max) {
                        acc = acc >= 0 ? (acc + (n >> 1)) / n : -((-acc + (n >> 1)) / n);
                    }
                    *dst++ = clamp8(acc, amin, amax);
                }
            }
        }
    }
    return mp_const_none;
}

static mp_obj_t avgpool(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return pool(args, 0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(avgpool_obj, 4, 4, avgpool);

static mp_obj_t maxpool(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    return pool(args, 1);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(maxpool_obj, 4, 4, maxpool);

// ---- MEAN (kpool.mean): int32 sums in the scratch, then MBQM(sum - zp_in*n) + zp_out ----
static mp_obj_t mean(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    check_words(args[2], P_MEAN_WIDE, "tsnn.mean: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    uint32_t *acc = (uint32_t *)ARG_PTR(args[3]);
    const uint8_t *src = ar + (uint32_t)p[P_MEAN_INPUT];
    uint8_t *dst = ar + (uint32_t)p[P_MEAN_OUTPUT];
    int32_t d0 = p[P_MEAN_D0], d1 = p[P_MEAN_D1], d2 = p[P_MEAN_D2], d3 = p[P_MEAN_D3];
    int32_t o0 = p[P_MEAN_OS0], o1 = p[P_MEAN_OS1], o2 = p[P_MEAN_OS2], o3 = p[P_MEAN_OS3];
    int32_t m = p[P_MEAN_MULT], s = p[P_MEAN_SHIFT], zn = p[P_MEAN_ZP_IN_N];
    int32_t zo = p[P_MEAN_ZP_OUT], nout = p[P_MEAN_N_OUT];
    for (int32_t i = 0; i < nout; i++) {
        acc[i] = 0;
    }
    for (int32_t i0 = 0; i0 < d0; i0++) {
        for (int32_t i1 = 0; i1 < d1; i1++) {
            for (int32_t i2 = 0; i2 < d2; i2++) {
                uint32_t *ob = acc + (i0 * o0 + i1 * o1 + i2 * o2);
                for (int32_t i3 = 0; i3 < d3; i3++) {
                    ob[i3 * o3] += (uint32_t)(int32_t)(int8_t)*src++;
                }
            }
        }
    }
    for (int32_t i = 0; i < nout; i++) {
        int32_t a = (int32_t)(acc[i] - (uint32_t)zn);
        dst[i] = clamp8(requant(a, m, s, zo), -128, 127);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mean_obj, 4, 4, mean);

// ---- SOFTMAX (ksoftmax.softmax): gemmlowp's fixed-point reciprocal, the scratch words
// s[0..6] written as the viper kernel writes them ----
static int32_t srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t sat_shl(int32_t v, int e) {
    int32_t thr = (int32_t)(((uint32_t)1 << (31 - e)) - 1);
    if (v > thr) {
        return INT32_MAX;
    }
    if (v < -thr) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)v << e);
}

static mp_obj_t softmax(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    check_words(args[2], P_SM_EXPR + 1, "tsnn.softmax: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    uint8_t *cb = ARG_PTR(args[1]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    int32_t *s = (int32_t *)ARG_PTR(args[3]);
    const uint8_t *src = ar + (uint32_t)p[P_SM_INPUT];
    uint8_t *dst = ar + (uint32_t)p[P_SM_OUTPUT];
    int32_t rows = p[P_SM_ROWS], depth = p[P_SM_DEPTH];
    const int32_t *ex = (const int32_t *)(cb + (uint32_t)p[P_SM_EXP]);
    const int32_t *exr = (const int32_t *)(cb + (uint32_t)p[P_SM_EXPR]);
    for (int32_t r = 0; r < rows; r++) {
        int32_t mx = -128;
        for (int32_t c = 0; c < depth; c++) {
            int32_t v = (int8_t)src[c];
            if (v > mx) {
                mx = v;
            }
        }
        uint32_t total = 0;
        for (int32_t c = 0; c < depth; c++) {
            total += (uint32_t)exr[mx - (int8_t)src[c]];
        }
        int hp1 = 0;
        while (hp1 < 32 && ((total >> (31 - hp1)) & 1) == 0) {
            hp1++;
        }
        int nbits = 12 - hp1;
        int32_t x = hp1 < 32 ? (int32_t)((total << hp1) & 0x7fffffffu) : 0;
        s[6] = x;
        // one_over_one_plus_x_for_x_in_0_1(x), step by step as ksoftmax._recip
        s[1] = (x >> 1) + (1 << 30);
        s[2] = -1010580540;
        s[3] = srdhm(s[1], s[2]);
        s[4] = (int32_t)(1515870810u + (uint32_t)s[3]);
        for (int n = 0; n < 3; n++) {
            s[3] = srdhm(s[1], s[4]);
            s[5] = (int32_t)(0x20000000u - (uint32_t)s[3]);
            s[3] = srdhm(s[4], s[5]);
            s[3] = sat_shl(s[3], 2);
            s[4] = (int32_t)((uint32_t)s[4] + (uint32_t)s[3]);
        }
        s[4] = sat_shl(s[4], 1);
        s[0] = s[4];
        int e = nbits + 23;
        int64_t mask = ((int64_t)1 << e) - 1;
        for (int32_t c = 0; c < depth; c++) {
            s[1] = ex[mx - (int8_t)src[c]];
            s[2] = srdhm(s[0], s[1]);
            int64_t t = (uint32_t)s[2];
            int64_t rem = t & mask;
            int64_t thr = mask >> 1;
            t = (t >> e) - 128;
            if (rem > thr) {
                t++;
            }
            if (t > 127) {
                t = 127;
            }
            dst[c] = (uint8_t)t;
        }
        src += depth;
        dst += depth;
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(softmax_obj, 4, 4, softmax);

// ---- SVDF (ksvdf.svdf): the state shifted left by one element, each filter's feature dot
// product requantized into its newest state, then per unit bias + its rank filters' time dot
// products (int32, wrapping: unsigned arithmetic) requantized to int8. No scratch. ----
static mp_obj_t svdf(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    check_words(args[2], P_SVDF_WIDE, "tsnn.svdf: too few parameter words");
    uint8_t *ar = ARG_PTR(args[0]);
    const uint8_t *cb = ARG_PTR(args[1]);
    const int32_t *p = (const int32_t *)ARG_PTR(args[2]);
    const int8_t *x = (const int8_t *)(ar + (uint32_t)p[P_SVDF_INPUT]);
    uint8_t *stb = ar + (uint32_t)p[P_SVDF_STATE];
    uint8_t *dst = ar + (uint32_t)p[P_SVDF_OUTPUT];
    int32_t nb = p[P_SVDF_BATCH], ni = p[P_SVDF_N_INPUT], nf = p[P_SVDF_N_FILTER];
    int32_t nm = p[P_SVDF_N_MEMORY], rank = p[P_SVDF_RANK], s16 = p[P_SVDF_STATE16];
    const int8_t *wf = (const int8_t *)(cb + (uint32_t)p[P_SVDF_WF]);
    const int16_t *wt16 = (const int16_t *)(cb + (uint32_t)p[P_SVDF_WT]);
    const int8_t *wt8 = (const int8_t *)(cb + (uint32_t)p[P_SVDF_WT]);
    const int32_t *bias = (const int32_t *)(cb + (uint32_t)p[P_SVDF_BIAS]);
    int32_t zi = p[P_SVDF_ZP_IN], zs = p[P_SVDF_ZP_STATE], zo = p[P_SVDF_ZP_OUT];
    int32_t m1 = p[P_SVDF_M1], s1 = p[P_SVDF_S1], m2 = p[P_SVDF_M2], s2 = p[P_SVDF_S2];
    int16_t *st16 = (int16_t *)stb;
    int8_t *st8 = (int8_t *)stb;
    int32_t total = nb * nf * nm;
    int32_t smin = s16 ? -32768 : -128, smax = s16 ? 32767 : 127;
    if (s16) {
        for (int32_t i = 0; i < total - 1; i++) {
            st16[i] = st16[i + 1];
        }
    } else {
        for (int32_t i = 0; i < total - 1; i++) {
            st8[i] = st8[i + 1];
        }
    }
    for (int32_t b = 0; b < nb; b++) {
        const int8_t *xb = x + b * ni;
        int32_t pos = b * nf * nm + nm - 1;
        for (int32_t r = 0; r < nf; r++, pos += nm) {
            const int8_t *w = wf + r * ni;
            int32_t acc = 0;
            for (int32_t c = 0; c < ni; c++) {
                acc += (int32_t)w[c] * ((int32_t)xb[c] - zi);
            }
            int32_t t = requant(acc, m1, s1, 0);
            t = t < smin ? smin : t > smax ? smax : t;
            if (s16) {
                st16[pos] = (int16_t)(t + zs);
            } else {
                st8[pos] = (int8_t)(t + zs);
            }
        }
    }
    int32_t nu = nf / rank, run = rank * nm;
    for (int32_t b = 0; b < nb; b++) {
        for (int32_t u = 0; u < nu; u++) {
            uint32_t acc = (uint32_t)bias[u];
            int32_t j0 = u * run, base = b * nf * nm + j0;
            if (s16) {
                for (int32_t j = 0; j < run; j++) {
                    acc += (uint32_t)(int32_t)wt16[j0 + j] *
                           (uint32_t)((int32_t)st16[base + j] - zs);
                }
            } else {
                for (int32_t j = 0; j < run; j++) {
                    acc += (uint32_t)(int32_t)wt8[j0 + j] *
                           (uint32_t)((int32_t)st8[base + j] - zs);
                }
            }
            *dst++ = clamp8(requant((int32_t)acc, m2, s2, zo), -128, 127);
        }
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(svdf_obj, 4, 4, svdf);

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    // the ABI (firmware/tsnode/engine/ops.py _TSNN_ABI): the engine runs no module of another
    mp_store_global(MP_QSTR_ABI, MP_OBJ_NEW_SMALL_INT(TSNN_ABI));
    mp_store_global(MP_QSTR_conv, MP_OBJ_FROM_PTR(&conv_obj));
    mp_store_global(MP_QSTR_dwconv, MP_OBJ_FROM_PTR(&dwconv_obj));
    mp_store_global(MP_QSTR_add, MP_OBJ_FROM_PTR(&add_obj));
    mp_store_global(MP_QSTR_mul, MP_OBJ_FROM_PTR(&mul_obj));
    mp_store_global(MP_QSTR_avgpool, MP_OBJ_FROM_PTR(&avgpool_obj));
    mp_store_global(MP_QSTR_maxpool, MP_OBJ_FROM_PTR(&maxpool_obj));
    mp_store_global(MP_QSTR_mean, MP_OBJ_FROM_PTR(&mean_obj));
    mp_store_global(MP_QSTR_softmax, MP_OBJ_FROM_PTR(&softmax_obj));
    mp_store_global(MP_QSTR_svdf, MP_OBJ_FROM_PTR(&svdf_obj));
    MP_DYNRUNTIME_INIT_EXIT
}
