/*
 * tkws_qlogmel.h - integer streaming log-mel featurizer (no FPU, no float at all).
 *
 * The C twin of tinykws.quant.features (which documents every rounding); the two agree bit
 * for bit. int16 PCM in, int16 log-mel in Q7.8 out (value = ln(mel + log_delta) * 256).
 * Per block of `hop` samples:
 *   1. the block goes into a ring of the last `ring_size` raw samples (whole blocks covering
 *      window_size + 1 samples); the OR of (x ^ (x >> 15)) of each ring block gives the
 *      frame's gain shift g = 15 - bitlen(OR) (quiet frames: more bits through the FFT)
 *   2. pre-emphasis on the window: y = ((x << 13) - A x[n-1]) << g (optionally times a Q15
 *      window), scattered into the FFT's digit-reversed order; |y| < 2^29
 *   3. radix-4 (+ radix-2) integer FFT, 1/4 per stage (cannot overflow), Q14 twiddles
 *   4. split step + power P[k] (64-bit), a frame shift sh so that P >> sh fits 32 bits
 *   5. sparse mel filters with Q16 weights (64-bit accumulators)
 *   6. log2 from CLZ + a 65-entry table, times ln 2, rounded to Q7.8, saturated (SSAT)
 * Warm-up: as tkws_logmel.h (the first first_block - 1 calls after a reset compute a
 * frame over a zero-filled window; step returns 0 for them).
 */
#ifndef TKWS_QLOGMEL_H
#define TKWS_QLOGMEL_H

#include "tkws_common.h"
#include "tkws_dsp.h"

typedef struct {
    int32_t hop;                /* samples per block (160) */
    int32_t window_size;        /* samples per analysis window (400) */
    int32_t ring_size;          /* raw samples kept (480): whole blocks >= window_size + 1 */
    int32_t first_block;        /* blocks until the first real frame (3) */
    int32_t n_mels;             /* filters = features per frame (32) */
    int32_t n_fft;              /* real FFT length N (512); M = N / 2 complex points */
    int32_t radix2;             /* 1: one final radix-2 stage (M = 2 * 4^k) */
    int32_t preemph;            /* A = round(preemphasis * 2^13) (7946) */
    int32_t exp0;               /* mel (float) = mel_int * 2^(sh - 2 g + exp0) (-33) */
    int32_t log_floor;          /* Q7.8 output for mel_int == 0: round(ln(log_delta) * 256) */
    uint64_t delta_q;           /* round(log_delta * 2^-exp0), added after >> sh */
    const int16_t *window;      /* [window_size] Q15, or NULL (rectangular) */
    const uint16_t *pos;        /* [M]: complex input m goes to position pos[m] */
    const uint32_t *stage_tw;   /* radix-4 stages L = 16, 64, ...: per j < L/4 the Q14
                                   pairs W^j, W^2j, W^3j packed (re | im << 16) */
    const uint32_t *split_tw;   /* [M/2 + 1], or [M] with radix2: W_N^k packed Q14 (re | im << 16) */
    const uint16_t *mel_start;  /* [n_mels] first bin of each filter */
    const uint16_t *mel_len;    /* [n_mels] bins of each filter */
    const uint16_t *mel_weights; /* Q16, all filters back to back */
    const int32_t *log2_table;  /* [65]: round(log2(1 + i / 64) * 2^16) */
} tkws_qlogmel_config;

typedef struct {
    int16_t *ring;              /* [ring_size] raw samples */
    int32_t *work;              /* [n_fft + 2]: FFT buffer, then the 64-bit power spectrum */
    uint16_t *block_or;         /* [ring_size / hop]: OR of (x ^ (x >> 15)) per ring block */
    int32_t pos;                /* where the next block goes in the ring */
    int32_t blocks;             /* blocks since reset, saturating at first_block */
} tkws_qlogmel_state;

/* Forget all history: zero ring, x[-1] = 0, warm-up restarts. */
TKWS_API void tkws_qlogmel_reset(const tkws_qlogmel_config *cfg, tkws_qlogmel_state *st);

/* Where the next block's `hop` samples go (write them there, then call step). */
TKWS_API int16_t *tkws_qlogmel_next_block(const tkws_qlogmel_config *cfg, tkws_qlogmel_state *st);

/* Take the block written at tkws_qlogmel_next_block(); write out[n_mels] (Q7.8). Returns 1
 * for a real frame, 0 in warm-up. */
TKWS_API int32_t tkws_qlogmel_step(const tkws_qlogmel_config *cfg, tkws_qlogmel_state *st,
                                   int16_t *out);

/* int16-scale float sample -> int16: round half away from zero, saturate, NaN -> 0 (bit
 * operations only: exact, and no soft-float calls). */
TKWS_API int16_t tkws_pcm16_from_float(float x);

/* Q7.8 -> float, exact (bit operations: no soft-float calls). */
TKWS_API float tkws_float_from_q8(int16_t q);

#endif /* TKWS_QLOGMEL_H */
