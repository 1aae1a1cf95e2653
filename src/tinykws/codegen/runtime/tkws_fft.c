/*
 * tkws_fft.c - real FFT via a radix-4 complex FFT (see tkws_fft.h).
 *
 * Radix-4 DIT butterfly over a block of L = 4q outputs, offset j < q, with
 * b_r = W_L^{rj} Y_r[j] (Y_r: the DFT of the r-th decimated subsequence, stored at
 * offset r q of the block):
 *   X[j]      = (b0 + b2) + (b1 + b3)      X[j + 2q] = (b0 + b2) - (b1 + b3)
 *   X[j + q]  = (b0 - b2) - i (b1 - b3)    X[j + 3q] = (b0 - b2) + i (b1 - b3)
 * W_L^k = W_N^{k N / L} is read from the one table of W_N^k with a stride.
 */
#include "tkws_fft.h"

TKWS_API void tkws_rfft_put(const tkws_fft_plan *plan, float *z, const float *src,
                            const float *win, int32_t i0, int32_t count)
{
    const uint16_t *pos = plan->pos;
    int32_t i = i0;
    const int32_t end = i0 + count;
    if ((i & 1) && i < end) {                  /* odd start: the imaginary half of a pair */
        z[2 * pos[i >> 1] + 1] = win ? *src * win[i] : *src;
        ++src;
        ++i;
    }
    if (win) {
        for (; i + 2 <= end; i += 2, src += 2) {
            float *d = z + 2 * pos[i >> 1];
            d[0] = src[0] * win[i];
            d[1] = src[1] * win[i + 1];
        }
    } else {
        for (; i + 2 <= end; i += 2, src += 2) {
            float *d = z + 2 * pos[i >> 1];
            d[0] = src[0];
            d[1] = src[1];
        }
    }
    if (i < end) {                             /* odd end: the real half of a pair */
        z[2 * pos[i >> 1]] = win ? *src * win[i] : *src;
    }
}

TKWS_API void tkws_rfft_zero_from(const tkws_fft_plan *plan, float *z, int32_t i0)
{
    const uint16_t *pos = plan->pos;
    const int32_t m = plan->n >> 1;
    int32_t i = i0;
    if (i & 1) {
        z[2 * pos[i >> 1] + 1] = 0.0f;
        ++i;
    }
    for (i >>= 1; i < m; ++i) {
        float *d = z + 2 * pos[i];
        d[0] = 0.0f;
        d[1] = 0.0f;
    }
}

/* First radix-4 stage (L = 4): all twiddles are 1. */
static inline void tkws__fft_stage4_first(float *z, int32_t m)
{
    for (int32_t b = 0; b < m; b += 4) {
        float *p = z + 2 * b;
        const float t0r = p[0] + p[4], t0i = p[1] + p[5];
        const float t1r = p[0] - p[4], t1i = p[1] - p[5];
        const float t2r = p[2] + p[6], t2i = p[3] + p[7];
        const float t3r = p[2] - p[6], t3i = p[3] - p[7];
        p[0] = t0r + t2r; p[1] = t0i + t2i;
        p[4] = t0r - t2r; p[5] = t0i - t2i;
        p[2] = t1r + t3i; p[3] = t1i - t3r;
        p[6] = t1r - t3i; p[7] = t1i + t3r;
    }
}

/* One radix-4 stage with blocks of l = 4q complex values; stride = N / l into tw. */
static inline void tkws__fft_stage4(float *z, int32_t m, int32_t q, const float *tw,
                                    int32_t stride)
{
    for (int32_t j = 0; j < q; ++j) {
        const float *w1 = tw + 2 * (j * stride);
        const float *w2 = tw + 4 * (j * stride);
        const float *w3 = tw + 6 * (j * stride);
        const float w1r = w1[0], w1i = w1[1], w2r = w2[0], w2i = w2[1];
        const float w3r = w3[0], w3i = w3[1];
        for (int32_t b = j; b < m; b += 4 * q) {
            float *p0 = z + 2 * b;
            float *p1 = p0 + 2 * q;
            float *p2 = p1 + 2 * q;
            float *p3 = p2 + 2 * q;
            const float b1r = p1[0] * w1r - p1[1] * w1i, b1i = p1[0] * w1i + p1[1] * w1r;
            const float b2r = p2[0] * w2r - p2[1] * w2i, b2i = p2[0] * w2i + p2[1] * w2r;
            const float b3r = p3[0] * w3r - p3[1] * w3i, b3i = p3[0] * w3i + p3[1] * w3r;
            const float t0r = p0[0] + b2r, t0i = p0[1] + b2i;
            const float t1r = p0[0] - b2r, t1i = p0[1] - b2i;
            const float t2r = b1r + b3r, t2i = b1i + b3i;
            const float t3r = b1r - b3r, t3i = b1i - b3i;
            p0[0] = t0r + t2r; p0[1] = t0i + t2i;
            p2[0] = t0r - t2r; p2[1] = t0i - t2i;
            p1[0] = t1r + t3i; p1[1] = t1i - t3r;
            p3[0] = t1r - t3i; p3[1] = t1i + t3r;
        }
    }
}

/* Final radix-2 stage when M = 2 * 4^k: X[k] = E[k] + W_M^k O[k], X[k + M/2] = E - W O. */
static inline void tkws__fft_stage2_last(float *z, int32_t m, const float *tw)
{
    const int32_t h = m >> 1;
    for (int32_t k = 0; k < h; ++k) {
        float *e = z + 2 * k;
        float *o = z + 2 * (k + h);
        const float wr = tw[4 * k], wi = tw[4 * k + 1];      /* W_M^k = W_N^{2k} */
        const float tr = o[0] * wr - o[1] * wi, ti = o[0] * wi + o[1] * wr;
        const float er = e[0], ei = e[1];
        e[0] = er + tr; e[1] = ei + ti;
        o[0] = er - tr; o[1] = ei - ti;
    }
}

TKWS_API void tkws_cfft(const tkws_fft_plan *plan, float *z)
{
    const int32_t n = plan->n;
    const int32_t m = n >> 1;
    int32_t l4 = 1;                          /* largest power of 4 that divides m */
    while (l4 * 4 <= m && (m % (l4 * 4)) == 0) {
        l4 *= 4;
    }
    /* radix-4 stages build DFTs of size l4 (= m, or m / 2 followed by one radix-2 stage) */
    if (l4 >= 4) {
        tkws__fft_stage4_first(z, m);
    }
    for (int32_t l = 16; l <= l4; l *= 4) {
        /* W_l^k = W_M^{k M / l} = W_N^{2 k M / l}: stride n / l in the W_N table */
        tkws__fft_stage4(z, m, l >> 2, plan->tw, n / l);
    }
    if (l4 != m) {
        tkws__fft_stage2_last(z, m, plan->tw);
    }
}

/* Split step: for A = Z[k], B = conj(Z[M-k]): E = (A + B), O = -i (A - B), T = W_N^k O;
 * 2 X[k] = E + T and 2 X[M-k] = conj(E - T). */
TKWS_API void tkws_rfft_power(const tkws_fft_plan *plan, const float *z, float *power,
                              float scale)
{
    const int32_t m = plan->n >> 1;
    const float *tw = plan->tw;
    const float s4 = 0.25f * scale;          /* the two factors 1/2 of E and O, squared */
    const float x0 = z[0] + z[1], xm = z[0] - z[1];
    power[0] = x0 * x0 * scale;
    power[m] = xm * xm * scale;
    for (int32_t k = 1; k <= m - k; ++k) {
        const float *a = z + 2 * k;
        const float *b = z + 2 * (m - k);
        const float er = a[0] + b[0], ei = a[1] - b[1];
        const float dr = a[0] - b[0], di = a[1] + b[1];
        const float orr = di, oi = -dr;      /* -i (dr + i di) */
        const float wr = tw[2 * k], wi = tw[2 * k + 1];
        const float tr = orr * wr - oi * wi, ti = orr * wi + oi * wr;
        const float pr = er + tr, pi = ei + ti;
        const float qr = er - tr, qi = ei - ti;
        power[k] = (pr * pr + pi * pi) * s4;
        power[m - k] = (qr * qr + qi * qi) * s4;
    }
}

TKWS_API void tkws_rfft_spectrum(const tkws_fft_plan *plan, const float *z, float *out)
{
    const int32_t m = plan->n >> 1;
    const float *tw = plan->tw;
    out[0] = z[0] + z[1];
    out[1] = 0.0f;
    out[2 * m] = z[0] - z[1];
    out[2 * m + 1] = 0.0f;
    for (int32_t k = 1; k <= m - k; ++k) {
        const float *a = z + 2 * k;
        const float *b = z + 2 * (m - k);
        const float er = a[0] + b[0], ei = a[1] - b[1];
        const float dr = a[0] - b[0], di = a[1] + b[1];
        const float orr = di, oi = -dr;
        const float wr = tw[2 * k], wi = tw[2 * k + 1];
        const float tr = orr * wr - oi * wi, ti = orr * wi + oi * wr;
        out[2 * k] = 0.5f * (er + tr);
        out[2 * k + 1] = 0.5f * (ei + ti);
        out[2 * (m - k)] = 0.5f * (er - tr);
        out[2 * (m - k) + 1] = -0.5f * (ei - ti);
    }
}
