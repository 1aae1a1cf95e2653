/*
 * tkws_qdetect.c - keyword detection from Q15 class scores (see tkws_qdetect.h).
 */
#include "tkws_qdetect.h"

TKWS_API void tkws_qdetect_reset(const tkws_qdetect_config *cfg, tkws_qdetect_state *st)
{
    for (int32_t i = 0; i < cfg->smooth * cfg->n_keywords; ++i) {
        st->history[i] = 0;
    }
    for (int32_t j = 0; j < cfg->n_keywords; ++j) {
        st->sum[j] = 0;
    }
    TKWS_TRIGGER_RESET(cfg, st);
}

TKWS_API int32_t tkws_qdetect_step(const tkws_qdetect_config *cfg, tkws_qdetect_state *st,
                                   const int16_t *scores, int32_t *best_sum)
{
    const int32_t k = cfg->n_keywords;
    int16_t *row = st->history + st->pos * k;  /* the oldest row (zeros while filling) */
    int32_t best = 0;
    int32_t best_s = 0;
    for (int32_t j = 0; j < k; ++j) {
        const int16_t q = scores[cfg->keyword[j]];
        const int32_t s = st->sum[j] + q - row[j];
        row[j] = q;
        st->sum[j] = s;
        if (j == 0 || s > best_s) {
            best = j;
            best_s = s;
        }
    }
    TKWS_TRIGGER_ADVANCE(cfg, st);
    *best_sum = best_s;
    TKWS_TRIGGER_RETURN(cfg, st, best_s >= cfg->min_sum[st->filled - 1], best);
}

TKWS_API int16_t tkws_q15_from_float(float x)
{
    union {
        float f;
        uint32_t u;
    } b;
    b.f = x;
    const int32_t ex = (int32_t)((b.u >> 23) & 255u);
    const uint32_t mant = (b.u & 0x7fffffu) | (ex ? 0x800000u : 0u);
    if ((b.u >> 31) != 0u || (ex == 255 && (b.u & 0x7fffffu) != 0u)) {
        return 0;                              /* negative (or -0) or NaN */
    }
    const int32_t sh = 135 - ex;               /* x * 32768 = mant * 2^-sh */
    if (sh <= 8) {
        return 32767;                          /* x * 32768 >= 2^15 (inf too): saturate */
    }
    if (sh > 24) {
        return 0;                              /* x * 32768 < 0.5 */
    }
    const uint32_t half = (uint32_t)1 << (sh - 1);  /* round half to even */
    const uint32_t rem = mant & ((half << 1) - 1u);
    uint32_t r = mant >> sh;
    r += (rem > half || (rem == half && (r & 1u))) ? 1u : 0u;
    return (int16_t)(r > 32767u ? 32767u : r);
}
