/*
 * tkws_math.c - fast single-precision exp, log, tanh, sigmoid (see tkws_math.h for errors).
 *
 * exp:  x = n ln2 + r with n = round(x / ln2) (the 1.5 * 2^23 "shifter" rounds without a
 *       branch), |r| <= ln2 / 2, e^r by a degree-5 polynomial fitted for relative error
 *       (7.7e-8 before rounding), 2^n put straight into the exponent bits.
 * log:  x = 2^k m with m in [sqrt(1/2), sqrt(2)) (bit manipulation), ln m = 2 atanh(s),
 *       s = (m - 1) / (m + 1), |s| <= 0.1716, odd series to s^9 (truncation 7e-10).
 * tanh: 1 - 2 / (e^{2x} + 1), x clamped to +-10 (tanh(10) rounds to 1 in float).
 * sigmoid: 1 / (1 + e^{-x}), x clamped to [-88, 87] (exp's range).
 * Every constant is a float literal: no double arithmetic anywhere.
 */
#include "tkws_math.h"

#if defined(TKWS_USE_LIBM)

TKWS_API float tkws_expf(float x) { return expf(x); }
TKWS_API float tkws_logf(float x) { return logf(x); }
TKWS_API float tkws_tanhf(float x) { return tanhf(x); }
TKWS_API float tkws_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

#else

TKWS_API float tkws_expf(float x)
{
    return tkws__exp_core(tkws__clamp(x, -87.3f, 88.0f));
}

TKWS_API float tkws_logf(float x)
{
    uint32_t u = tkws__to_bits(x);
    int32_t k = 0;
    if (u - 0x00800000u >= 0x7F000000u) {      /* zero, subnormal, negative, inf or NaN */
        if ((u << 1) == 0u) {
            return tkws__from_bits(0xFF800000u); /* log(+-0) = -inf */
        }
        if (u >> 31) {
            return tkws__from_bits(0x7FC00000u); /* log(negative) = NaN */
        }
        if (u >= 0x7F800000u) {
            return x;                            /* +inf or NaN */
        }
        x *= 33554432.0f;                        /* subnormal: scale by 2^25 */
        k = -25;
        u = tkws__to_bits(x);
    }
    return tkws__log_core(u, k);
}

TKWS_API float tkws_tanhf(float x)
{
    return 1.0f - 2.0f / (tkws__exp_core(2.0f * tkws__clamp(x, -10.0f, 10.0f)) + 1.0f);
}

TKWS_API float tkws_sigmoidf(float x)
{
    return 1.0f / (1.0f + tkws__exp_neg_core(tkws__clamp(x, -87.0f, 87.0f)));
}

#endif /* TKWS_USE_LIBM */
