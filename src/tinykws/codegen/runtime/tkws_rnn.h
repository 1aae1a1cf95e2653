/*
 * tkws_rnn.h - recurrent keyword-spotting models: matrix-vector products, FastGRNN,
 * FastRNN, GRU and LSTM steps, input normalisation, linear classifier, softmax.
 *
 * Matrices are stored in a blocked layout made for the Cortex-M4 FPU: rows are padded to
 * a multiple of 8 and columns to a multiple of 4 (with zeros), and each block of 8 rows is
 * stored column by column: element (i, j) is at data[(i / 8) * 8 * cols_p + j * 8 + i % 8].
 * The inner loop then loads 8 weights of one column with one `vldmia` and does 8 `vfma`
 * with the same input value, about 1.2 instructions per multiply-accumulate.
 * Vectors that feed a product have cols_p entries, the padding kept at zero; outputs have
 * rows_p entries.
 */
#ifndef TKWS_RNN_H
#define TKWS_RNN_H

#include "tkws_common.h"

/* A sparse matrix's rows: row r's count[r] nonzeros follow row r-1's, each as its column
 * (col, < 256) and its weight (val). Used when that is cheaper than the blocked layout
 * (few nonzeros: tinykws.codegen.emit.float_sparse). Compiled in only when the model.c
 * that includes the runtime defines TKWS_SPARSE_ROWS 1 (dense models pay nothing). */
typedef struct {
    const uint16_t *count;      /* [rows] */
    const uint8_t *col;         /* [nonzeros] */
    const float *val;           /* [nonzeros] */
} tkws_sparse_rows;

typedef struct {
    int32_t rows, cols;         /* logical shape */
    int32_t rows_p, cols_p;     /* padded: multiples of 8 and 4 */
    const float *data;          /* [rows_p * cols_p], blocked layout (see above); NULL when sparse */
    const tkws_sparse_rows *sparse;  /* non-NULL: the matrix is stored as sparse rows */
} tkws_matrix;

/* y[0..rows_p) = init + A x, init NULL meaning zeros; init may be y itself. */
TKWS_API void tkws_matvec(const tkws_matrix *a, const float *x, const float *init, float *y);

/* FastGRNN / FastRNN layer (EdgeML). W = w (full) or w2 @ w (low rank, w2 != NULL);
 * likewise U = u or u2 @ u. */
typedef struct {
    int32_t hidden;             /* H */
    const tkws_matrix *w, *w2;
    const tkws_matrix *u, *u2;
    const float *bias_gate;     /* [H] (FastGRNN only) */
    const float *bias_update;   /* [H] */
    float k1;                   /* FastGRNN: sigma(zeta); FastRNN: sigma(alpha) */
    float k2;                   /* FastGRNN: sigma(nu);   FastRNN: sigma(beta) */
    const float *gate_k;        /* FastGRNN: [H] e^(2 (bias_gate - bias_update)) for the
                                   one-exponential gate path, or NULL (two exponentials) */
    float gate_clamp;           /* with gate_k: |a + bias_gate| is clamped to this; the
                                   generator picks it with the largest bias gap it allows
                                   (tinykws.models.fastgrnn.GATE_CLAMP) */
} tkws_fast_cell;

/* a = W x + U h;  z = sigma(a + bias_gate);  c = tanh(a + bias_update);
 * h <- z h + (k1 (1 - z) + k2) c.   Scratch: a [rows_p of W], tmp [max rank_p]. */
TKWS_API void tkws_fastgrnn_step(const tkws_fast_cell *cell, const float *x, float *h,
                                 float *a, float *tmp);

/* c = tanh(W x + U h + bias_update);  h <- k2 h + k1 c  (k1 = sigma(alpha), k2 = sigma(beta)). */
TKWS_API void tkws_fastrnn_step(const tkws_fast_cell *cell, const float *x, float *h,
                                float *a, float *tmp);

/* A model that steps every few frames makes U h on the first frame of a group (uh = U h,
 * rows_p of U; tmp as above) and the rest on its last: a = W x + uh, then the step's gates,
 * so that no frame carries a whole step. */
TKWS_API void tkws_fast_uh(const tkws_fast_cell *cell, const float *h, float *uh, float *tmp);
TKWS_API void tkws_fastgrnn_update(const tkws_fast_cell *cell, const float *x, float *h,
                                   float *a, float *tmp, const float *uh);
TKWS_API void tkws_fastrnn_update(const tkws_fast_cell *cell, const float *x, float *h,
                                  float *a, float *tmp, const float *uh);

/* PyTorch GRU layer (gates r, z, n): w_ih [3H, in], w_hh [3H, H], biases padded [3H_p]. */
typedef struct {
    int32_t hidden;
    const tkws_matrix *w_ih, *w_hh;
    const float *b_ih, *b_hh;
} tkws_gru_cell;

/* gi = W_ih x + b_ih, gh = W_hh h + b_hh; r = sigma(gi_r + gh_r), z = sigma(gi_z + gh_z),
 * n = tanh(gi_n + r gh_n); h <- (1 - z) n + z h.  Scratch gi, gh [rows_p of w_ih]. */
TKWS_API void tkws_gru_step(const tkws_gru_cell *cell, const float *x, float *h, float *gi,
                            float *gh);
/* The same step with gh = W_hh h + b_hh already made (a model that steps every few frames
 * makes it on the first frame of a group, so that no frame carries a whole step). */
TKWS_API void tkws_gru_update(const tkws_gru_cell *cell, const float *x, float *h, float *gi,
                              const float *gh);

/* PyTorch LSTM layer (gates i, f, g, o): w_ih [4H, in], w_hh [4H, H], b = b_ih + b_hh. */
typedef struct {
    int32_t hidden;
    const tkws_matrix *w_ih, *w_hh;
    const float *bias;          /* [4H_p] b_ih + b_hh */
} tkws_lstm_cell;

/* g = W_ih x + W_hh h + bias; c <- sigma(f) c + sigma(i) tanh(g); h <- sigma(o) tanh(c). */
TKWS_API void tkws_lstm_step(const tkws_lstm_cell *cell, const float *x, float *h, float *c,
                             float *g);

/* Largest |normalized input| the model sees (tkws_normalize). */
#define TKWS_INPUT_LIMIT 1.0e4f

/* out[i] = (x[i] - mean[i]) / std[i], i < n; NaN -> 0, limited to +-TKWS_INPUT_LIMIT. */
TKWS_API void tkws_normalize(const float *x, const float *mean, const float *std, float *out,
                             int32_t n);

/* In place: p[i] = exp(p[i] - max p) / sum_j exp(p[j] - max p), i < n. */
TKWS_API void tkws_softmax(float *p, int32_t n);

#endif /* TKWS_RNN_H */
