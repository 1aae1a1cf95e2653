/*
 * tkws_logmel.h - streaming log-mel featurizer (tinykws.features, one block at a time).
 *
 * Per block of `hop` samples (int16-scale floats):
 *   1. pre-emphasis y[n] = x[n] - a x[n-1] (x[-1] = 0 after a reset; state kept across blocks)
 *   2. the block goes into a ring of the last `ring_size` (= first_block * hop) samples
 *   3. window: the last `window_size` samples (times the window table unless rectangular)
 *   4. zero-padded real FFT of length N, P[k] = |2 X[k]|^2, k = 0..N/2
 *      (or its square root 2 |X[k]| when `magnitude` is set)
 *   5. sparse mel filters: mel[j] = sum_t weights[off_j + t] * P[start_j + t], t < len_j;
 *      the weights include the spectrum's scale: 1 / (4 N) for the power spectrum
 *      |X|^2 / N, 1 / 2 for the magnitude |X|
 *   6. out[j] = ln(mel[j] + log_delta)
 * Warm-up: after a reset the ring holds zeros. The first first_block - 1 calls (2 for the
 * seed's 400/160) still write a frame, computed over the zero-filled window exactly as
 * ELL's featurizer does; tkws_logmel_step returns 0 for them and 1 for real frames.
 */
#ifndef TKWS_LOGMEL_H
#define TKWS_LOGMEL_H

#include "tkws_common.h"
#include "tkws_fft.h"

typedef struct {
    int32_t hop;                /* samples per block (160) */
    int32_t window_size;        /* samples per analysis window (400) */
    int32_t ring_size;          /* first_block * hop (480) */
    int32_t first_block;        /* blocks until the first real frame (3) */
    int32_t n_mels;             /* filters = features per frame (32) */
    int32_t magnitude;          /* 0: power spectrum; 1: magnitude */
    float preemphasis;          /* 0.97; 0 disables */
    float log_delta;            /* 2.220446049250313e-16 (a normal float: >= 2^-126) */
    const float *window;        /* [window_size] or NULL (rectangular) */
    const tkws_fft_plan *fft;
    const uint16_t *mel_start;  /* [n_mels] first bin of each filter */
    const uint16_t *mel_len;    /* [n_mels] bins of each filter */
    const float *mel_weights;   /* all filters' weights, back to back */
} tkws_logmel_config;

typedef struct {
    float *ring;                /* [ring_size] pre-emphasised samples */
    float *work;                /* [N] FFT work buffer */
    float *power;               /* [N / 2 + 1] */
    float prev;                 /* last raw input sample (pre-emphasis state) */
    int32_t pos;                /* where the next block goes in the ring */
    int32_t blocks;             /* blocks since reset, saturating at first_block */
} tkws_logmel_state;

/* Forget all history: zero ring, x[-1] = 0, warm-up restarts. */
TKWS_API void tkws_logmel_reset(const tkws_logmel_config *cfg, tkws_logmel_state *st);

/* Feed one block in[hop]; write out[n_mels]. Returns 1 for a real frame, 0 in warm-up. */
TKWS_API int32_t tkws_logmel_step(const tkws_logmel_config *cfg, tkws_logmel_state *st,
                                  const float *in, float *out);

#endif /* TKWS_LOGMEL_H */
