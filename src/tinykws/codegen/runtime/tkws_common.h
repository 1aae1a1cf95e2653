/*
 * tkws_common.h - shared definitions of the tinykws C runtime.
 *
 * The runtime is plain C99: no heap, no libm unless TKWS_USE_LIBM is defined, single
 * precision only (the Cortex-M4 FPU has no double unit).
 *
 * TKWS_API: how runtime functions are declared. Generated featurizer.c / model.c
 * #include the runtime .c files into ONE translation unit and define TKWS_STATIC_RUNTIME,
 * so every runtime function is `static inline`: the compiler may inline it into the glue,
 * and featurizer.S and model.S can be linked into one firmware without duplicate symbols.
 * Compiled on their own (tests, a library build), the functions are ordinary externs.
 */
#ifndef TKWS_COMMON_H
#define TKWS_COMMON_H

#include <stdint.h>

#if defined(TKWS_STATIC_RUNTIME)
#define TKWS_API static inline
#else
#define TKWS_API
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TKWS_RESTRICT __restrict__
#else
#define TKWS_RESTRICT
#endif

/* Hand-written Cortex-M4 FPU kernels (inline assembly) when compiling for an ARMv7E-M with
 * a single-precision FPU; the portable C loops otherwise (host, soft float, TKWS_NO_ASM). */
#if !defined(TKWS_NO_ASM) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && ((__ARM_FP & 4) != 0)
#define TKWS_ARM_FPU_ASM 1
#else
#define TKWS_ARM_FPU_ASM 0
#endif

/* GCC turns zeroing and copy loops into calls to memset / memcpy, which a bare-metal
 * image without a C library lacks; keep them loops (clang does not do this for
 * freestanding targets). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#endif /* TKWS_COMMON_H */
