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

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    mp_store_global(MP_QSTR_conv, MP_OBJ_FROM_PTR(&conv_obj));
    mp_store_global(MP_QSTR_dwconv, MP_OBJ_FROM_PTR(&dwconv_obj));
    MP_DYNRUNTIME_INIT_EXIT
}
