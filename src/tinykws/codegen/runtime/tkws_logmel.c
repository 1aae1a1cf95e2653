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
    int32_t i = 0;
    for (; i + 2 <= hop; i += 2) {
        const float x0 = in[i], x1 = in[i + 1];
        dst[i] = x0 - a * prev;
        dst[i + 1] = x1 - a * x0;
        prev = x1;
    }
    if (i < hop) {
        dst[i] = in[i] - a * prev;
        prev = in[i];
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
    tkws_rfft_power4(fft, z, p);      /* |2 X[k]|^2: the scale is in the mel weights */
    if (cfg->magnitude) {
        for (int32_t k = 0; k < n_bins; ++k) {
            p[k] = tkws__sqrtf(p[k]);
        }
    }

    /* 5-6: sparse mel filters, log */
    const float *w = cfg->mel_weights;
    const float delta = cfg->log_delta;
    for (int32_t j = 0; j < cfg->n_mels; ++j) {
        const float *pj = p + cfg->mel_start[j];
        const int32_t len = cfg->mel_len[j];
        float acc0 = 0.0f, acc1 = 0.0f;
        int32_t t = 0;
        for (; t + 2 <= len; t += 2) {
            acc0 += w[t] * pj[t];
            acc1 += w[t + 1] * pj[t + 1];
        }
        if (t < len) {
            acc0 += w[t] * pj[t];
        }
        w += len;
        out[j] = tkws__logf_normal((acc0 + acc1) + delta);
    }
    return st->blocks >= cfg->first_block;
}
