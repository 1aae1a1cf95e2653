/*
 * tkws_detect.h - keyword detection from class scores (tinykws.triggers.Trigger, in C).
 *
 * Per score vector (one model step; softmax probabilities, or any float scores the
 * threshold is meant for):
 *   1. the scores of the keyword classes go into a ring of the last `smooth` steps;
 *   2. each keyword's mean over the filled rows (fewer at the start) is its smoothed score;
 *   3. the keyword with the highest smoothed score (the first on a tie) fires when that
 *      score is >= threshold and at least `refractory` steps have passed since the last
 *      detection (or there was none).
 * The Python detector computes the mean in double precision; this one in single: smoothed
 * scores agree to ~1e-7, so both fire on the same frames unless a smoothed score lies
 * within that of the threshold.
 */
#ifndef TKWS_DETECT_H
#define TKWS_DETECT_H

#include "tkws_trigger.h"

typedef struct {
    TKWS_TRIGGER_CONFIG
    float threshold;            /* smoothed score a keyword must reach */
} tkws_detect_config;

typedef struct {
    float *history;             /* [smooth * K]: the keywords' scores of the last steps */
    TKWS_TRIGGER_COUNTERS
} tkws_detect_state;

/* Start over: empty history, no detection yet. */
TKWS_API void tkws_detect_reset(const tkws_detect_config *cfg, tkws_detect_state *st);

/* One score vector in. Returns the index of the class that fired (its smoothed score in
 * *confidence), or -1 (then *confidence is the best keyword's smoothed score). */
TKWS_API int32_t tkws_detect_step(const tkws_detect_config *cfg, tkws_detect_state *st,
                                  const float *scores, float *confidence);

#endif /* TKWS_DETECT_H */
