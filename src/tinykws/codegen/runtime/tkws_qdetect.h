/*
 * tkws_qdetect.h - keyword detection from Q15 class scores, integer only
 * (tinykws.triggers.IntTrigger, in C). The detector of integer (int8) builds.
 *
 * Per score vector (one model step; Q15 probabilities, 0 .. 32767 = q / 32768):
 *   1. the keyword classes' scores go into a ring of the last `smooth` steps, and each
 *      keyword's int32 sum over the filled rows is updated: + the new score, - the score
 *      that leaves the ring (O(keywords) a step, however long the smoothing);
 *   2. the keyword with the largest sum (the first on a tie) fires when that sum reaches
 *      min_sum[m - 1], m = rows filled (fewer than `smooth` at the start), and at least
 *      `refractory` steps have passed since the last detection (or there was none).
 * min_sum[m - 1] = ceil(threshold * 32768 * m), computed exactly by the generator
 * (tinykws.triggers.threshold_sums): `sum >= min_sum[m - 1]` is exactly "mean >= threshold".
 * Sums fit int32 for smooth <= 65535. No floating point.
 */
#ifndef TKWS_QDETECT_H
#define TKWS_QDETECT_H

#include "tkws_trigger.h"

typedef struct {
    TKWS_TRIGGER_CONFIG         /* smooth: 1 .. 65535 */
    const int32_t *min_sum;     /* [smooth]: least sum of m scores that fires, m = 1 .. smooth */
} tkws_qdetect_config;

typedef struct {
    int16_t *history;           /* [smooth * K]: the keywords' Q15 scores of the last steps */
    int32_t *sum;               /* [K]: each keyword's sum over the filled rows */
    TKWS_TRIGGER_COUNTERS
} tkws_qdetect_state;

/* Start over: empty history, zero sums, no detection yet. */
TKWS_API void tkws_qdetect_reset(const tkws_qdetect_config *cfg, tkws_qdetect_state *st);

/* One Q15 score vector in. Returns the index of the class that fired, or -1; *best_sum is
 * the best keyword's sum over st->filled rows either way (its mean: sum / (32768 filled)). */
TKWS_API int32_t tkws_qdetect_step(const tkws_qdetect_config *cfg, tkws_qdetect_state *st,
                                   const int16_t *scores, int32_t *best_sum);

/* A probability as Q15: x * 32768 rounded to nearest (ties to even), clamped to
 * 0 .. 32767; NaN gives 0. Exact for the integer model's float outputs (multiples of
 * 2^-15). Bit operations only: no soft-float calls. */
TKWS_API int16_t tkws_q15_from_float(float x);

#endif /* TKWS_QDETECT_H */
