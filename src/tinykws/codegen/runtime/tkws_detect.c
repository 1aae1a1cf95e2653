/*
 * tkws_detect.c - keyword detection from class scores (see tkws_detect.h).
 */
#include "tkws_detect.h"

TKWS_API void tkws_detect_reset(const tkws_detect_config *cfg, tkws_detect_state *st)
{
    for (int32_t i = 0; i < cfg->smooth * cfg->n_keywords; ++i) {
        st->history[i] = 0.0f;
    }
    TKWS_TRIGGER_RESET(cfg, st);
}

TKWS_API int32_t tkws_detect_step(const tkws_detect_config *cfg, tkws_detect_state *st,
                                  const float *scores, float *confidence)
{
    const int32_t k = cfg->n_keywords;
    float *row = st->history + st->pos * k;
    for (int32_t j = 0; j < k; ++j) {
        row[j] = scores[cfg->keyword[j]];
    }
    TKWS_TRIGGER_ADVANCE(cfg, st);

    /* the best keyword by its sum over the filled rows (same divisor for all) */
    int32_t best = 0;
    float best_sum = 0.0f;
    for (int32_t j = 0; j < k; ++j) {
        float sum = 0.0f;
        for (int32_t r = 0; r < st->filled; ++r) {
            sum += st->history[r * k + j];
        }
        if (j == 0 || sum > best_sum) {
            best = j;
            best_sum = sum;
        }
    }
    const float mean = best_sum / (float)st->filled;
    *confidence = mean;
    TKWS_TRIGGER_RETURN(cfg, st, mean >= cfg->threshold, best);
}
