/*
 * tkws_trigger.h - what the float detector (tkws_detect) and the integer one (tkws_qdetect)
 * share: the first members of their configurations, the last members of their states, and
 * the ring and refractory bookkeeping of one step. Each keeps its own scores (float or Q15)
 * and its own test of the threshold.
 */
#ifndef TKWS_TRIGGER_H
#define TKWS_TRIGGER_H

#include "tkws_common.h"

/* The first members of tkws_detect_config and tkws_qdetect_config. */
#define TKWS_TRIGGER_CONFIG                                                              \
    int32_t n_keywords;         /* K: classes that may fire */                           \
    const uint16_t *keyword;    /* [K] their indices in the score vector */              \
    int32_t smooth;             /* moving-average length, in steps (>= 1) */             \
    int32_t refractory;         /* steps after a detection before the next may fire */

/* The last members of tkws_detect_state and tkws_qdetect_state. */
#define TKWS_TRIGGER_COUNTERS                                                            \
    int32_t pos;                /* history row written next */                           \
    int32_t filled;             /* rows in use (<= smooth) */                            \
    int32_t since;              /* steps since the last detection, saturating at refractory */

/* Start over: row 0 next, no row in use, no detection yet (nothing holds the next one
 * back). */
static inline void tkws_trigger_reset(int32_t refractory, int32_t *pos, int32_t *filled,
                                      int32_t *since)
{
    *pos = 0;
    *filled = 0;
    *since = refractory;
}

/* After the step's row was written: the next row (a ring of `smooth`), one more row in use
 * (up to smooth), one more step since the last detection (saturating at refractory). */
static inline void tkws_trigger_advance(int32_t smooth, int32_t refractory, int32_t *pos,
                                        int32_t *filled, int32_t *since)
{
    *pos = *pos + 1 == smooth ? 0 : *pos + 1;
    *filled += *filled < smooth;
    *since += *since < refractory;
}

/* `keyword` fires when its smoothed score `reached` the threshold and the refractory time
 * is over (then the count starts again); else -1. */
static inline int32_t tkws_trigger_fire(int32_t reached, int32_t refractory, int32_t *since,
                                        int32_t keyword)
{
    if (reached && *since >= refractory) {
        *since = 0;
        return keyword;
    }
    return -1;
}

#endif /* TKWS_TRIGGER_H */
