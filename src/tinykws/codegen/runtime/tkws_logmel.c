/*
 * tkws_logmel.c - streaming log-mel featurizer (see tkws_logmel.h).
 */
#include "tkws_logmel.h"
#include "tkws_math.h"

TKWS_API void tkws_logmel_reset(const tkws_logmel_config *cfg, tkws_logmel_state *st)
{
    for (int32_t i = 0; i < cfg->ring_size; ++i) {
        st->ring[i] = 0.0f;
    }
    st->prev = 0.0f;
    st->pos = 0;
    st->blocks = 0;
}

/* Square roots for the magnitude option: Newton on the FPU-free path would be slow, but
 * the seed's flags use the power spectrum; sqrtf is one instruction on the Cortex-M4. */
static inline float tkws__sqrtf(float x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_sqrtf(x);
#else
    float r = x > 1.0f ? x : 1.0f;
    for (int32_t i = 0; i < 30; ++i) {
        r = 0.5f * (r + x / r);
    }
    return r;
#endif
}

TKWS_API int32_t tkws_logmel_step(const tkws_logmel_config *cfg, tkws_logmel_state *st,
                                  const float *in, float *out)
{
    const int32_t hop = cfg->hop;
    const int32_t ring_size = cfg->ring_size;
    const int32_t wsize = cfg->window_size;
    const float a = cfg->preemphasis;

    /* 1-2: pre-emphasis into the ring */
    float *dst = st->ring + st->pos;
    float prev = st->prev;
    for (int32_t i = 0; i < hop; ++i) {
        const float x = in[i];
        dst[i] = x - a * prev;
        prev = x;
    }
    st->prev = prev;
    st->pos += hop;
    if (st->pos >= ring_size) {
        st->pos = 0;
    }
    if (st->blocks < cfg->first_block) {
        st->blocks += 1;
    }

    /* 3: the window is ring[start .. ring_size) followed by ring[0 .. pos) (oldest first) */
    const tkws_fft_plan *fft = cfg->fft;
    float *z = st->work;
    int32_t start = st->pos + ring_size - wsize;
    if (start >= ring_size) {
        start -= ring_size;
    }
    if (start < st->pos) {
        tkws_rfft_put(fft, z, st->ring + start, cfg->window, 0, wsize);
    } else {
        const int32_t first = ring_size - start;
        tkws_rfft_put(fft, z, st->ring + start, cfg->window, 0, first);
        tkws_rfft_put(fft, z, st->ring, cfg->window, first, wsize - first);
    }
    tkws_rfft_zero_from(fft, z, wsize);

    /* 4: spectrum */
    tkws_cfft(fft, z);
    float *p = st->power;
    const int32_t n_bins = (fft->n >> 1) + 1;
    if (cfg->magnitude) {
        tkws_rfft_power(fft, z, p, 1.0f);
        for (int32_t k = 0; k < n_bins; ++k) {
            p[k] = tkws__sqrtf(p[k]);
        }
    } else {
        tkws_rfft_power(fft, z, p, cfg->power_scale);
    }

    /* 5-6: sparse mel filters, log */
    const float *w = cfg->mel_weights;
    for (int32_t j = 0; j < cfg->n_mels; ++j) {
        const float *pj = p + cfg->mel_start[j];
        const int32_t len = cfg->mel_len[j];
        float acc = 0.0f;
        for (int32_t t = 0; t < len; ++t) {
            acc += w[t] * pj[t];
        }
        w += len;
        out[j] = tkws_logf(acc + cfg->log_delta);
    }
    return st->blocks >= cfg->first_block;
}
