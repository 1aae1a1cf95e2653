/*
 * tkws_rnn.c - recurrent model steps (see tkws_rnn.h).
 */
#include "tkws_rnn.h"
#include "tkws_math.h"

static const float tkws__zeros8[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};

#if TKWS_ARM_FPU_ASM
/* One block of 8 rows: y[0..8) = init[0..8) + A_blk x, n4 = cols_p / 4 >= 1.
 * Per 4 columns: 1 vldmia of x, 2 vldmia of 16 weights, 32 vfma, subs + bne:
 * 37 instructions for 32 multiply-accumulates. */
static inline void tkws__block8(const float *a, const float *x, const float *init, float *y,
                                int32_t n4)
{
    __asm__ volatile(
        "vldmia %[init], {s0-s7}\n\t"
        "1:\n\t"
        "vldmia %[x]!, {s8-s11}\n\t"
        "vldmia %[a]!, {s12-s27}\n\t"
        "vfma.f32 s0, s12, s8\n\t"
        "vfma.f32 s1, s13, s8\n\t"
        "vfma.f32 s2, s14, s8\n\t"
        "vfma.f32 s3, s15, s8\n\t"
        "vfma.f32 s4, s16, s8\n\t"
        "vfma.f32 s5, s17, s8\n\t"
        "vfma.f32 s6, s18, s8\n\t"
        "vfma.f32 s7, s19, s8\n\t"
        "vfma.f32 s0, s20, s9\n\t"
        "vfma.f32 s1, s21, s9\n\t"
        "vfma.f32 s2, s22, s9\n\t"
        "vfma.f32 s3, s23, s9\n\t"
        "vfma.f32 s4, s24, s9\n\t"
        "vfma.f32 s5, s25, s9\n\t"
        "vfma.f32 s6, s26, s9\n\t"
        "vfma.f32 s7, s27, s9\n\t"
        "vldmia %[a]!, {s12-s27}\n\t"
        "vfma.f32 s0, s12, s10\n\t"
        "vfma.f32 s1, s13, s10\n\t"
        "vfma.f32 s2, s14, s10\n\t"
        "vfma.f32 s3, s15, s10\n\t"
        "vfma.f32 s4, s16, s10\n\t"
        "vfma.f32 s5, s17, s10\n\t"
        "vfma.f32 s6, s18, s10\n\t"
        "vfma.f32 s7, s19, s10\n\t"
        "vfma.f32 s0, s20, s11\n\t"
        "vfma.f32 s1, s21, s11\n\t"
        "vfma.f32 s2, s22, s11\n\t"
        "vfma.f32 s3, s23, s11\n\t"
        "vfma.f32 s4, s24, s11\n\t"
        "vfma.f32 s5, s25, s11\n\t"
        "vfma.f32 s6, s26, s11\n\t"
        "vfma.f32 s7, s27, s11\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        "vstmia %[y], {s0-s7}\n\t"
        : [a] "+r"(a), [x] "+r"(x), [n] "+r"(n4)
        : [init] "r"(init), [y] "r"(y)
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
          "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24",
          "s25", "s26", "s27", "cc", "memory");
}
#else
/* Portable version of the same block: 8 accumulators, one load of x per column. */
static inline void tkws__block8(const float *a, const float *x, const float *init, float *y,
                                int32_t n4)
{
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
#endif

TKWS_API void tkws_matvec(const tkws_matrix *a, const float *x, const float *init, float *y)
{
    const int32_t cols_p = a->cols_p;
    const float *blk = a->data;
    for (int32_t i = 0; i < a->rows_p; i += 8, blk += 8 * cols_p) {
        tkws__block8(blk, x, init ? init + i : tkws__zeros8, y + i, cols_p >> 2);
    }
}

/* a = W x + U h (each full or low rank). */
static inline void tkws__fast_preact(const tkws_fast_cell *cell, const float *x,
                                     const float *h, float *a, float *tmp)
{
    if (cell->w2) {
        tkws_matvec(cell->w, x, 0, tmp);
        tkws_matvec(cell->w2, tmp, 0, a);
    } else {
        tkws_matvec(cell->w, x, 0, a);
    }
    if (cell->u2) {
        tkws_matvec(cell->u, h, 0, tmp);
        tkws_matvec(cell->u2, tmp, a, a);
    } else {
        tkws_matvec(cell->u, h, a, a);
    }
}

TKWS_API void tkws_fastgrnn_step(const tkws_fast_cell *cell, const float *x, float *h,
                                 float *a, float *tmp)
{
    tkws__fast_preact(cell, x, h, a, tmp);
    const float k1 = cell->k1, k2 = cell->k2;
    const float *bg = cell->bias_gate, *bu = cell->bias_update;
    for (int32_t i = 0; i < cell->hidden; ++i) {
        const float z = tkws_sigmoidf(a[i] + bg[i]);
        const float c = tkws_tanhf(a[i] + bu[i]);
        h[i] = z * h[i] + (k1 * (1.0f - z) + k2) * c;
    }
}

TKWS_API void tkws_fastrnn_step(const tkws_fast_cell *cell, const float *x, float *h,
                                float *a, float *tmp)
{
    tkws__fast_preact(cell, x, h, a, tmp);
    const float k1 = cell->k1, k2 = cell->k2;
    const float *bu = cell->bias_update;
    for (int32_t i = 0; i < cell->hidden; ++i) {
        h[i] = k2 * h[i] + k1 * tkws_tanhf(a[i] + bu[i]);
    }
}

TKWS_API void tkws_gru_step(const tkws_gru_cell *cell, const float *x, float *h, float *gi,
                            float *gh)
{
    const int32_t n = cell->hidden;
    tkws_matvec(cell->w_ih, x, cell->b_ih, gi);
    tkws_matvec(cell->w_hh, h, cell->b_hh, gh);
    for (int32_t i = 0; i < n; ++i) {
        const float r = tkws_sigmoidf(gi[i] + gh[i]);
        const float z = tkws_sigmoidf(gi[n + i] + gh[n + i]);
        const float c = tkws_tanhf(gi[2 * n + i] + r * gh[2 * n + i]);
        h[i] = (1.0f - z) * c + z * h[i];
    }
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
    for (int32_t i = 0; i < n; ++i) {
        out[i] = (x[i] - mean[i]) / std[i];
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
