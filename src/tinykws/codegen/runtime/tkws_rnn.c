/*
 * tkws_rnn.c - recurrent model steps (see tkws_rnn.h).
 */
#include "tkws_rnn.h"
#include "tkws_math.h"

static const float tkws__zeros8[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};

#if TKWS_ARM_FPU_ASM
/* 16 multiply-accumulates: accumulators s0-s7 += weights s16-s23 * XA + s24-s31 * XB. */
#define TKWS__FMA2(XA, XB) \
    "vfma.f32 s0, s16, " XA "\n\t" "vfma.f32 s1, s17, " XA "\n\t" \
    "vfma.f32 s2, s18, " XA "\n\t" "vfma.f32 s3, s19, " XA "\n\t" \
    "vfma.f32 s4, s20, " XA "\n\t" "vfma.f32 s5, s21, " XA "\n\t" \
    "vfma.f32 s6, s22, " XA "\n\t" "vfma.f32 s7, s23, " XA "\n\t" \
    "vfma.f32 s0, s24, " XB "\n\t" "vfma.f32 s1, s25, " XB "\n\t" \
    "vfma.f32 s2, s26, " XB "\n\t" "vfma.f32 s3, s27, " XB "\n\t" \
    "vfma.f32 s4, s28, " XB "\n\t" "vfma.f32 s5, s29, " XB "\n\t" \
    "vfma.f32 s6, s30, " XB "\n\t" "vfma.f32 s7, s31, " XB "\n\t"

/* y[0..rows_p) = init + A x over all blocks of 8 rows (init_step 0: the same 8 zeros for
 * every block). Per 8 columns: 1 vldmia of x, 4 vldmia of 16 weights, 64 vfma, subs + bne:
 * 71 instructions for 64 multiply-accumulates (1.11 per MAC); a last group of 4 columns
 * takes 35 for 32; about 12 more per block of 8 rows. */
static inline void tkws__matvec_blocks(const float *a, const float *x, const float *init,
                                       int32_t init_step, float *y, int32_t blocks,
                                       int32_t n4)
{
    const int32_t n8 = n4 >> 1;
    const int32_t tail = n4 & 1;
    int32_t k;                 /* scratch: column-group counter */
    const float *xp;           /* scratch: walks x */
    __asm__ volatile(
        "0:\n\t"
        "vldmia %[init], {s0-s7}\n\t"
        "add %[init], %[init], %[istep]\n\t"
        "mov %[xp], %[x]\n\t"
        "movs %[k], %[n8]\n\t"
        "beq 2f\n\t"
        "1:\n\t"
        "vldmia %[xp]!, {s8-s15}\n\t"
        "vldmia %[a]!, {s16-s31}\n\t"
        TKWS__FMA2("s8", "s9")
        "vldmia %[a]!, {s16-s31}\n\t"
        TKWS__FMA2("s10", "s11")
        "vldmia %[a]!, {s16-s31}\n\t"
        TKWS__FMA2("s12", "s13")
        "vldmia %[a]!, {s16-s31}\n\t"
        TKWS__FMA2("s14", "s15")
        "subs %[k], %[k], #1\n\t"
        "bne 1b\n\t"
        "2:\n\t"
        "cmp %[tail], #0\n\t"
        "beq 3f\n\t"
        "vldmia %[xp], {s8-s11}\n\t"
        "vldmia %[a]!, {s16-s31}\n\t"
        TKWS__FMA2("s8", "s9")
        "vldmia %[a]!, {s16-s31}\n\t"
        TKWS__FMA2("s10", "s11")
        "3:\n\t"
        "vstmia %[y]!, {s0-s7}\n\t"
        "subs %[blocks], %[blocks], #1\n\t"
        "bne 0b\n\t"
        /* every output is early-clobber: it changes while inputs are still read, so no
         * input may share its register (clang does that for equal values otherwise) */
        : [a] "+&r"(a), [init] "+&r"(init), [y] "+&r"(y), [blocks] "+&r"(blocks),
          [k] "=&r"(k), [xp] "=&r"(xp)
        : [x] "r"(x), [istep] "r"(init_step), [n8] "r"(n8), [tail] "r"(tail)
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
          "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24",
          "s25", "s26", "s27", "s28", "s29", "s30", "s31", "cc", "memory");
}
#else
/* Portable version of the same loops: 8 accumulators, one load of x per column. */
static inline void tkws__matvec_blocks(const float *a, const float *x, const float *init,
                                       int32_t init_step, float *y, int32_t blocks,
                                       int32_t n4)
{
    for (int32_t b = 0; b < blocks; ++b, init += init_step / 4, y += 8) {
        float s0 = init[0], s1 = init[1], s2 = init[2], s3 = init[3];
        float s4 = init[4], s5 = init[5], s6 = init[6], s7 = init[7];
        for (int32_t j = 0; j < 4 * n4; ++j, a += 8) {
            const float xj = x[j];
            s0 += a[0] * xj; s1 += a[1] * xj; s2 += a[2] * xj; s3 += a[3] * xj;
            s4 += a[4] * xj; s5 += a[5] * xj; s6 += a[6] * xj; s7 += a[7] * xj;
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
        y[4] = s4; y[5] = s5; y[6] = s6; y[7] = s7;
    }
}
#endif

#ifndef TKWS_SPARSE_ROWS
#define TKWS_SPARSE_ROWS 0  /* a generated model.c with sparse rows defines it 1 */
#endif

#if TKWS_SPARSE_ROWS
/* Sparse rows: y[r] = init[r] + the row's nonzeros times x, in column order (with FMA
 * contraction the same sums as the blocked kernel's: it adds 0 * x for the zeros); the
 * padding rows get init (or 0). */
static void tkws__spmatvec(const tkws_matrix *a, const float *x, const float *init, float *y)
{
    const tkws_sparse_rows *sp = a->sparse;
    const uint8_t *col = sp->col;
    const float *val = sp->val;
    for (int32_t r = 0; r < a->rows_p; ++r) {
        float s = init ? init[r] : 0.0f;
        if (r < a->rows) {
            for (int32_t k = sp->count[r]; k > 0; --k) {
                s += *val++ * x[*col++];
            }
        }
        y[r] = s;
    }
}
#endif

TKWS_API void tkws_matvec(const tkws_matrix *a, const float *x, const float *init, float *y)
{
#if TKWS_SPARSE_ROWS
    if (a->sparse) {
        tkws__spmatvec(a, x, init, y);
        return;
    }
#endif
    /* init_step is in bytes: 32 walks init along with y, 0 reuses the 8 zeros */
    tkws__matvec_blocks(a->data, x, init ? init : tkws__zeros8, init ? 32 : 0, y,
                        a->rows_p >> 3, a->cols_p >> 2);
}

/* a = init + W x (W full or low rank; init NULL meaning zeros). */
static inline void tkws__fast_wx(const tkws_fast_cell *cell, const float *x, const float *init,
                                 float *a, float *tmp)
{
    if (cell->w2) {
        tkws_matvec(cell->w, x, 0, tmp);
        tkws_matvec(cell->w2, tmp, init, a);
    } else {
        tkws_matvec(cell->w, x, init, a);
    }
}

/* y = init + U h (U full or low rank; init NULL meaning zeros; init may be y). */
static inline void tkws__fast_uh_onto(const tkws_fast_cell *cell, const float *h,
                                      const float *init, float *y, float *tmp)
{
    if (cell->u2) {
        tkws_matvec(cell->u, h, 0, tmp);
        tkws_matvec(cell->u2, tmp, init, y);
    } else {
        tkws_matvec(cell->u, h, init, y);
    }
}

/* a = W x + U h (each full or low rank), in that order (one frame does the whole step). */
static inline void tkws__fast_preact(const tkws_fast_cell *cell, const float *x,
                                     const float *h, float *a, float *tmp)
{
    tkws__fast_wx(cell, x, 0, a, tmp);
    tkws__fast_uh_onto(cell, h, a, a, tmp);
}

TKWS_API void tkws_fast_uh(const tkws_fast_cell *cell, const float *h, float *uh, float *tmp)
{
    tkws__fast_uh_onto(cell, h, 0, uh, tmp);
}

/* FastGRNN's gates and update on the pre-activation a. */
static inline void tkws__fastgrnn_gates(const tkws_fast_cell *cell, float *h, const float *a)
{
    const float k1 = cell->k1, k2 = cell->k2;
    const float *bg = cell->bias_gate, *bu = cell->bias_update;
    const float *gk = cell->gate_k;
    if (gk) {
        /* One exponential per unit: with u = a + bg and E = e^-u,
         *   z = 1 / (1 + E),   tanh(a + bu) = (1 - F) / (1 + F),  F = e^-2(a+bu) = E^2 K,
         * K = e^(2 (bg - bu)) (gate_k). u is clamped to +-gate_clamp: z is exact to float
         * there, and the generator sets gate_k only when every |bg - bu| is small enough
         * for that clamp (tinykws.models.fastgrnn: GATE_CLAMP, GATE_K_MAX_BIAS_GAP), so
         * that F stays in float range and tanh is saturated whenever the clamp is active. */
        const float clamp = cell->gate_clamp;
        for (int32_t i = 0; i < cell->hidden; ++i) {
            const float e = tkws__exp_neg_core(tkws__clamp(a[i] + bg[i], -clamp, clamp));
            const float z = 1.0f / (1.0f + e);
            const float f = e * e * gk[i];
            const float c = (1.0f - f) / (1.0f + f);
            h[i] = z * h[i] + (k1 * (1.0f - z) + k2) * c;
        }
        return;
    }
    for (int32_t i = 0; i < cell->hidden; ++i) {
        const float z = tkws_sigmoidf(a[i] + bg[i]);
        const float c = tkws_tanhf(a[i] + bu[i]);
        h[i] = z * h[i] + (k1 * (1.0f - z) + k2) * c;
    }
}

TKWS_API void tkws_fastgrnn_step(const tkws_fast_cell *cell, const float *x, float *h,
                                 float *a, float *tmp)
{
    tkws__fast_preact(cell, x, h, a, tmp);
    tkws__fastgrnn_gates(cell, h, a);
}

TKWS_API void tkws_fastgrnn_update(const tkws_fast_cell *cell, const float *x, float *h,
                                   float *a, float *tmp, const float *uh)
{
    tkws__fast_wx(cell, x, uh, a, tmp);
    tkws__fastgrnn_gates(cell, h, a);
}

static inline void tkws__fastrnn_gates(const tkws_fast_cell *cell, float *h, const float *a)
{
    const float k1 = cell->k1, k2 = cell->k2;
    const float *bu = cell->bias_update;
    for (int32_t i = 0; i < cell->hidden; ++i) {
        h[i] = k2 * h[i] + k1 * tkws_tanhf(a[i] + bu[i]);
    }
}

TKWS_API void tkws_fastrnn_step(const tkws_fast_cell *cell, const float *x, float *h,
                                float *a, float *tmp)
{
    tkws__fast_preact(cell, x, h, a, tmp);
    tkws__fastrnn_gates(cell, h, a);
}

TKWS_API void tkws_fastrnn_update(const tkws_fast_cell *cell, const float *x, float *h,
                                  float *a, float *tmp, const float *uh)
{
    tkws__fast_wx(cell, x, uh, a, tmp);
    tkws__fastrnn_gates(cell, h, a);
}

TKWS_API void tkws_gru_update(const tkws_gru_cell *cell, const float *x, float *h, float *gi,
                              const float *gh)
{
    const int32_t n = cell->hidden;
    tkws_matvec(cell->w_ih, x, cell->b_ih, gi);
    for (int32_t i = 0; i < n; ++i) {
        const float r = tkws_sigmoidf(gi[i] + gh[i]);
        const float z = tkws_sigmoidf(gi[n + i] + gh[n + i]);
        const float c = tkws_tanhf(gi[2 * n + i] + r * gh[2 * n + i]);
        h[i] = (1.0f - z) * c + z * h[i];
    }
}

TKWS_API void tkws_gru_step(const tkws_gru_cell *cell, const float *x, float *h, float *gi,
                            float *gh)
{
    tkws_matvec(cell->w_hh, h, cell->b_hh, gh);
    tkws_gru_update(cell, x, h, gi, gh);
}

TKWS_API void tkws_lstm_step(const tkws_lstm_cell *cell, const float *x, float *h, float *c,
                             float *g)
{
    const int32_t n = cell->hidden;
    tkws_matvec(cell->w_ih, x, cell->bias, g);
    tkws_matvec(cell->w_hh, h, g, g);
    for (int32_t i = 0; i < n; ++i) {
        const float gi = tkws_sigmoidf(g[i]);
        const float gf = tkws_sigmoidf(g[n + i]);
        const float gg = tkws_tanhf(g[2 * n + i]);
        const float go = tkws_sigmoidf(g[3 * n + i]);
        c[i] = gf * c[i] + gi * gg;
        h[i] = go * tkws_tanhf(c[i]);
    }
}

TKWS_API void tkws_normalize(const float *x, const float *mean, const float *std, float *out,
                             int32_t n)
{
    /* A non-finite input must not poison the recurrent state until the next reset: NaN
     * becomes 0 (the training mean), +-Inf and absurd values +-TKWS_INPUT_LIMIT standard
     * deviations (real features stay within a few). Finite inputs are unchanged. */
    for (int32_t i = 0; i < n; ++i) {
        const float v = (x[i] - mean[i]) / std[i];
        out[i] = v != v ? 0.0f
               : v > TKWS_INPUT_LIMIT ? TKWS_INPUT_LIMIT
               : v < -TKWS_INPUT_LIMIT ? -TKWS_INPUT_LIMIT : v;
    }
}

TKWS_API void tkws_softmax(float *p, int32_t n)
{
    float m = p[0];
    for (int32_t i = 1; i < n; ++i) {
        m = p[i] > m ? p[i] : m;
    }
    float sum = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        p[i] = tkws_expf(p[i] - m);
        sum += p[i];
    }
    const float inv = 1.0f / sum;
    for (int32_t i = 0; i < n; ++i) {
        p[i] *= inv;
    }
}
