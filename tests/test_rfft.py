"""The featurizer's FFT shim (tinykws.rfft): scipy's private pocketfft binding is found,
writes the same spectrum as numpy into the caller's buffer, and is loaded without
importing scipy.fft. When a scipy release moves or changes the binding these tests fail,
so nobody runs on the slow fallback without knowing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import scipy

from tinykws import rfft


def test_scipy_binding_is_found():
    assert rfft.load_r2c() is not None, (
        f"scipy {scipy.__version__} has no {rfft.PRIVATE_MODULE}.r2c: tinykws.rfft falls back "
        "to scipy.fft.rfft plus a copy (slower featurize); update tinykws/rfft.py"
    )
    assert rfft.fast_path()


def test_rfft_into_equals_numpy_and_writes_the_buffer():
    x = np.random.default_rng(0).standard_normal((7, 512)).astype(np.float32)  # [M, N]
    out = np.zeros((7, 257), np.complex64)  # [M, N/2 + 1]
    got = rfft.rfft_into(x, out)
    assert got is out
    want = np.fft.rfft(x.astype(np.float64), axis=-1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-3)


def test_fallback_gives_the_same_numbers(monkeypatch):
    x = np.random.default_rng(1).standard_normal((5, 512)).astype(np.float32) * 3000
    fast = rfft.rfft_into(x, np.empty((5, 257), np.complex64)).copy()
    monkeypatch.setattr(rfft, "_r2c", None)
    assert not rfft.fast_path()
    slow = rfft.rfft_into(x, np.empty((5, 257), np.complex64))
    np.testing.assert_array_equal(fast, slow)  # both are pocketfft in float32


def test_features_import_does_not_import_scipy_fft():
    code = (
        "import sys; import tinykws.features, tinykws.rfft as r; "
        "assert r.fast_path(); assert 'scipy.fft' not in sys.modules, 'scipy.fft imported'; "
        "m = sys.modules[r.PRIVATE_MODULE]; import scipy.fft; "
        "assert sys.modules[r.PRIVATE_MODULE] is m, 'scipy.fft loaded the binding twice'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
