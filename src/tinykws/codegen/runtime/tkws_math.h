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

TKWS_API float tkws_expf(float x);
TKWS_API float tkws_logf(float x);
TKWS_API float tkws_tanhf(float x);
TKWS_API float tkws_sigmoidf(float x);

#endif /* TKWS_MATH_H */
