/*
 * tkws_qrnn.c - integer recurrent model steps (see tkws_qrnn.h).
 *
 * Signed right shifts are arithmetic (gcc, clang and the Python reference agree).
 */
#include "tkws_qrnn.h"

#if TKWS_ARM_DSP
/* 32-bit load from any address (the M4 loads unaligned words; memcpy keeps C's aliasing
 * rules and compiles to one ldr). */
static inline int32_t tkws__ld32(const void *p)
{
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* (sign-extended byte 0, byte 2) and (byte 1, byte 3) as int16 pairs. */
static inline int32_t tkws__sxtb16(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}

static inline int32_t tkws__sxtb16_ror8(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* acc + a.lo * b.lo + a.hi * b.hi (int16 halves). */
static inline int32_t tkws__smlad(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* Per 4 rows x 4 columns: 2 loads of x, 4 of weights, 8 sxtb16, 8 smlad. */
TKWS_API void tkws_qmatvec(const tkws_qmatrix *a, const int16_t *x, int32_t *y)
{
    const int8_t *w = a->data;
    const int32_t groups = a->cols_p >> 2;
    for (int32_t r = 0; r < a->rows_p; r += 4, y += 4) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const int16_t *xp = x;
        for (int32_t g = 0; g < groups; ++g, xp += 4, w += 16) {
            const int32_t x01 = tkws__ld32(xp), x23 = tkws__ld32(xp + 2);
            int32_t v = tkws__ld32(w);
            s0 = tkws__smlad(tkws__sxtb16(v), x01, s0);
            s0 = tkws__smlad(tkws__sxtb16_ror8(v), x23, s0);
            v = tkws__ld32(w + 4);
            s1 = tkws__smlad(tkws__sxtb16(v), x01, s1);
            s1 = tkws__smlad(tkws__sxtb16_ror8(v), x23, s1);
            v = tkws__ld32(w + 8);
            s2 = tkws__smlad(tkws__sxtb16(v), x01, s2);
            s2 = tkws__smlad(tkws__sxtb16_ror8(v), x23, s2);
            v = tkws__ld32(w + 12);
            s3 = tkws__smlad(tkws__sxtb16(v), x01, s3);
            s3 = tkws__smlad(tkws__sxtb16_ror8(v), x23, s3);
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }
}
#else
/* Portable version: the same sums in the same layout. */
TKWS_API void tkws_qmatvec(const tkws_qmatrix *a, const int16_t *x, int32_t *y)
{
    const int8_t *w = a->data;
    const int32_t groups = a->cols_p >> 2;
    for (int32_t r = 0; r < a->rows_p; r += 4, y += 4) {
        int32_t s[4] = {0, 0, 0, 0};
        const int16_t *xp = x;
        for (int32_t g = 0; g < groups; ++g, xp += 4) {
            for (int32_t k = 0; k < 4; ++k, w += 4) {
                s[k] += w[0] * xp[0] + w[2] * xp[1] + w[1] * xp[2] + w[3] * xp[3];
            }
        }
        y[0] = s[0];
        y[1] = s[1];
        y[2] = s[2];
        y[3] = s[3];
    }
}
#endif

static inline int32_t tkws__clamp32(int64_t v, int32_t lim)
{
    return v > lim ? lim : (v < -lim ? -lim : (int32_t)v);
}

static inline int16_t tkws__sat16(int64_t v)
{
    return (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
}

TKWS_API int32_t tkws_tanh_q15(int32_t u, int32_t frac)
{
    const int32_t sh = frac - 6;              /* table step 2^-6 */
    const uint32_t m = u < 0 ? (uint32_t)0 - (uint32_t)u : (uint32_t)u;
    const uint32_t k = m >> sh;
    int32_t r;
    if (k >= 512u) {
        r = (int32_t)tkws_tanh_table[512];
    } else {
        const int32_t lo = (int32_t)tkws_tanh_table[k];
        const int32_t f = (int32_t)(m & (((uint32_t)1 << sh) - 1u));
        r = lo + ((((int32_t)tkws_tanh_table[k + 1] - lo) * f + (1 << (sh - 1))) >> sh);
    }
    return u < 0 ? -r : r;
}

TKWS_API int32_t tkws_sigmoid_q15(int32_t u, int32_t frac)
{
    return (32768 + tkws_tanh_q15(u, frac + 1)) >> 1;
}

/* a (Q.12) of row i from the two accumulators. */
static inline int32_t tkws__preact(const tkws_qfast_cell *cell, const int32_t *acc_w,
                                   const int32_t *acc_u, int32_t i)
{
    const int64_t t = (int64_t)acc_w[i] * cell->w_mult[i] + (int64_t)acc_u[i] * cell->u_mult[i];
    return tkws__clamp32((t + ((int64_t)1 << (cell->shift - 1))) >> cell->shift,
                         (int32_t)TKWS_Q_ACT_CLAMP);
}

/* (z h 2^15 + g c 2^h_frac + 2^29) >> 30, saturated: z, g, c Q15; h Q.h_frac. */
static inline int16_t tkws__blend(int32_t z, int32_t h, int32_t g, int32_t c, int32_t h_frac)
{
    const int64_t t = ((int64_t)(z * h) << 15) + ((int64_t)(g * c) << h_frac);
    return tkws__sat16((t + ((int64_t)1 << 29)) >> 30);
}

TKWS_API void tkws_qfastgrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                                  int32_t *acc_w, int32_t *acc_u)
{
    tkws_qmatvec(cell->w, x, acc_w);
    tkws_qmatvec(cell->u, h, acc_u);
    const int32_t k1 = cell->k1, k2 = cell->k2, hf = cell->h_frac;
    for (int32_t i = 0; i < cell->hidden; ++i) {
        const int32_t a = tkws__preact(cell, acc_w, acc_u, i);
        const int32_t z = tkws_sigmoid_q15(a + cell->bias_gate[i], TKWS_Q_PRE_FRAC);
        const int32_t c = tkws_tanh_q15(a + cell->bias_update[i], TKWS_Q_PRE_FRAC);
        const int32_t g = ((k1 * (32768 - z) + (1 << 14)) >> 15) + k2;
        h[i] = tkws__blend(z, h[i], g, c, hf);
    }
}

TKWS_API void tkws_qfastrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                                 int32_t *acc_w, int32_t *acc_u)
{
    tkws_qmatvec(cell->w, x, acc_w);
    tkws_qmatvec(cell->u, h, acc_u);
    for (int32_t i = 0; i < cell->hidden; ++i) {
        const int32_t a = tkws__preact(cell, acc_w, acc_u, i);
        const int32_t c = tkws_tanh_q15(a + cell->bias_update[i], TKWS_Q_PRE_FRAC);
        h[i] = tkws__blend(cell->k2, h[i], cell->k1, c, cell->h_frac);
    }
}

TKWS_API void tkws_qlinear(const tkws_qmatrix *a, const int32_t *mult, int32_t shift,
                           const int32_t *bias, const int16_t *x, int32_t *acc,
                           int32_t *logits)
{
    tkws_qmatvec(a, x, acc);
    for (int32_t i = 0; i < a->rows; ++i) {
        const int64_t t = ((int64_t)acc[i] * mult[i] + ((int64_t)1 << (shift - 1))) >> shift;
        logits[i] = tkws__clamp32(t + bias[i], (int32_t)TKWS_Q_ACT_CLAMP);
    }
}

TKWS_API void tkws_softmax_q15(const int32_t *logits, int16_t *p, int32_t n)
{
    uint32_t e[64];
    uint32_t sum = 0;
    int32_t mx = logits[0];
    for (int32_t i = 1; i < n; ++i) {
        mx = logits[i] > mx ? logits[i] : mx;
    }
    for (int32_t i = 0; i < n; ++i) {
        int32_t d = mx - logits[i];                    /* >= 0, Q.10 */
        d = d > 32767 ? 32767 : d;
        const int32_t y = (d * 47274 + (1 << 10)) >> 11;  /* d log2(e), Q.14 */
        const int32_t sh = y >> 14;
        const int32_t fr = y & 16383;
        const int32_t k = fr >> 6;
        const int32_t lo = (int32_t)tkws_exp2_table[k];
        const int32_t v = lo - (((lo - (int32_t)tkws_exp2_table[k + 1]) * (fr & 63) + 32) >> 6);
        e[i] = sh < 31 ? (uint32_t)v >> sh : 0u;       /* Q16 */
        sum += e[i];
    }
    for (int32_t i = 0; i < n; ++i) {
        const uint32_t q = (e[i] * 32768u + (sum >> 1)) / sum;
        p[i] = (int16_t)(q > 32767u ? 32767u : q);
    }
}

TKWS_API int16_t tkws_q78_from_float(float x)
{
    union {
        float f;
        uint32_t u;
    } b;
    b.f = x;
    const int32_t neg = (int32_t)(b.u >> 31);
    const int32_t ex = (int32_t)((b.u >> 23) & 255u);
    const uint32_t mant = (b.u & 0x7fffffu) | (ex ? 0x800000u : 0u);
    const int32_t sh = 142 - ex;               /* x * 256 = mant * 2^-sh */
    uint32_t r;
    if (sh <= 0) {
        r = 32768u;                            /* |x * 256| >= 2^23: saturate */
    } else if (sh > 24) {
        r = 0u;                                /* |x * 256| < 0.5 */
    } else {                                   /* round half to even */
        const uint32_t half = (uint32_t)1 << (sh - 1);
        const uint32_t rem = mant & ((half << 1) - 1u);
        r = mant >> sh;
        r += (rem > half || (rem == half && (r & 1u))) ? 1u : 0u;
    }
    if (neg) {
        return (int16_t)(-(int32_t)(r > 32768u ? 32768u : r));
    }
    return (int16_t)(r > 32767u ? 32767u : r);
}
