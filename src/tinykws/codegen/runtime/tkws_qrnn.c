/*
 * tkws_qrnn.c - integer recurrent model steps (see tkws_qrnn.h).
 *
 * Signed right shifts are arithmetic (gcc, clang and the Python reference agree).
 */
#include "tkws_qrnn.h"

/* Inside a generated model.c every call is inlined, so that the per-layer constants of the
 * const cell structs (shift, h_frac, sizes) fold into the code. */
#if defined(TKWS_STATIC_RUNTIME) && (defined(__GNUC__) || defined(__clang__))
#define TKWS_QAPI static inline __attribute__((always_inline))
#else
#define TKWS_QAPI TKWS_API
#endif

#if TKWS_ARM_DSP
/* 4 rows x 4 columns (16 multiply-accumulates): 3 ldrd (post-indexed), 8 sxtb16, 8 smlad.
 * x and the weights must be 4-byte aligned (ldrd does not load unaligned words). */
#define TKWS__QMAC_4X4(xp, w, s0, s1, s2, s3)                                            \
    do {                                                                                 \
        int32_t x0_, x1_, w0_, w1_, t_;                                                  \
        __asm__("ldrd %[x0], %[x1], [%[xp]], #8\n\t"                                      \
                "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                                      \
                "sxtb16 %[t], %[w0]\n\t"                                                  \
                "sxtb16 %[w0], %[w0], ror #8\n\t"                                         \
                "smlad %[s0], %[t], %[x0], %[s0]\n\t"                                     \
                "smlad %[s0], %[w0], %[x1], %[s0]\n\t"                                    \
                "sxtb16 %[t], %[w1]\n\t"                                                  \
                "sxtb16 %[w1], %[w1], ror #8\n\t"                                         \
                "smlad %[s1], %[t], %[x0], %[s1]\n\t"                                     \
                "smlad %[s1], %[w1], %[x1], %[s1]\n\t"                                    \
                "ldrd %[w0], %[w1], [%[wp]], #8\n\t"                                      \
                "sxtb16 %[t], %[w0]\n\t"                                                  \
                "sxtb16 %[w0], %[w0], ror #8\n\t"                                         \
                "smlad %[s2], %[t], %[x0], %[s2]\n\t"                                     \
                "smlad %[s2], %[w0], %[x1], %[s2]\n\t"                                    \
                "sxtb16 %[t], %[w1]\n\t"                                                  \
                "sxtb16 %[w1], %[w1], ror #8\n\t"                                         \
                "smlad %[s3], %[t], %[x0], %[s3]\n\t"                                     \
                "smlad %[s3], %[w1], %[x1], %[s3]\n\t"                                    \
                : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3),             \
                  [xp] "+r"(xp), [wp] "+r"(w), [x0] "=&r"(x0_), [x1] "=&r"(x1_),          \
                  [w0] "=&r"(w0_), [w1] "=&r"(w1_), [t] "=&r"(t_)                         \
                :                                                                        \
                : "memory");                                                             \
    } while (0)

/* Per block of 4 rows: the column groups 4 at a time (19 instructions each, plus the
 * loop's subs + bne once per 4 groups: 1.22 instructions per multiply-accumulate). */
TKWS_QAPI void tkws_qmatvec(const tkws_qmatrix *a, const int16_t *x, int32_t *y)
{
    const int8_t *w = a->data;
    const int32_t groups = a->cols_p >> 2;
    for (int32_t r = 0; r < a->rows_p; r += 4, y += 4) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const int16_t *xp = x;
        for (int32_t g = groups >> 2; g > 0; --g) {
            TKWS__QMAC_4X4(xp, w, s0, s1, s2, s3);
            TKWS__QMAC_4X4(xp, w, s0, s1, s2, s3);
            TKWS__QMAC_4X4(xp, w, s0, s1, s2, s3);
            TKWS__QMAC_4X4(xp, w, s0, s1, s2, s3);
        }
        for (int32_t g = groups & 3; g > 0; --g) {
            TKWS__QMAC_4X4(xp, w, s0, s1, s2, s3);
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }
}
#else
/* Portable version: the same sums in the same layout. */
TKWS_QAPI void tkws_qmatvec(const tkws_qmatrix *a, const int16_t *x, int32_t *y)
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

#if TKWS_ARM_DSP
static inline int32_t tkws__ssat28(int32_t v)
{
    int32_t r;
    __asm__("ssat %0, #28, %1" : "=r"(r) : "r"(v));
    return r;
}
#else
static inline int32_t tkws__ssat28(int32_t v)
{
    return v < -(1 << 27) ? -(1 << 27) : (v > (1 << 27) - 1 ? (1 << 27) - 1 : v);
}
#endif

/* clamp((t + 2^31) >> 32, [-2^(27 - shift), 2^(27 - shift))) << shift: the high word of a
 * rounded 64-bit multiply-accumulate (SMULL + SMLAL + ADDS/ADC + SSAT on the M4). */
static inline int32_t tkws__hi_round(int64_t t, int32_t shift)
{
    const int32_t hi = (int32_t)((t + ((int64_t)1 << 31)) >> 32);
    if (shift == 0) {
        return tkws__ssat28(hi);
    }
    const int32_t lim = (int32_t)(TKWS_Q_ACT_CLAMP >> shift);
    return (hi < -lim ? -lim : (hi > lim - 1 ? lim - 1 : hi)) * (1 << shift);
}

/* Branch-free: |u| clamped below 8 (USAT-like), table + interpolation, sign restored. */
TKWS_QAPI int32_t tkws_tanh_q15(int32_t u, int32_t frac)
{
    const int32_t sh = frac - 6;              /* table step 2^-6 */
    const int32_t s = u >> 31;                /* 0 or -1 */
    const uint32_t top = ((uint32_t)512 << sh) - 1u;
    uint32_t m = (uint32_t)((u ^ s) - s);     /* |u| (|u| < 2^31) */
#if TKWS_ARM_DSP
    if (sh == 6 || sh == 7) {                 /* the model's two uses: one USAT */
        if (sh == 6) {
            __asm__("usat %0, #15, %0" : "+r"(m));
        } else {
            __asm__("usat %0, #16, %0" : "+r"(m));
        }
    } else {
        m = m > top ? top : m;
    }
#else
    m = m > top ? top : m;                    /* beyond 8: T[511] = T[512] = 2^15 */
#endif
    const uint32_t k = m >> sh;
    const int32_t lo = (int32_t)tkws_tanh_table[k];
    const int32_t f = (int32_t)(m & (((uint32_t)1 << sh) - 1u));
    const int32_t r = lo + ((((int32_t)tkws_tanh_table[k + 1] - lo) * f + (1 << (sh - 1))) >> sh);
    return (r ^ s) - s;
}

TKWS_QAPI int32_t tkws_sigmoid_q15(int32_t u, int32_t frac)
{
    return (32768 + tkws_tanh_q15(u, frac + 1)) >> 1;
}

/* a (Q.12) of row i from the two accumulators. */
static inline int32_t tkws__preact(const tkws_qfast_cell *cell, const int32_t *acc_w,
                                   const int32_t *acc_u, int32_t i)
{
    return tkws__hi_round((int64_t)acc_w[i] * cell->w_mult[i] + (int64_t)acc_u[i] * cell->u_mult[i],
                          cell->shift);
}

/* (z h + (g c >> (15 - h_frac)) + 2^14) >> 15, saturated: z, g, c Q15; h Q.h_frac <= 13,
 * so that the sum stays below 2^31. */
static inline int16_t tkws__blend(int32_t z, int32_t h, int32_t g, int32_t c, int32_t h_frac)
{
    const int32_t t = z * h + ((g * c) >> (15 - h_frac));
    return (int16_t)tkws_ssat16((t + (1 << 14)) >> 15);
}

TKWS_QAPI void tkws_qfastgrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
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

TKWS_QAPI void tkws_qfastrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
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

TKWS_QAPI void tkws_qlinear(const tkws_qmatrix *a, const int32_t *mult, int32_t shift,
                           const int32_t *bias, const int16_t *x, int32_t *acc,
                           int32_t *logits)
{
    tkws_qmatvec(a, x, acc);
    for (int32_t i = 0; i < a->rows; ++i) {
        logits[i] = tkws__hi_round((int64_t)acc[i] * mult[i], shift) + bias[i];
    }
}

TKWS_QAPI void tkws_softmax_q15(const int32_t *logits, int16_t *p, int32_t n)
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

TKWS_QAPI int16_t tkws_q78_from_float(float x)
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
