/*
 * tkws_qrnn.c - integer recurrent model steps (see tkws_qrnn.h).
 *
 * Signed right shifts are arithmetic (gcc, clang and the Python reference agree).
 */
#include "tkws_qrnn.h"

/* The tables of tinykws.quant.model (tanh_table, exp2_table; a test checks they are the
 * same numbers). */
/* round(tanh(k / 64) * 2^15), k = 0 .. 512 */
static const uint16_t tkws_tanh_table[513] = {
    0, 512, 1024, 1535, 2045, 2555, 3063, 3570, 4075, 4578, 5079, 5577,
    6073, 6566, 7056, 7542, 8025, 8505, 8980, 9452, 9919, 10382, 10840, 11294,
    11743, 12186, 12625, 13058, 13486, 13909, 14326, 14737, 15143, 15542, 15936, 16324,
    16706, 17082, 17452, 17816, 18173, 18525, 18870, 19209, 19542, 19869, 20189, 20504,
    20813, 21115, 21411, 21702, 21986, 22265, 22538, 22804, 23066, 23321, 23571, 23815,
    24054, 24287, 24516, 24738, 24956, 25168, 25376, 25578, 25776, 25969, 26157, 26340,
    26519, 26694, 26864, 27029, 27191, 27348, 27502, 27651, 27797, 27938, 28076, 28211,
    28341, 28469, 28592, 28713, 28830, 28944, 29055, 29163, 29268, 29370, 29470, 29566,
    29660, 29751, 29840, 29926, 30010, 30091, 30170, 30247, 30322, 30394, 30465, 30533,
    30600, 30664, 30727, 30788, 30847, 30904, 30960, 31014, 31067, 31118, 31167, 31215,
    31262, 31307, 31351, 31394, 31435, 31476, 31515, 31553, 31589, 31625, 31659, 31693,
    31726, 31757, 31788, 31817, 31846, 31874, 31901, 31928, 31953, 31978, 32002, 32025,
    32048, 32070, 32091, 32112, 32132, 32151, 32170, 32188, 32206, 32223, 32240, 32256,
    32271, 32287, 32301, 32316, 32329, 32343, 32356, 32368, 32381, 32392, 32404, 32415,
    32426, 32436, 32447, 32456, 32466, 32475, 32484, 32493, 32501, 32509, 32517, 32525,
    32532, 32540, 32547, 32553, 32560, 32566, 32573, 32579, 32584, 32590, 32596, 32601,
    32606, 32611, 32616, 32620, 32625, 32629, 32634, 32638, 32642, 32646, 32649, 32653,
    32657, 32660, 32663, 32667, 32670, 32673, 32676, 32678, 32681, 32684, 32686, 32689,
    32691, 32694, 32696, 32698, 32700, 32702, 32704, 32706, 32708, 32710, 32712, 32714,
    32715, 32717, 32718, 32720, 32721, 32723, 32724, 32726, 32727, 32728, 32729, 32731,
    32732, 32733, 32734, 32735, 32736, 32737, 32738, 32739, 32740, 32741, 32741, 32742,
    32743, 32744, 32745, 32745, 32746, 32747, 32747, 32748, 32749, 32749, 32750, 32750,
    32751, 32751, 32752, 32752, 32753, 32753, 32754, 32754, 32755, 32755, 32755, 32756,
    32756, 32757, 32757, 32757, 32758, 32758, 32758, 32759, 32759, 32759, 32759, 32760,
    32760, 32760, 32760, 32761, 32761, 32761, 32761, 32762, 32762, 32762, 32762, 32762,
    32762, 32763, 32763, 32763, 32763, 32763, 32763, 32764, 32764, 32764, 32764, 32764,
    32764, 32764, 32764, 32765, 32765, 32765, 32765, 32765, 32765, 32765, 32765, 32765,
    32765, 32765, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766, 32766,
    32766, 32766, 32766, 32766, 32766, 32766, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767, 32767,
    32767, 32767, 32767, 32767, 32767, 32767, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768,
    32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768, 32768
};

/* round(2^(-k / 256) * 2^16) - 2^15, k = 0 .. 256: 0 .. 32768, so 16 bits hold it */
static const uint16_t tkws_exp2_table[257] = {
    32768, 32591, 32414, 32238, 32062, 31887, 31712, 31538, 31364, 31190, 31017, 30845,
    30673, 30501, 30330, 30160, 29989, 29820, 29651, 29482, 29313, 29146, 28978, 28811,
    28645, 28479, 28313, 28148, 27983, 27819, 27655, 27492, 27329, 27166, 27004, 26843,
    26681, 26521, 26360, 26200, 26041, 25882, 25723, 25565, 25408, 25250, 25093, 24937,
    24781, 24625, 24470, 24315, 24161, 24007, 23854, 23700, 23548, 23395, 23244, 23092,
    22941, 22790, 22640, 22490, 22341, 22192, 22043, 21895, 21747, 21600, 21453, 21306,
    21160, 21014, 20869, 20724, 20579, 20435, 20291, 20148, 20005, 19862, 19720, 19578,
    19436, 19295, 19154, 19014, 18874, 18734, 18595, 18456, 18317, 18179, 18042, 17904,
    17767, 17631, 17494, 17358, 17223, 17088, 16953, 16818, 16684, 16551, 16417, 16284,
    16152, 16019, 15887, 15756, 15625, 15494, 15363, 15233, 15103, 14974, 14845, 14716,
    14588, 14460, 14332, 14205, 14078, 13951, 13825, 13699, 13573, 13448, 13323, 13198,
    13074, 12950, 12826, 12703, 12580, 12457, 12335, 12213, 12091, 11970, 11849, 11729,
    11608, 11488, 11369, 11249, 11130, 11012, 10893, 10775, 10657, 10540, 10423, 10306,
    10190, 10073, 9958, 9842, 9727, 9612, 9497, 9383, 9269, 9155, 9042, 8929,
    8816, 8704, 8592, 8480, 8368, 8257, 8146, 8036, 7925, 7815, 7705, 7596,
    7487, 7378, 7269, 7161, 7053, 6946, 6838, 6731, 6624, 6518, 6412, 6306,
    6200, 6095, 5989, 5885, 5780, 5676, 5572, 5468, 5365, 5262, 5159, 5056,
    4954, 4852, 4750, 4649, 4548, 4447, 4346, 4246, 4146, 4046, 3947, 3847,
    3748, 3649, 3551, 3453, 3355, 3257, 3160, 3063, 2966, 2869, 2773, 2677,
    2581, 2485, 2390, 2295, 2200, 2106, 2011, 1917, 1823, 1730, 1637, 1544,
    1451, 1358, 1266, 1174, 1082, 991, 899, 808, 718, 627, 537, 447,
    357, 267, 178, 89, 0
};

#ifndef TKWS_QMATVEC_CALL
#define TKWS_QMATVEC_CALL 0
#endif

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

#if TKWS_QMATVEC_CALL
/* One out-of-line copy of the dense kernel, for the products a low-rank or sparse layer
 * writes out in model.c (a generated model.c defines TKWS_QMATVEC_CALL 1 then): every
 * inlined copy of the unrolled kernel costs flash, a call ~10 instructions. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void tkws_qmatvec_call(const tkws_qmatrix *a, const int16_t *x, int32_t *y)
{
    tkws_qmatvec(a, x, y);
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

TKWS_QAPI void tkws_qfastgrnn_update(const tkws_qfast_cell *cell, int16_t *h,
                                    const int32_t *acc_w, const int32_t *acc_u)
{
    const int32_t k1 = cell->k1, k2 = cell->k2, hf = cell->h_frac;
    for (int32_t i = 0; i < cell->hidden; ++i) {
        const int32_t a = tkws__preact(cell, acc_w, acc_u, i);
        const int32_t z = tkws_sigmoid_q15(a + cell->bias_gate[i], TKWS_Q_PRE_FRAC);
        const int32_t c = tkws_tanh_q15(a + cell->bias_update[i], TKWS_Q_PRE_FRAC);
        const int32_t g = ((k1 * (32768 - z) + (1 << 14)) >> 15) + k2;
        h[i] = tkws__blend(z, h[i], g, c, hf);
    }
}

TKWS_QAPI void tkws_qfastgrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                                  int32_t *acc_w, int32_t *acc_u)
{
    tkws_qmatvec(cell->w, x, acc_w);
    tkws_qmatvec(cell->u, h, acc_u);
    tkws_qfastgrnn_update(cell, h, acc_w, acc_u);
}

TKWS_QAPI void tkws_qfastrnn_update(const tkws_qfast_cell *cell, int16_t *h,
                                   const int32_t *acc_w, const int32_t *acc_u)
{
    for (int32_t i = 0; i < cell->hidden; ++i) {
        const int32_t a = tkws__preact(cell, acc_w, acc_u, i);
        const int32_t c = tkws_tanh_q15(a + cell->bias_update[i], TKWS_Q_PRE_FRAC);
        h[i] = tkws__blend(cell->k2, h[i], cell->k1, c, cell->h_frac);
    }
}

TKWS_QAPI void tkws_qfastrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                                 int32_t *acc_w, int32_t *acc_u)
{
    tkws_qmatvec(cell->w, x, acc_w);
    tkws_qmatvec(cell->u, h, acc_u);
    tkws_qfastrnn_update(cell, h, acc_w, acc_u);
}

/* GRU: rows [0, H) of the products are the r gate's, [H, 2H) z's, [2H, 3H) n's. r and z
 * round both products together, n apart, because r multiplies only U_n h + b_hn. */
TKWS_QAPI void tkws_qgru_update(const tkws_qfast_cell *cell, int16_t *h,
                               const int32_t *acc_w, const int32_t *acc_u)
{
    const int32_t H = cell->hidden, hf = cell->h_frac, sh = cell->shift;
    for (int32_t i = 0; i < H; ++i) {
        const int32_t r = tkws_sigmoid_q15(tkws__preact(cell, acc_w, acc_u, i) + cell->bias_gate[i],
                                           TKWS_Q_PRE_FRAC);
        const int32_t z = tkws_sigmoid_q15(tkws__preact(cell, acc_w, acc_u, H + i) +
                                           cell->bias_gate[H + i], TKWS_Q_PRE_FRAC);
        const int32_t j = 2 * H + i;
        const int32_t xn = tkws__hi_round((int64_t)acc_w[j] * cell->w_mult[j], sh) + cell->bias_gate[j];
        const int32_t hn = tkws__hi_round((int64_t)acc_u[j] * cell->u_mult[j], sh) + cell->bias_update[i];
        const int32_t rh = (int32_t)(((int64_t)r * hn + (1 << 14)) >> 15);  /* |r hn| < 2^43 */
        const int32_t n = tkws_tanh_q15(xn + rh, TKWS_Q_PRE_FRAC);
        h[i] = tkws__blend(z, h[i], 32768 - z, n, hf);
    }
}

TKWS_QAPI void tkws_qgru_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                             int32_t *acc_w, int32_t *acc_u)
{
    tkws_qmatvec(cell->w, x, acc_w);
    tkws_qmatvec(cell->u, h, acc_u);
    tkws_qgru_update(cell, h, acc_w, acc_u);
}

/* Every row: its nonzeros 4 at a time, then the rest (gcc: ldrb + ldrsb + ldrsh + mla a
 * nonzero, plus the loop's compare and branch once per 4). */
TKWS_QAPI void tkws_qspmv(const tkws_qsparse *a, const int16_t *x, int32_t *y)
{
    const uint8_t *col = a->col;
    const int8_t *val = a->val;
    for (int32_t r = 0; r < a->rows; ++r) {
        const int32_t n = a->count[r];
        int32_t s = 0;
        for (int32_t k = n >> 2; k > 0; --k, col += 4, val += 4) {
            s += val[0] * x[col[0]] + val[1] * x[col[1]];
            s += val[2] * x[col[2]] + val[3] * x[col[3]];
        }
        for (int32_t k = n & 3; k > 0; --k) {
            s += *val++ * x[*col++];
        }
        y[r] = s;
    }
}

TKWS_QAPI void tkws_qnarrow(const int32_t *acc, const int32_t *mult, int32_t n, int16_t *t)
{
    for (int32_t i = 0; i < n; ++i) {
        const int32_t hi = (int32_t)(((int64_t)acc[i] * mult[i] + ((int64_t)1 << 31)) >> 32);
        t[i] = (int16_t)tkws_ssat16(hi);
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
        const int32_t lo = (int32_t)tkws_exp2_table[k];  /* both stored less 2^15: the difference is exact */
        const int32_t v = 32768 + lo - (((lo - (int32_t)tkws_exp2_table[k + 1]) * (fr & 63) + 32) >> 6);
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
