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
 * back). `cfg`, `st`: a detector's configuration and state (float or integer). The three
 * steps are macros, so each detector compiles to exactly the code it had when it spelled
 * them out itself. */
#define TKWS_TRIGGER_RESET(cfg, st)                                                      \
    do {                                                                                 \
        (st)->pos = 0;                                                                   \
        (st)->filled = 0;                                                                \
        (st)->since = (cfg)->refractory;                                                 \
    } while (0)

/* After the step's row was written: the next row (a ring of `smooth`), one more row in use
 * (up to smooth), one more step since the last detection (saturating at refractory). */
#define TKWS_TRIGGER_ADVANCE(cfg, st)                                                    \
    do {                                                                                 \
        (st)->pos = (st)->pos + 1 == (cfg)->smooth ? 0 : (st)->pos + 1;                  \
        (st)->filled += (st)->filled < (cfg)->smooth;                                    \
        (st)->since += (st)->since < (cfg)->refractory;                                  \
    } while (0)

/* Return the class of keyword `best` when its smoothed score `reached` the threshold and
 * the refractory time is over (the count then starts again), else return -1. */
#define TKWS_TRIGGER_RETURN(cfg, st, reached, best)                                      \
    do {                                                                                 \
        if ((reached) && (st)->since >= (cfg)->refractory) {                             \
            (st)->since = 0;                                                             \
            return (cfg)->keyword[best];                                                 \
        }                                                                                \
        return -1;                                                                       \
    } while (0)

#endif /* TKWS_TRIGGER_H */
