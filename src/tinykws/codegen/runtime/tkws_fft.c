/*
 * tkws_fft.c - real FFT via a radix-4 complex FFT (see tkws_fft.h).
 *
 * Radix-4 DIT butterfly over a block of L = 4q outputs, offset j < q, with
 * b_r = W_L^{rj} Y_r[j] (Y_r: the DFT of the r-th decimated subsequence, stored at
 * offset r q of the block):
 *   X[j]      = (b0 + b2) + (b1 + b3)      X[j + 2q] = (b0 + b2) - (b1 + b3)
 *   X[j + q]  = (b0 - b2) - i (b1 - b3)    X[j + 3q] = (b0 - b2) + i (b1 - b3)
 * The twiddles of each stage are stored contiguously (tw4), so the Cortex-M4 version
 * loads them with one vldmia per butterfly.
 */
#include "tkws_fft.h"

/* A pair of floats copied as one unit (ldrd/strd on the Cortex-M4). */
typedef struct {
    float a, b;
} tkws__pair;

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
        const int32_t pairs = i < end ? (end - i) >> 1 : 0;
        const uint16_t *pp = pos + (i >> 1);
        const uint16_t *pend = pp + pairs;
        for (; pp < pend; ++pp, src += 2) {
            *(tkws__pair *)(z + 2 * *pp) = *(const tkws__pair *)src;
        }
        i += 2 * pairs;
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
    const tkws__pair zero = {0.0f, 0.0f};
    for (i >>= 1; i < m; ++i) {
        *(tkws__pair *)(z + 2 * pos[i]) = zero;
    }
}

#if TKWS_ARM_FPU_ASM
/* First radix-4 stage (L = 4, all twiddles 1) over `count` blocks of 4 complex values:
 * one vldmia, 16 additions, one vstmia per block. */
static inline void tkws__fft_stage4_first(float *z, int32_t m)
{
    int32_t count = m >> 2;
    __asm__ volatile(
        "1:\n\t"
        "vldmia %[p], {s0-s7}\n\t"
        "vadd.f32 s8, s0, s4\n\t"      /* t0 = a0 + a2 */
        "vadd.f32 s9, s1, s5\n\t"
        "vsub.f32 s10, s0, s4\n\t"     /* t1 = a0 - a2 */
        "vsub.f32 s11, s1, s5\n\t"
        "vadd.f32 s12, s2, s6\n\t"     /* t2 = a1 + a3 */
        "vadd.f32 s13, s3, s7\n\t"
        "vsub.f32 s14, s2, s6\n\t"     /* t3 = a1 - a3 */
        "vsub.f32 s15, s3, s7\n\t"
        "vadd.f32 s0, s8, s12\n\t"     /* X0 = t0 + t2 */
        "vadd.f32 s1, s9, s13\n\t"
        "vadd.f32 s2, s10, s15\n\t"    /* X1 = t1 - i t3 */
        "vsub.f32 s3, s11, s14\n\t"
        "vsub.f32 s4, s8, s12\n\t"     /* X2 = t0 - t2 */
        "vsub.f32 s5, s9, s13\n\t"
        "vsub.f32 s6, s10, s15\n\t"    /* X3 = t1 + i t3 */
        "vadd.f32 s7, s11, s14\n\t"
        "vstmia %[p]!, {s0-s7}\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [p] "+r"(z), [n] "+r"(count)
        :
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
          "s13", "s14", "s15", "cc", "memory");
}

/* q radix-4 butterflies j = 0..q-1 of one block: inputs p0[j], p1[j] = p0[j + q], ...;
 * twiddles tw[6 j ..] = (W^j, W^2j, W^3j). 39 instructions per butterfly. */
static inline void tkws__fft_r4_block(float *p0, int32_t q, const float *tw)
{
    float *p1 = p0 + 2 * q, *p2 = p1 + 2 * q, *p3 = p2 + 2 * q;
    __asm__ volatile(
        "1:\n\t"
        "vldmia %[tw]!, {s8-s13}\n\t"
        "vldmia %[p1], {s2-s3}\n\t"
        "vldmia %[p2], {s4-s5}\n\t"
        "vldmia %[p3], {s6-s7}\n\t"
        "vldmia %[p0], {s0-s1}\n\t"
        "vmul.f32 s14, s2, s8\n\t"     /* b1 = a1 W^j */
        "vfms.f32 s14, s3, s9\n\t"
        "vmul.f32 s15, s2, s9\n\t"
        "vfma.f32 s15, s3, s8\n\t"
        "vmul.f32 s16, s4, s10\n\t"    /* b2 = a2 W^2j */
        "vfms.f32 s16, s5, s11\n\t"
        "vmul.f32 s17, s4, s11\n\t"
        "vfma.f32 s17, s5, s10\n\t"
        "vmul.f32 s18, s6, s12\n\t"    /* b3 = a3 W^3j */
        "vfms.f32 s18, s7, s13\n\t"
        "vmul.f32 s19, s6, s13\n\t"
        "vfma.f32 s19, s7, s12\n\t"
        "vadd.f32 s20, s0, s16\n\t"    /* t0 = a0 + b2 */
        "vadd.f32 s21, s1, s17\n\t"
        "vsub.f32 s22, s0, s16\n\t"    /* t1 = a0 - b2 */
        "vsub.f32 s23, s1, s17\n\t"
        "vadd.f32 s24, s14, s18\n\t"   /* t2 = b1 + b3 */
        "vadd.f32 s25, s15, s19\n\t"
        "vsub.f32 s26, s14, s18\n\t"   /* t3 = b1 - b3 */
        "vsub.f32 s27, s15, s19\n\t"
        "vadd.f32 s0, s20, s24\n\t"    /* X0 = t0 + t2 */
        "vadd.f32 s1, s21, s25\n\t"
        "vadd.f32 s2, s22, s27\n\t"    /* X1 = t1 - i t3 */
        "vsub.f32 s3, s23, s26\n\t"
        "vsub.f32 s4, s20, s24\n\t"    /* X2 = t0 - t2 */
        "vsub.f32 s5, s21, s25\n\t"
        "vsub.f32 s6, s22, s27\n\t"    /* X3 = t1 + i t3 */
        "vadd.f32 s7, s23, s26\n\t"
        "vstmia %[p0]!, {s0-s1}\n\t"
        "vstmia %[p1]!, {s2-s3}\n\t"
        "vstmia %[p2]!, {s4-s5}\n\t"
        "vstmia %[p3]!, {s6-s7}\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3), [tw] "+r"(tw),
          [n] "+r"(q)
        :
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
          "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24",
          "s25", "s26", "s27", "cc", "memory");
}
#else
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

/* q radix-4 butterflies of one block (see the assembly version above). */
static inline void tkws__fft_r4_block(float *p0, int32_t q, const float *tw)
{
    float *p1 = p0 + 2 * q, *p2 = p1 + 2 * q, *p3 = p2 + 2 * q;
    for (int32_t j = 0; j < q; ++j, tw += 6, p0 += 2, p1 += 2, p2 += 2, p3 += 2) {
        const float b1r = p1[0] * tw[0] - p1[1] * tw[1], b1i = p1[0] * tw[1] + p1[1] * tw[0];
        const float b2r = p2[0] * tw[2] - p2[1] * tw[3], b2i = p2[0] * tw[3] + p2[1] * tw[2];
        const float b3r = p3[0] * tw[4] - p3[1] * tw[5], b3i = p3[0] * tw[5] + p3[1] * tw[4];
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
#endif

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
    const int32_t m = plan->n >> 1;
    int32_t l4 = 1;                          /* largest power of 4 that divides m */
    while (l4 * 4 <= m && (m % (l4 * 4)) == 0) {
        l4 *= 4;
    }
    /* radix-4 stages build DFTs of size l4 (= m, or m / 2 followed by one radix-2 stage) */
    if (l4 >= 4) {
        tkws__fft_stage4_first(z, m);
    }
    const float *tw4 = plan->tw4;            /* stage after stage: q entries of 6 floats */
    for (int32_t l = 16; l <= l4; l *= 4) {
        const int32_t q = l >> 2;
        for (int32_t b = 0; b < m; b += l) {
            tkws__fft_r4_block(z + 2 * b, q, tw4);
        }
        tw4 += 6 * q;
    }
    if (l4 != m) {
        tkws__fft_stage2_last(z, m, plan->tw);
    }
}

/* Split step: for A = Z[k], B = conj(Z[M-k]): E = (A + B), O = -i (A - B), T = W_N^k O;
 * 2 X[k] = E + T and 2 X[M-k] = conj(E - T). */
TKWS_API void tkws_rfft_power4(const tkws_fft_plan *plan, const float *z, float *power)
{
    const int32_t m = plan->n >> 1;
    const float *tw = plan->tw;
    const float x0 = z[0] + z[1], xm = z[0] - z[1];
    power[0] = 4.0f * (x0 * x0);
    power[m] = 4.0f * (xm * xm);
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
        power[k] = pr * pr + pi * pi;
        power[m - k] = qr * qr + qi * qi;
    }
}

TKWS_API void tkws_rfft_power(const tkws_fft_plan *plan, const float *z, float *power,
                              float scale)
{
    const int32_t m = plan->n >> 1;
    const float s4 = 0.25f * scale;
    tkws_rfft_power4(plan, z, power);
    for (int32_t k = 0; k <= m; ++k) {
        power[k] *= s4;
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
