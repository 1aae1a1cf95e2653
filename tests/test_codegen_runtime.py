"""The hand-written C runtime on the host: math approximation errors and the real FFT.

The stated maximum errors (tkws_math.h and docs/architecture.md) are asserted here over
dense grids against numpy float64; the FFT is checked against numpy.fft.rfft.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from codegen_host import build_shared, fptr
from tinykws.codegen.glue import RUNTIME_FILES, runtime_dir
from tinykws.codegen.featurizer import fft_plan_c
from tinykws.feature_tables import fft_positions

FFT_SIZES = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# Maximum errors stated in tkws_math.h / docs (the fast, libm-free versions).
EXP_MAX_REL = 3e-7
LOG_MAX_ABS_NEAR_1 = 6e-8  # x in [0.5, 2]
LOG_MAX_REL = 1.2e-7
TANH_MAX_ABS = 2.5e-7
SIGMOID_MAX_ABS = 1.5e-7


def _shim() -> str:
    """Test entry points: elementwise math over arrays, FFTs of several sizes."""
    parts = ['#include "tkws_math.h"\n#include "tkws_fft.h"\n']
    for n in FFT_SIZES:
        parts.append(fft_plan_c(n, f"p{n}"))
    cases = "".join(f"    case {n}: return &p{n}_fft;\n" for n in FFT_SIZES)
    parts.append(
        f"""
static const tkws_fft_plan *plan_for(int32_t n)
{{
    switch (n) {{
{cases}    default: return 0;
    }}
}}

void t_map(int32_t op, const float *x, float *y, int32_t n)
{{
    for (int32_t i = 0; i < n; ++i) {{
        y[i] = op == 0 ? tkws_expf(x[i]) : op == 1 ? tkws_logf(x[i])
             : op == 2 ? tkws_tanhf(x[i]) : tkws_sigmoidf(x[i]);
    }}
}}

/* x [count] real samples (count <= n, in two pieces split at `split`), zero padded to n;
 * spec [2 (n/2 + 1)], power [n/2 + 1] = |X|^2 * scale. */
int32_t t_rfft(int32_t n, const float *x, int32_t count, int32_t split, const float *win,
               float *work, float *spec, float *power, float scale)
{{
    const tkws_fft_plan *p = plan_for(n);
    if (!p) {{
        return -1;
    }}
    for (int32_t i = 0; i < n; ++i) {{
        work[i] = 12345.0f;  /* garbage the loader must overwrite */
    }}
    tkws_rfft_put(p, work, x, win, 0, split);
    tkws_rfft_put(p, work, x + split, win, split, count - split);
    tkws_rfft_zero_from(p, work, count);
    tkws_cfft(p, work);
    tkws_rfft_spectrum(p, work, spec);
    tkws_rfft_power(p, work, power, scale);
    return 0;
}}
"""
    )
    return "".join(parts)


@pytest.fixture(scope="module", params=["fast", "libm"])
def lib(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"runtime_{request.param}")
    (d / "shim.c").write_text(_shim())
    rt = runtime_dir()
    srcs = [d / "shim.c"] + [rt / f for f in RUNTIME_FILES if f.endswith(".c")]
    defines = ["TKWS_USE_LIBM"] if request.param == "libm" else []
    lib = build_shared(srcs, d / "libtkws.so", include_dirs=[rt], defines=defines)
    lib.t_rfft.restype = ctypes.c_int32
    lib.t_rfft.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                           ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_float]
    lib.kind = request.param
    return lib


def _map(lib, op: int, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.empty_like(x)
    lib.t_map(ctypes.c_int32(op), fptr(x), fptr(y), ctypes.c_int32(x.size))
    return y.astype(np.float64)


def _dense(lo: float, hi: float, n: int = 400_001) -> np.ndarray:
    return np.unique(np.linspace(lo, hi, n).astype(np.float32))


def test_expf_max_relative_error(lib):
    x = _dense(-87.0, 88.0, 1_000_001)
    y = _map(lib, 0, x)
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(y - ref) / ref
    assert rel.max() <= EXP_MAX_REL, f"max rel error {rel.max():.3g} at x={x[rel.argmax()]}"


def test_expf_saturates_outside_range(lib):
    y = _map(lib, 0, np.array([-200.0, -100.0, 100.0, 1e30], dtype=np.float32))
    assert y[0] < 1e-37 and y[1] < 1e-37
    assert np.all(y[2:] > 1e38)  # huge or +inf, never NaN


def test_logf_max_error(lib):
    near = _dense(0.5, 2.0)
    err = np.abs(_map(lib, 1, near) - np.log(near.astype(np.float64)))
    assert err.max() <= LOG_MAX_ABS_NEAR_1, f"max abs error near 1: {err.max():.3g}"
    # every binade from subnormals (ln 2^-140) to 3e38, log-spaced
    x = np.unique(np.exp(np.linspace(np.log(1e-42), np.log(3e38), 1_000_001)).astype(np.float32))
    x = x[x > 0]
    ref = np.log(x.astype(np.float64))
    y = _map(lib, 1, x)
    far = np.abs(ref) > 0.7
    rel = np.abs(y[far] - ref[far]) / np.abs(ref[far])
    assert rel.max() <= LOG_MAX_REL, f"max rel error {rel.max():.3g} at x={x[far][rel.argmax()]}"
    # the featurizer's floor: ln(2.220446049250313e-16)
    assert _map(lib, 1, np.array([2.220446049250313e-16], np.float32))[0] == pytest.approx(
        np.log(np.float64(np.float32(2.220446049250313e-16))), abs=1e-5)


def test_logf_special_values(lib):
    y = _map(lib, 1, np.array([0.0, -1.0, np.inf, 1.0], dtype=np.float32))
    assert y[0] == -np.inf and np.isnan(y[1]) and y[2] == np.inf and y[3] == 0.0


def test_tanhf_max_abs_error(lib):
    x = _dense(-12.0, 12.0, 1_000_001)
    err = np.abs(_map(lib, 2, x) - np.tanh(x.astype(np.float64)))
    assert err.max() <= TANH_MAX_ABS, f"max abs error {err.max():.3g} at x={x[err.argmax()]}"
    big = _map(lib, 2, np.array([-1e30, -50.0, 50.0, 1e30], dtype=np.float32))
    assert list(big) == [-1.0, -1.0, 1.0, 1.0]


def test_sigmoidf_max_abs_error(lib):
    x = _dense(-100.0, 100.0, 1_000_001)
    ref = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    err = np.abs(_map(lib, 3, x) - ref)
    assert err.max() <= SIGMOID_MAX_ABS, f"max abs error {err.max():.3g} at x={x[err.argmax()]}"
    ends = _map(lib, 3, np.array([-1e30, 1e30], dtype=np.float32))
    assert ends[0] < 1e-37 and ends[1] == 1.0


def _rfft(lib, n, x, split, win=None, scale=1.0):
    x = np.ascontiguousarray(x, dtype=np.float32)
    work = np.empty(n, np.float32)
    spec = np.empty(2 * (n // 2 + 1), np.float32)
    power = np.empty(n // 2 + 1, np.float32)
    w = None if win is None else np.ascontiguousarray(win, dtype=np.float32)
    rc = lib.t_rfft(n, x.ctypes.data, x.size, split, None if w is None else w.ctypes.data,
                    work.ctypes.data, spec.ctypes.data, power.ctypes.data, scale)
    assert rc == 0
    return spec[0::2] + 1j * spec[1::2], power


@pytest.mark.parametrize("n", FFT_SIZES)
def test_rfft_matches_numpy(lib, n):
    rng = np.random.default_rng(n)
    for count in sorted({n, max(1, 3 * n // 4 + 1), max(1, n // 2 - 1)}):
        x = rng.normal(0, 3000, count).astype(np.float32)
        split = rng.integers(0, count + 1)
        spec, power = _rfft(lib, n, x, int(split), scale=1.0 / n)
        ref = np.fft.rfft(x.astype(np.float64), n)
        tol = 2e-6 * np.sqrt(np.sum(x.astype(np.float64) ** 2)) * np.log2(n)
        assert np.max(np.abs(spec - ref)) <= tol, (n, count, split)
        pref = np.abs(ref) ** 2 / n
        assert np.allclose(power, pref, rtol=2e-5, atol=tol * np.abs(ref).max() * 3 / n), (n, count)


def test_rfft_window_and_impulses(lib):
    n = 512
    # unit impulses give exact twiddle factors: X[k] = exp(-2 pi i k t / n)
    for t in (0, 1, 7, 399):
        x = np.zeros(400, np.float32)
        x[t] = 1.0
        spec, _ = _rfft(lib, n, x, 160)
        ref = np.exp(-2j * np.pi * np.arange(n // 2 + 1) * t / n)
        assert np.max(np.abs(spec - ref)) < 1e-5
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1000, 400).astype(np.float32)
    win = np.hamming(400).astype(np.float32)
    spec, _ = _rfft(lib, n, x, 240, win=win)
    ref = np.fft.rfft((x * win).astype(np.float64), n)
    assert np.max(np.abs(spec - ref)) < 1e-5 * np.abs(ref).max()


def test_fft_positions_are_permutations():
    for n in FFT_SIZES:
        pos = fft_positions(n)
        assert sorted(pos.tolist()) == list(range(n // 2))
    assert fft_positions(512)[:4].tolist() == [0, 64, 128, 192]  # radix-4 digit reversal
