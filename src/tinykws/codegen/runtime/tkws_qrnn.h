/*
 * tkws_qrnn.h - integer FastGRNN / FastRNN / GRU for Cortex-M4 cores without an FPU: int8
 * weights, int16 features and hidden states, int32 accumulators, table tanh/sigmoid and an
 * integer softmax. Bit-exact with the Python reference tinykws.quant.model (its docstring
 * has the formats; tests/test_quant_codegen.py proves the equality).
 *
 * Matrices (tkws_qmatrix): rows padded to a multiple of 4, columns to a multiple of 4, both
 * with zeros; blocks of 4 rows, and inside a block, for every group of 4 columns, the 4 rows'
 * 4 weights one row after the other (16 bytes), each row's bytes in the order
 * w0 w2 w1 w3. One 32-bit load then gives the 4 weights of a row, SXTB16 sign-extends
 * (w0, w1) and SXTB16 ROR #8 (w2, w3) into int16 pairs that line up with the int16 input
 * pairs (x0, x1) and (x2, x3) for SMLAD (two 16 x 16 multiply-accumulates).
 * Element (i, j) is at data[((i / 4) * (cols_p / 4) + j / 4) * 16 + (i % 4) * 4 + P[j % 4]],
 * P = {0, 2, 1, 3}.
 *
 * Tables (in tkws_qrnn.c): tkws_tanh_table[513] = round(tanh(k / 64) * 2^15),
 * tkws_exp2_table[257] = round(2^(-k / 256) * 2^16) - 2^15 (uint16; the softmax adds 2^15 back).
 */
#ifndef TKWS_QRNN_H
#define TKWS_QRNN_H

#include "tkws_common.h"
#include "tkws_dsp.h"   /* TKWS_ARM_DSP: the SMLAD/SXTB16 kernel on ARMv7E-M, portable C elsewhere */

#include "tkws_qformats.h"  /* TKWS_Q_PRE_FRAC, TKWS_Q_LOGIT_FRAC, TKWS_Q_ACT_CLAMP */

typedef struct {
    int32_t rows, cols;         /* logical shape */
    int32_t rows_p, cols_p;     /* padded to multiples of 4 */
    const int8_t *data;         /* [rows_p * cols_p], layout above, 4-byte aligned */
} tkws_qmatrix;

/* y[0..rows_p) = A x (int32). x has cols_p entries (padding zero), 4-byte aligned. */
TKWS_API void tkws_qmatvec(const tkws_qmatrix *a, const int16_t *x, int32_t *y);

/* A sparse matrix (the int8 build of a sparse W or U when that is cheaper than dense; see
 * docs/device-guide.md): row r's count[r] nonzeros follow row r-1's, each as its column
 * (col, < 256) and its weight (val). y[0..rows) = A x; x needs cols entries. */
typedef struct {
    int32_t rows, cols;
    const uint16_t *count;      /* [rows] nonzeros of each row */
    const uint8_t *col;         /* [nonzeros] column of each, row by row */
    const int8_t *val;          /* [nonzeros] int8 weight of each */
} tkws_qsparse;

TKWS_API void tkws_qspmv(const tkws_qsparse *a, const int16_t *x, int32_t *y);

/* Low-rank inner vector: t[i] = sat16((acc[i] * mult[i] + 2^31) >> 32), i < n (the first
 * factor's int32 sums -> int16 in the format its multipliers were made for). */
TKWS_API void tkws_qnarrow(const int32_t *acc, const int32_t *mult, int32_t n, int16_t *t);

/* One integer FastGRNN / FastRNN / GRU layer (GRU: W, U, their multipliers and bias_gate
 * have 3H rows, gates r, z, n; bias_update is b_hn; k1, k2 unused). */
typedef struct {
    int32_t hidden;             /* H */
    int32_t h_frac;             /* hidden state format Q.h_frac */
    int32_t shift;              /* 0, or low bits dropped when a multiplier needed it */
    const tkws_qmatrix *w, *u;
    const int32_t *w_mult, *u_mult;   /* [H]: row scale * 2^(12 - input frac + 32 - shift) */
    const int32_t *bias_gate;   /* [H] Q.12 (FastGRNN only) */
    const int32_t *bias_update; /* [H] Q.12 */
    int32_t k1, k2;             /* Q15: FastGRNN sigma(zeta), sigma(nu); FastRNN sigma(alpha), sigma(beta) */
} tkws_qfast_cell;

/* a = (W x * w_mult + U h * u_mult + 2^31) >> 32 (int64 sum, clamped to +-2^27), Q.12;
 * z = sigmoid(a + bias_gate), c = tanh(a + bias_update) (Q15), g = k1 (1 - z) + k2;
 * h <- (z h + (g c >> (15 - h_frac)) + 2^14) >> 15 (saturated to int16).
 * Scratch acc_w, acc_u: [rows_p of W] int32. x: cols_p of W, h: cols_p of U entries. */
TKWS_API void tkws_qfastgrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                                  int32_t *acc_w, int32_t *acc_u);
/* The same with h <- k2 h + k1 c (c = tanh(a + bias_update)). */
TKWS_API void tkws_qfastrnn_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                                 int32_t *acc_w, int32_t *acc_u);
/* The steps after the products: acc_w = W x and acc_u = U h given (a low-rank or sparse
 * layer computes them itself: tkws_qnarrow, tkws_qspmv); cell->w and cell->u are unused. */
TKWS_API void tkws_qfastgrnn_update(const tkws_qfast_cell *cell, int16_t *h,
                                    const int32_t *acc_w, const int32_t *acc_u);
TKWS_API void tkws_qfastrnn_update(const tkws_qfast_cell *cell, int16_t *h,
                                   const int32_t *acc_w, const int32_t *acc_u);

/* GRU (PyTorch's gates; tinykws.quant.model has the arithmetic): r = sigmoid(a_r + bias_gate_r),
 * z likewise, n = tanh(xn + r hn) with xn = (W_n x * w_mult + 2^31) >> 32 + bias_gate_n and
 * hn = (U_n h * u_mult + 2^31) >> 32 + bias_update; h <- (z h + ((2^15 - z) n >> (15 -
 * h_frac)) + 2^14) >> 15. Scratch acc_w, acc_u: [rows_p of W] (3H padded) int32. */
TKWS_API void tkws_qgru_step(const tkws_qfast_cell *cell, const int16_t *x, int16_t *h,
                             int32_t *acc_w, int32_t *acc_u);
TKWS_API void tkws_qgru_update(const tkws_qfast_cell *cell, int16_t *h,
                               const int32_t *acc_w, const int32_t *acc_u);

/* logits[i] = clamp(((A x)_i * mult[i] + 2^31) >> 32) + bias[i], Q.10. */
TKWS_API void tkws_qlinear(const tkws_qmatrix *a, const int32_t *mult, int32_t shift,
                           const int32_t *bias, const int16_t *x, int32_t *acc,
                           int32_t *logits);

/* Q15 tanh / sigmoid of u in Q.frac (frac >= 7); errors in tinykws.quant.model. */
TKWS_API int32_t tkws_tanh_q15(int32_t u, int32_t frac);
TKWS_API int32_t tkws_sigmoid_q15(int32_t u, int32_t frac);

/* Integer softmax: logits Q.10 [n] -> probabilities Q15 [n] in 0 .. 32767. n <= 64. */
TKWS_API void tkws_softmax_q15(const int32_t *logits, int16_t *p, int32_t n);

/* Float log-mel -> int16 Q7.8: x * 256 rounded half to even, saturated (bit
 * operations only: no floating-point arithmetic, cheap without an FPU). */
TKWS_API int16_t tkws_q78_from_float(float x);

#endif /* TKWS_QRNN_H */
