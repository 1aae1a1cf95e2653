/*
 * tkws_dsp.h - Cortex-M4 DSP-extension helpers (CMSIS-style), with portable C beside them.
 *
 * On an ARMv7E-M core (every Cortex-M4, with or without FPU; __ARM_FEATURE_DSP) each
 * helper is one instruction (inline assembly: GCC 12's arm_acle.h lacks __smulwb). Elsewhere
 * (host tests, TKWS_NO_ASM) the portable C computes the same bits; the host parity tests
 * compare the portable C with the Python reference, and the device tests compare the
 * instructions with it. Right shifts of negative values are arithmetic (floor), as on
 * every compiler tinykws supports (GCC, clang).
 *
 *   tkws_smulwb(a, b)       (a * (int16)b[15:0]) >> 16           SMULWB
 *   tkws_smulwt(a, b)       (a * (int16)b[31:16]) >> 16          SMULWT
 *   tkws_smlawb(a, b, acc)  acc + ((a * (int16)b[15:0]) >> 16)   SMLAWB
 *   tkws_smlad(a, b, acc)   acc + a.lo * b.lo + a.hi * b.hi      SMLAD  (16-bit halves)
 *   tkws_smulbb(a, b)       (int16)a[15:0] * (int16)b[15:0]      SMULBB
 *   tkws_ssat16(x)          x clipped to [-32768, 32767]          SSAT #16
 *   tkws_clz(x)             leading zeros of x, 32 for 0          CLZ
 */
#ifndef TKWS_DSP_H
#define TKWS_DSP_H

#include <stdint.h>

#if !defined(TKWS_NO_ASM) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__ARM_FEATURE_DSP)
#define TKWS_ARM_DSP 1
#else
#define TKWS_ARM_DSP 0
#endif

#if TKWS_ARM_DSP

static inline int32_t tkws_smulwb(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smulwb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline int32_t tkws_smulwt(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smulwt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline int32_t tkws_smlawb(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlawb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

static inline int32_t tkws_smlad(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

static inline int32_t tkws_smulbb(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smulbb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline int32_t tkws_ssat16(int32_t x)
{
    int32_t r;
    __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(x));
    return r;
}

static inline uint32_t tkws_clz(uint32_t x)
{
    uint32_t r;
    __asm__("clz %0, %1" : "=r"(r) : "r"(x));
    return r;
}

#else /* portable C: the same results */

static inline int32_t tkws__lo16(int32_t b) { return (int32_t)(int16_t)(uint16_t)((uint32_t)b & 0xFFFFu); }
static inline int32_t tkws__hi16(int32_t b) { return (int32_t)(int16_t)(uint16_t)((uint32_t)b >> 16); }

static inline int32_t tkws_smulwb(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * tkws__lo16(b)) >> 16);
}

static inline int32_t tkws_smulwt(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * tkws__hi16(b)) >> 16);
}

static inline int32_t tkws_smlawb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)tkws_smulwb(a, b));
}

static inline int32_t tkws_smlad(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tkws__lo16(a) * tkws__lo16(b)) +
                     (uint32_t)(tkws__hi16(a) * tkws__hi16(b)));
}

static inline int32_t tkws_smulbb(int32_t a, int32_t b)
{
    return tkws__lo16(a) * tkws__lo16(b);
}

static inline int32_t tkws_ssat16(int32_t x)
{
    return x < -32768 ? -32768 : (x > 32767 ? 32767 : x);
}

static inline uint32_t tkws_clz(uint32_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return x ? (uint32_t)__builtin_clz(x) : 32u;
#else
    uint32_t n = 0;
    if (!x) {
        return 32u;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

#endif /* TKWS_ARM_DSP */

/* Bits needed for x (0 for 0): 32 - clz. */
static inline int32_t tkws_bitlen32(uint32_t x)
{
    return 32 - (int32_t)tkws_clz(x);
}

#endif /* TKWS_DSP_H */
