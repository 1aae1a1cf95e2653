/*
 * tkws_qlogmel.c - integer streaming log-mel featurizer (see tkws_qlogmel.h and, for the
 * exact arithmetic and the overflow bounds, tinykws/quant/features.py).
 *
 * FFT data are int32 (re, im) pairs; a complex product with a packed Q14 twiddle
 * w = (wr | wi << 16) is
 *     re = smulwb(ar, w) - smulwt(ai, w),  im = smlawb(ai, w, smulwt(ar, w))
 * = a W / 4: three DSP instructions and a subtraction on the Cortex-M4. There, four loops
 * are inline assembly (the compilers spill registers or index poorly in them): the radix-4
 * butterflies (45 instructions a butterfly, against ~56 compiled), the split step (26 a bin
 * pair, ~33), the 64 -> 32-bit power shift and the mel sums (two UMLALs per 7
 * instructions). The C beside them is the same arithmetic in the same order (host tests,
 * TKWS_NO_ASM).
 */
#include "tkws_qlogmel.h"

TKWS_API void tkws_qlogmel_reset(const tkws_qlogmel_config *cfg, tkws_qlogmel_state *st)
{
    for (int32_t i = 0; i < cfg->ring_size; ++i) {
        st->ring[i] = 0;
    }
    for (int32_t i = 0; i < cfg->ring_size / cfg->hop; ++i) {
        st->block_or[i] = 0;
    }
    st->pos = 0;
    st->blocks = 0;
}

TKWS_API int16_t *tkws_qlogmel_next_block(const tkws_qlogmel_config *cfg, tkws_qlogmel_state *st)
{
    (void)cfg;
    return st->ring + st->pos;
}

/* Pre-emphasise `count` ring samples src[0..) (prev: the raw sample before src[0]) into
 * real-FFT inputs i0 .. i0 + count - 1: y = x * 2^(13 + g) - (A << g) * prev, times the
 * Q15 window if any. Returns the last raw sample. */
static inline int32_t tkws__q_put(const tkws_qlogmel_config *cfg, int32_t *z,
                                  const int16_t *src, int32_t count, int32_t i0, int32_t prev,
                                  int32_t scale, int32_t ag)
{
    const uint16_t *pos = cfg->pos;
    const int16_t *win = cfg->window;
    int32_t i = i0;
    const int32_t end = i0 + count;
    if ((i & 1) && i < end) {                  /* odd start: the imaginary half of a pair */
        const int32_t x = *src++;
        int32_t y = x * scale - ag * prev;
        if (win) {
            y = tkws_smulwb(2 * y, win[i]);
        }
        z[2 * pos[i >> 1] + 1] = y;
        prev = x;
        ++i;
    }
    if (win) {
        for (; i + 2 <= end; i += 2, src += 2) {
            const int32_t x0 = src[0], x1 = src[1];
            int32_t *d = z + 2 * pos[i >> 1];
            d[0] = tkws_smulwb(2 * (x0 * scale - ag * prev), win[i]);
            d[1] = tkws_smulwb(2 * (x1 * scale - ag * x0), win[i + 1]);
            prev = x1;
        }
    } else {
        const int32_t pairs = i < end ? (end - i) >> 1 : 0;
        const uint16_t *pp = pos + (i >> 1);
        const uint16_t *const pend = pp + pairs;
        for (; pp < pend; ++pp, src += 2) {
            const int32_t x0 = src[0], x1 = src[1];
            int32_t *d = z + 2 * *pp;
            d[0] = x0 * scale - ag * prev;
            d[1] = x1 * scale - ag * x0;
            prev = x1;
        }
        i += 2 * pairs;
    }
    if (i < end) {                             /* odd end: the real half of a pair */
        const int32_t x = *src;
        int32_t y = x * scale - ag * prev;
        if (win) {
            y = tkws_smulwb(2 * y, win[i]);
        }
        z[2 * pos[i >> 1]] = y;
        prev = x;
    }
    return prev;
}

/* First radix-4 stage (L = 4, all twiddles 1): every input / 4, then the butterfly. */
static inline void tkws__qfft_first(int32_t *z, int32_t m)
{
    for (int32_t b = 0; b < m; b += 4) {
        int32_t *p = z + 2 * b;
        const int32_t a0r = p[0] >> 2, a0i = p[1] >> 2, a1r = p[2] >> 2, a1i = p[3] >> 2;
        const int32_t a2r = p[4] >> 2, a2i = p[5] >> 2, a3r = p[6] >> 2, a3i = p[7] >> 2;
        const int32_t t0r = a0r + a2r, t0i = a0i + a2i;
        const int32_t t1r = a0r - a2r, t1i = a0i - a2i;
        const int32_t t2r = a1r + a3r, t2i = a1i + a3i;
        const int32_t t3r = a1r - a3r, t3i = a1i - a3i;
        p[0] = t0r + t2r; p[1] = t0i + t2i;
        p[4] = t0r - t2r; p[5] = t0i - t2i;
        p[2] = t1r + t3i; p[3] = t1i - t3r;
        p[6] = t1r - t3i; p[7] = t1i + t3r;
    }
}

#if TKWS_ARM_DSP
/* q radix-4 butterflies of one block, Cortex-M4 assembly (45 instructions a butterfly); S =
 * q * 8 bytes, a literal <= 1020 (an ldrd offset): p1 = p0 + S, p3 = p2 + S. The same sums
 * as the C below, in the same order. */
#define TKWS__QR4_ASM(S)                                                                   \
    do {                                                                                   \
        int32_t *p2 = p0 + 4 * q;                                                          \
        int32_t a, b, c, d, e, f, g, h, w;                                                 \
        __asm__ volatile(                                                                  \
            "1:\n\t"                                                                       \
            "ldrd %[a], %[b], [%[p0], #" #S "]\n\t"      /* a1 */                          \
            "ldr %[w], [%[tw]]\n\t"                      /* W^j */                         \
            "smulwb %[c], %[a], %[w]\n\t"                                                  \
            "smulwt %[d], %[b], %[w]\n\t"                                                  \
            "sub %[c], %[c], %[d]\n\t"                   /* b1r */                         \
            "smulwt %[d], %[a], %[w]\n\t"                                                  \
            "smlawb %[d], %[b], %[w], %[d]\n\t"          /* b1i */                         \
            "ldrd %[a], %[b], [%[p2], #" #S "]\n\t"      /* a3 */                          \
            "ldr %[w], [%[tw], #8]\n\t"                  /* W^3j */                        \
            "smulwb %[e], %[a], %[w]\n\t"                                                  \
            "smulwt %[f], %[b], %[w]\n\t"                                                  \
            "sub %[e], %[e], %[f]\n\t"                   /* b3r */                         \
            "smulwt %[f], %[a], %[w]\n\t"                                                  \
            "smlawb %[f], %[b], %[w], %[f]\n\t"          /* b3i */                         \
            "add %[a], %[c], %[e]\n\t"                   /* t2 = b1 + b3 */                \
            "sub %[c], %[c], %[e]\n\t"                   /* t3 = b1 - b3 */                \
            "add %[b], %[d], %[f]\n\t"                                                     \
            "sub %[d], %[d], %[f]\n\t"                                                     \
            "ldrd %[e], %[f], [%[p2]]\n\t"               /* a2 */                          \
            "ldr %[w], [%[tw], #4]\n\t"                  /* W^2j */                        \
            "smulwb %[g], %[e], %[w]\n\t"                                                  \
            "smulwt %[h], %[f], %[w]\n\t"                                                  \
            "sub %[g], %[g], %[h]\n\t"                   /* b2r */                         \
            "smulwt %[h], %[e], %[w]\n\t"                                                  \
            "smlawb %[h], %[f], %[w], %[h]\n\t"          /* b2i */                         \
            "ldrd %[e], %[f], [%[p0]]\n\t"               /* a0 */                          \
            "add %[w], %[g], %[e], asr #2\n\t"           /* t0 = a0 / 4 + b2 */            \
            "rsb %[g], %[g], %[e], asr #2\n\t"           /* t1 = a0 / 4 - b2 */            \
            "add %[e], %[h], %[f], asr #2\n\t"                                             \
            "rsb %[h], %[h], %[f], asr #2\n\t"                                             \
            "add %[f], %[g], %[d]\n\t"                   /* X1 = t1 - i t3 */              \
            "sub %[g], %[g], %[d]\n\t"                   /* X3 = t1 + i t3 */              \
            "sub %[d], %[h], %[c]\n\t"                                                     \
            "add %[h], %[h], %[c]\n\t"                                                     \
            "strd %[f], %[d], [%[p0], #" #S "]\n\t"                                        \
            "strd %[g], %[h], [%[p2], #" #S "]\n\t"                                        \
            "add %[f], %[w], %[a]\n\t"                   /* X0 = t0 + t2 */                \
            "sub %[w], %[w], %[a]\n\t"                   /* X2 = t0 - t2 */                \
            "add %[a], %[e], %[b]\n\t"                                                     \
            "sub %[e], %[e], %[b]\n\t"                                                     \
            "strd %[f], %[a], [%[p0]], #8\n\t"                                             \
            "strd %[w], %[e], [%[p2]], #8\n\t"                                             \
            "add %[tw], %[tw], #12\n\t"                                                    \
            "subs %[n], %[n], #1\n\t"                                                      \
            "bne 1b\n\t"                                                                   \
            : [p0] "+r"(p0), [p2] "+r"(p2), [tw] "+r"(tw), [n] "+r"(q), [a] "=&r"(a),      \
              [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d), [e] "=&r"(e), [f] "=&r"(f),        \
              [g] "=&r"(g), [h] "=&r"(h), [w] "=&r"(w)                                     \
            :                                                                              \
            : "cc", "memory");                                                             \
    } while (0)
#endif

/* q radix-4 butterflies j = 0..q-1 of one block; tw: 3 packed twiddles per j. */
static inline void tkws__qfft_r4_block(int32_t *p0, int32_t q, const uint32_t *tw)
{
#if TKWS_ARM_DSP
    switch (q) {  /* the assembly takes the block stride as an immediate */
    case 4:
        TKWS__QR4_ASM(32);
        return;
    case 16:
        TKWS__QR4_ASM(128);
        return;
    case 64:
        TKWS__QR4_ASM(512);
        return;
    default:
        break;
    }
#endif
    int32_t *p1 = p0 + 2 * q, *p2 = p1 + 2 * q, *p3 = p2 + 2 * q;
    for (int32_t j = 0; j < q; ++j, tw += 3, p0 += 2, p1 += 2, p2 += 2, p3 += 2) {
        const int32_t w1 = (int32_t)tw[0], w2 = (int32_t)tw[1], w3 = (int32_t)tw[2];
        const int32_t b0r = p0[0] >> 2, b0i = p0[1] >> 2;
        const int32_t b1r = tkws_smulwb(p1[0], w1) - tkws_smulwt(p1[1], w1);
        const int32_t b1i = tkws_smlawb(p1[1], w1, tkws_smulwt(p1[0], w1));
        const int32_t b2r = tkws_smulwb(p2[0], w2) - tkws_smulwt(p2[1], w2);
        const int32_t b2i = tkws_smlawb(p2[1], w2, tkws_smulwt(p2[0], w2));
        const int32_t b3r = tkws_smulwb(p3[0], w3) - tkws_smulwt(p3[1], w3);
        const int32_t b3i = tkws_smlawb(p3[1], w3, tkws_smulwt(p3[0], w3));
        const int32_t t0r = b0r + b2r, t0i = b0i + b2i;
        const int32_t t1r = b0r - b2r, t1i = b0i - b2i;
        const int32_t t2r = b1r + b3r, t2i = b1i + b3i;
        const int32_t t3r = b1r - b3r, t3i = b1i - b3i;
        p0[0] = t0r + t2r; p0[1] = t0i + t2i;
        p2[0] = t0r - t2r; p2[1] = t0i - t2i;
        p1[0] = t1r + t3i; p1[1] = t1i - t3r;
        p3[0] = t1r - t3i; p3[1] = t1i + t3r;
    }
}

/* Final radix-2 stage (M = 2 * 4^k): X[k] = e / 4 + W_M^k o / 4, X[k + M/2] = e / 4 - ... */
static inline void tkws__qfft_r2_last(int32_t *z, int32_t m, const uint32_t *split_tw)
{
    const int32_t h = m >> 1;
    for (int32_t k = 0; k < h; ++k) {
        int32_t *e = z + 2 * k;
        int32_t *o = z + 2 * (k + h);
        const int32_t w = (int32_t)split_tw[2 * k];  /* W_M^k = W_N^2k */
        const int32_t tr = tkws_smulwb(o[0], w) - tkws_smulwt(o[1], w);
        const int32_t ti = tkws_smlawb(o[1], w, tkws_smulwt(o[0], w));
        const int32_t er = e[0] >> 2, ei = e[1] >> 2;
        e[0] = er + tr; e[1] = ei + ti;
        o[0] = er - tr; o[1] = ei - ti;
    }
}

/* |x|^2 of a scaled spectrum value, as 64 bits (< 2^60: SMULL + SMLAL). */
static inline uint64_t tkws__q_power(int32_t re, int32_t im)
{
    return (uint64_t)((int64_t)re * re + (int64_t)im * im);
}

/* Split step in place: Z (M complex) -> power P[0..M] as 64-bit words lo, hi at u[2k], u[2k+1]
 * (u[2M], u[2M + 1] for P[M]). Returns the OR of the high words (the frame shift is its
 * bit length: P >> sh fits 32 bits for every P). */
static inline uint32_t tkws__q_split_power(const tkws_qlogmel_config *cfg, int32_t *z)
{
    const int32_t m = cfg->n_fft >> 1;
    const uint32_t *tw = cfg->split_tw;
    uint32_t *u = (uint32_t *)z;
    const int32_t x0 = (z[0] + z[1]) >> 1, xm = (z[0] - z[1]) >> 1;
    const uint64_t p0 = tkws__q_power(x0, 0), pm = tkws__q_power(xm, 0);
    uint32_t hi = (uint32_t)(p0 >> 32) | (uint32_t)(pm >> 32);
    u[0] = (uint32_t)p0; u[1] = (uint32_t)(p0 >> 32);
    u[2 * m] = (uint32_t)pm; u[2 * m + 1] = (uint32_t)(pm >> 32);
#if TKWS_ARM_DSP
    {   /* the loop below as Cortex-M4 assembly: 26 instructions per k (the compilers: ~33) */
        int32_t *pa = z + 2, *pb = z + 2 * (m - 1);
        const uint32_t *pw = tw + 1;
        int32_t n = m >> 1;  /* k = 1 .. M/2 */
        int32_t ar, ai, br, bi, w, t1, t2, t3;
        __asm__ volatile(
            "1:\n\t"
            "ldrd %[ar], %[ai], [%[pa]]\n\t"
            "ldrd %[br], %[bi], [%[pb]]\n\t"
            "ldr %[w], [%[pw]], #4\n\t"
            "add %[t1], %[ai], %[bi]\n\t"          /* O = (ai + bi, br - ar) */
            "sub %[t2], %[br], %[ar]\n\t"
            "add %[ar], %[ar], %[br]\n\t"          /* E = (ar + br, ai - bi) */
            "sub %[ai], %[ai], %[bi]\n\t"
            "smulwb %[br], %[t1], %[w]\n\t"        /* T = O W / 4 */
            "smulwt %[bi], %[t2], %[w]\n\t"
            "sub %[br], %[br], %[bi]\n\t"
            "smulwt %[t3], %[t1], %[w]\n\t"
            "smlawb %[t3], %[t2], %[w], %[t3]\n\t"
            "add %[t1], %[br], %[ar], asr #2\n\t"   /* X[k] = E / 4 + T */
            "add %[t2], %[t3], %[ai], asr #2\n\t"
            "rsb %[br], %[br], %[ar], asr #2\n\t"   /* conj X[M - k] = E / 4 - T */
            "rsb %[t3], %[t3], %[ai], asr #2\n\t"
            "smull %[ar], %[ai], %[t1], %[t1]\n\t"  /* P[k] */
            "smlal %[ar], %[ai], %[t2], %[t2]\n\t"
            "smull %[t1], %[t2], %[br], %[br]\n\t"  /* P[M - k] */
            "smlal %[t1], %[t2], %[t3], %[t3]\n\t"
            "strd %[ar], %[ai], [%[pa]], #8\n\t"
            "strd %[t1], %[t2], [%[pb]], #-8\n\t"
            "orr %[hi], %[hi], %[ai]\n\t"
            "orr %[hi], %[hi], %[t2]\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [pa] "+r"(pa), [pb] "+r"(pb), [pw] "+r"(pw), [n] "+r"(n), [hi] "+r"(hi),
              [ar] "=&r"(ar), [ai] "=&r"(ai), [br] "=&r"(br), [bi] "=&r"(bi), [w] "=&r"(w),
              [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)
            :
            : "cc", "memory");
        return hi;
    }
#endif
    for (int32_t k = 1; k <= m - k; ++k) {
        int32_t *a = z + 2 * k;
        int32_t *b = z + 2 * (m - k);
        const int32_t ar = a[0], ai = a[1], br = b[0], bi = b[1];
        const int32_t er = (ar + br) >> 2, ei = (ai - bi) >> 2;
        const int32_t orr = ai + bi, oi = br - ar;   /* O = -i (A - conj B) */
        const int32_t w = (int32_t)tw[k];
        const int32_t tr = tkws_smulwb(orr, w) - tkws_smulwt(oi, w);
        const int32_t ti = tkws_smlawb(oi, w, tkws_smulwt(orr, w));
        const uint64_t p = tkws__q_power(er + tr, ei + ti);
        const uint64_t q = tkws__q_power(er - tr, ei - ti);
        const uint32_t phi = (uint32_t)(p >> 32), qhi = (uint32_t)(q >> 32);
        u[2 * k] = (uint32_t)p; u[2 * k + 1] = phi;
        u[2 * (m - k)] = (uint32_t)q; u[2 * (m - k) + 1] = qhi;
        hi |= phi | qhi;
    }
    return hi;
}

/* Q7.8 ln of mel_int * 2^eoff (mel_int > 0), from CLZ and the log2 table. */
static inline int16_t tkws__q_log(const tkws_qlogmel_config *cfg, uint64_t v, int32_t eoff)
{
    const uint32_t hi = (uint32_t)(v >> 32), lo = (uint32_t)v;
    uint32_t top;  /* v shifted so its leading one is bit 31 (lower bits truncated) */
    int32_t e;     /* floor(log2(v)) */
    if (hi) {
        const uint32_t n = tkws_clz(hi);
        top = (hi << n) | (n ? lo >> (32u - n) : 0u);
        e = 63 - (int32_t)n;
    } else {
        const uint32_t n = tkws_clz(lo);
        top = lo << n;
        e = 31 - (int32_t)n;
    }
    const uint32_t f = (top >> 15) & 0xFFFFu;  /* 16 bits after the leading one */
    const int32_t *tab = cfg->log2_table;
    const int32_t idx = (int32_t)(f >> 10), r = (int32_t)(f & 1023u);
    const int32_t t = tab[idx] + (((tab[idx + 1] - tab[idx]) * r) >> 10);
    const int32_t l2 = (e + eoff) * 65536 + t;          /* log2, Q16 */
    const int32_t out = (int32_t)(((int64_t)l2 * 45426 + (1 << 23)) >> 24);  /* x ln 2, Q8 */
    return (int16_t)tkws_ssat16(out);
}

TKWS_API int32_t tkws_qlogmel_step(const tkws_qlogmel_config *cfg, tkws_qlogmel_state *st,
                                   int16_t *out)
{
    const int32_t hop = cfg->hop, ring_size = cfg->ring_size, wsize = cfg->window_size;
    const int32_t n_ring_blocks = ring_size / hop;

    /* 1: the block's OR into block_or, advance the ring, the frame's gain shift */
    const int16_t *blk = st->ring + st->pos;
    uint32_t bor = 0;
    for (int32_t i = 0; i < hop; ++i) {
        const int32_t x = blk[i];
        bor |= (uint32_t)(x ^ (x >> 15));
    }
    st->block_or[st->pos / hop] = (uint16_t)bor;
    st->pos += hop;
    if (st->pos >= ring_size) {
        st->pos = 0;
    }
    if (st->blocks < cfg->first_block) {
        st->blocks += 1;
    }
    uint32_t ring_or = 0;
    for (int32_t i = 0; i < n_ring_blocks; ++i) {
        ring_or |= st->block_or[i];
    }
    const int32_t g = 15 - tkws_bitlen32(ring_or);     /* 0..15 */

    /* 2: pre-emphasis of the window (the last wsize samples, oldest first) into the FFT */
    int32_t *z = st->work;
    const int32_t scale = 1 << (13 + g), ag = cfg->preemph << g;
    int32_t start = st->pos - wsize;
    if (start < 0) {
        start += ring_size;
    }
    int32_t prev = st->ring[start > 0 ? start - 1 : ring_size - 1];
    const int32_t first = ring_size - start < wsize ? ring_size - start : wsize;
    prev = tkws__q_put(cfg, z, st->ring + start, first, 0, prev, scale, ag);
    if (first < wsize) {
        tkws__q_put(cfg, z, st->ring, wsize - first, first, prev, scale, ag);
    }
    const uint16_t *pos = cfg->pos;
    const int32_t n = cfg->n_fft, m = n >> 1;
    int32_t i = wsize;                          /* zero padding */
    if (i & 1) {
        z[2 * pos[i >> 1] + 1] = 0;
        ++i;
    }
    for (i >>= 1; i < m; ++i) {
        int32_t *d = z + 2 * pos[i];
        d[0] = 0;
        d[1] = 0;
    }

    /* 3: FFT */
    tkws__qfft_first(z, m);
    const uint32_t *tw = cfg->stage_tw;
    const int32_t l4 = cfg->radix2 ? m >> 1 : m;
    for (int32_t l = 16; l <= l4; l *= 4) {
        const int32_t q = l >> 2;
        for (int32_t b = 0; b < m; b += l) {
            tkws__qfft_r4_block(z + 2 * b, q, tw);
        }
        tw += 3 * q;
    }
    if (cfg->radix2) {
        tkws__qfft_r2_last(z, m, cfg->split_tw);
    }

    /* 4: power (64 bits, in place), the frame shift sh (P >> sh fits 32 bits), then P >> sh
     * in place: word k from words 2k, 2k + 1 */
    const int32_t sh = tkws_bitlen32(tkws__q_split_power(cfg, z));
    uint32_t *p = (uint32_t *)z;
    if (sh) {
        const int32_t up = 32 - sh;
        int32_t k = 0;
#if TKWS_ARM_DSP
        {   /* two bins per 11 instructions (the compilers: ~15) */
            const uint32_t *src = p;
            uint32_t *dst = p;
            int32_t pairs = (m + 1) >> 1;
            uint32_t a, b, c, d;
            __asm__ volatile(
                "1:\n\t"
                "ldrd %[a], %[b], [%[src]], #8\n\t"  /* (ldm needs ascending registers) */
                "ldrd %[c], %[d], [%[src]], #8\n\t"
                "lsr %[a], %[a], %[sh]\n\t"
                "lsl %[b], %[b], %[up]\n\t"
                "orr %[a], %[a], %[b]\n\t"
                "lsr %[c], %[c], %[sh]\n\t"
                "lsl %[d], %[d], %[up]\n\t"
                "orr %[c], %[c], %[d]\n\t"
                "strd %[a], %[c], [%[dst]], #8\n\t"
                "subs %[n], %[n], #1\n\t"
                "bne 1b\n\t"
                : [src] "+r"(src), [dst] "+r"(dst), [n] "+r"(pairs), [a] "=&r"(a), [b] "=&r"(b),
                  [c] "=&r"(c), [d] "=&r"(d)
                : [sh] "r"(sh), [up] "r"(up)
                : "cc", "memory");
            k = 2 * ((m + 1) >> 1);
        }
#endif
        for (; k + 2 <= m + 1; k += 2) {
            const uint32_t *src = p + 2 * k;
            const uint32_t a = (src[0] >> sh) | (src[1] << up);
            const uint32_t b = (src[2] >> sh) | (src[3] << up);
            p[k] = a;
            p[k + 1] = b;
        }
        for (; k <= m; ++k) {
            p[k] = (p[2 * k] >> sh) | (p[2 * k + 1] << up);
        }
    } else {
        for (int32_t k = 0; k <= m; ++k) {
            p[k] = p[2 * k];
        }
    }

    /* 5-6: sparse mel filters (64-bit accumulators: UMLAL), log */
    const uint16_t *w = cfg->mel_weights;
    const uint64_t dq = cfg->delta_q >> sh;
    const int32_t eoff = sh - 2 * g + cfg->exp0;
    for (int32_t j = 0; j < cfg->n_mels; ++j) {
        const uint32_t *pj = p + cfg->mel_start[j];
        const int32_t len = cfg->mel_len[j];
        uint64_t acc = dq;
#if TKWS_ARM_DSP
        int32_t pairs = len >> 1;
        if (pairs) {  /* two UMLALs per 7 instructions (the compilers: ~5 per MAC) */
            uint32_t lo = (uint32_t)acc, hi = (uint32_t)(acc >> 32), w0, w1, q0, q1;
            __asm__ volatile(
                "1:\n\t"
                "ldrh %[w0], [%[w]], #2\n\t"
                "ldrh %[w1], [%[w]], #2\n\t"
                "ldrd %[q0], %[q1], [%[p]], #8\n\t"
                "umlal %[lo], %[hi], %[w0], %[q0]\n\t"
                "umlal %[lo], %[hi], %[w1], %[q1]\n\t"
                "subs %[n], %[n], #1\n\t"
                "bne 1b\n\t"
                : [lo] "+r"(lo), [hi] "+r"(hi), [w] "+r"(w), [p] "+r"(pj), [n] "+r"(pairs),
                  [w0] "=&r"(w0), [w1] "=&r"(w1), [q0] "=&r"(q0), [q1] "=&r"(q1)
                :
                : "cc", "memory");
            acc = ((uint64_t)hi << 32) | lo;
        }
        if (len & 1) {
            acc += (uint64_t)*w++ * *pj;
        }
#else
        for (int32_t t = 0; t < len; ++t) {
            acc += (uint64_t)w[t] * pj[t];
        }
        w += len;
#endif
        out[j] = acc ? tkws__q_log(cfg, acc, eoff) : (int16_t)cfg->log_floor;
    }
    return st->blocks >= cfg->first_block;
}

typedef union {
    float f;
    uint32_t u;
} tkws__f32_bits;

TKWS_API int16_t tkws_pcm16_from_float(float x)
{
    tkws__f32_bits b;
    b.f = x;
    const uint32_t a = b.u << 1;                 /* |x|'s bits, exponent on top */
    const uint32_t m = (b.u << 8) | 0x80000000u; /* 1.mantissa at bit 31 */
    const int32_t k = 157 - (int32_t)(a >> 24);  /* 2 |x| = m >> k (truncated) */
    int32_t r;
    if (a > 0xFF000000u) {
        return 0;                                /* NaN */
    }
    if (k >= 32) {
        r = 0;                                   /* |x| < 0.5 */
    } else if (k < 16) {
        r = 32768;                               /* |x| >= 32768, infinity */
    } else {
        r = (int32_t)(((m >> k) + 1u) >> 1);     /* round half away from zero */
    }
    return (int16_t)tkws_ssat16((int32_t)b.u < 0 ? -r : r);
}

TKWS_API float tkws_float_from_q8(int16_t q)
{
    tkws__f32_bits b;
    const uint32_t a = (uint32_t)(q < 0 ? -(int32_t)q : (int32_t)q);
    if (!a) {
        b.u = 0;
    } else {
        const uint32_t n = tkws_clz(a);         /* 16 .. 31 */
        const uint32_t mant = ((a << n) << 1) >> 9;
        b.u = (q < 0 ? 0x80000000u : 0u) | ((150u - n) << 23) | mant;
    }
    return b.f;
}
