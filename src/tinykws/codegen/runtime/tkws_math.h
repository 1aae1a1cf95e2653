/*
 * tkws_math.h - fast single-precision exp, log, tanh and sigmoid without libm.
 *
 * Maximum errors, asserted by tests/test_codegen_runtime.py against numpy float64 over
 * dense grids (measured values in brackets; float32 itself rounds at 6e-8 relative):
 *   tkws_expf      relative error <= 3e-7 [2.4e-7] for -87 <= x <= 88;
 *                  x < -87.3 gives ~1e-38 (not 0), x > 88 gives e^88 = 1.65e38
 *   tkws_logf      absolute error <= 6e-8 [4.2e-8] for x in [0.5, 2],
 *                  relative error <= 1.2e-7 [8.3e-8] elsewhere (subnormals included);
 *                  log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, as libm
 *   tkws_tanhf     absolute error <= 2.5e-7 [2.0e-7]; exactly +-1 for |x| >= 10
 *   tkws_sigmoidf  absolute error <= 1.5e-7 [9.7e-8]
 * NaN inputs give unspecified results (the models never produce them).
 *
 * Define TKWS_USE_LIBM to use libm's expf/logf/tanhf instead.
 */
#ifndef TKWS_MATH_H
#define TKWS_MATH_H

#include "tkws_common.h"

/* ---- internal building blocks, shared with tkws_rnn.c (static inline everywhere) ---- */

#if defined(TKWS_USE_LIBM)
#include <math.h>

static inline float tkws__clamp(float x, float lo, float hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

static inline float tkws__exp_core(float x) { return expf(x); }
static inline float tkws__logf_normal(float x) { return logf(x); }
static inline float tkws__exp_neg_core(float x) { return expf(-x); }

#else

/* Reinterpret float <-> uint32 (union punning is defined behaviour in C99 TC3). */
static inline float tkws__from_bits(uint32_t u)
{
    union { uint32_t u; float f; } v;
    v.u = u;
    return v.f;
}

static inline uint32_t tkws__to_bits(float f)
{
    union { uint32_t u; float f; } v;
    v.f = f;
    return v.u;
}

/* x limited to [lo, hi]. On the Cortex-M4 FPU: two compare + IT + move pairs in inline
 * assembly, so the compiler can neither turn the clamp into branches nor constant-fold
 * the clamped paths into separate copies of the caller (which costs more than it saves). */
static inline float tkws__clamp(float x, float lo, float hi)
{
#if TKWS_ARM_FPU_ASM
    __asm__("vcmpe.f32 %[x], %[lo]\n\t"
            "vmrs APSR_nzcv, fpscr\n\t"
            "it lt\n\t"
            "vmovlt.f32 %[x], %[lo]\n\t"
            "vcmpe.f32 %[x], %[hi]\n\t"
            "vmrs APSR_nzcv, fpscr\n\t"
            "it gt\n\t"
            "vmovgt.f32 %[x], %[hi]"
            : [x] "+&t"(x)
            : [lo] "t"(lo), [hi] "t"(hi)
            : "cc");
    return x;
#else
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
#endif
}

#define TKWS__LOG2E 1.44269504f
#define TKWS__LN2_HI 0.693145751953125f  /* 9 trailing zero bits: n * LN2_HI is exact */
#define TKWS__LN2_LO 1.42860677e-06f     /* ln 2 - LN2_HI */
#define TKWS__SHIFTER 12582912.0f        /* 1.5 * 2^23: t = y + SHIFTER rounds y to an integer */

/* 2^n from t = n + SHIFTER (|n| <= 127 - 1): the low mantissa bits of t are 0x400000 + n,
 * and 0x4B400000 << 23 vanishes, so (bits(t) + 127) << 23 is 2^n's bit pattern. */
static inline float tkws__pow2_from_shifted(float t)
{
    return tkws__from_bits((tkws__to_bits(t) + 127u) << 23);
}

/* ln(2^k m) for u = bits(2^-k x) of a positive normal float (k: extra exponent). */
static inline float tkws__log_core(uint32_t u, int32_t k)
{
    u += 0x3F800000u - 0x3F3504F3u;             /* so the exponent rounds at sqrt(2) */
    k += (int32_t)(u >> 23) - 127;
    u = (u & 0x007FFFFFu) + 0x3F3504F3u;        /* m in [sqrt(1/2), sqrt(2)) */
    const float f = tkws__from_bits(u) - 1.0f;
    const float s = f / (2.0f + f);              /* ln m = 2 atanh(s) */
    const float z = s * s;
    const float r = z * (0.666666667f + z * (0.4f + z * (0.285714286f + z * 0.222222222f)));
    const float kf = (float)k;
    return kf * TKWS__LN2_HI + ((f - s * (f - r)) + kf * TKWS__LN2_LO);
}

/* ln x for a positive normal float x (no checks: the featurizer's mel + delta). */
static inline float tkws__logf_normal(float x)
{
    return tkws__log_core(tkws__to_bits(x), 0);
}

/* e^x for x in [-87.3, 88] (callers clamp): x = n ln2 + r, |r| <= ln2 / 2. */
static inline float tkws__exp_core(float x)
{
    const float t = x * TKWS__LOG2E + TKWS__SHIFTER;
    const float n = t - TKWS__SHIFTER;
    float r = x - n * TKWS__LN2_HI;
    r = r - n * TKWS__LN2_LO;
    const float p = 1.00000012f + r * (0.999999642f + r * (0.499989003f +
                    r * (0.166676626f + r * (0.041915033f + r * 0.00829171762f))));
    return p * tkws__pow2_from_shifted(t);
}

/* e^-x for -x in [-87.3, 88] (callers clamp): the same steps written in x, so no
 * negation is needed (r' = -r, the polynomial's odd coefficients change sign). */
static inline float tkws__exp_neg_core(float x)
{
    const float t = x * -TKWS__LOG2E + TKWS__SHIFTER;
    const float n = t - TKWS__SHIFTER;         /* round(-x log2 e) */
    float rn = x + n * TKWS__LN2_HI;            /* rn = -r */
    rn = rn + n * TKWS__LN2_LO;
    const float p = 1.00000012f - rn * (0.999999642f - rn * (0.499989003f -
                    rn * (0.166676626f - rn * (0.041915033f - rn * 0.00829171762f))));
    return p * tkws__pow2_from_shifted(t);
}

#endif /* TKWS_USE_LIBM */

/* ---- public functions ---- */

TKWS_API float tkws_expf(float x);
TKWS_API float tkws_logf(float x);
TKWS_API float tkws_tanhf(float x);
TKWS_API float tkws_sigmoidf(float x);

#endif /* TKWS_MATH_H */
