"""Real FFT of each row into a caller's buffer: scipy's pocketfft binding, loaded fast.

The batch featurizer (`features.windows_to_logmel`) transforms thousands of frames per
call into a reused complex64 buffer. Public `scipy.fft.rfft` cannot write into a buffer,
so this uses scipy's private binding `scipy.fft._pocketfft.pypocketfft.r2c` (its `out=`
argument). That is a private name: `load_r2c` returns None when a scipy release moves or
changes it, and `rfft_into` then falls back to `scipy.fft.rfft` plus a copy (same numbers,
slower). tests/test_rfft.py fails when that happens, so the slow path is never taken
silently.

The binding is loaded straight from its extension file when scipy.fft is not imported yet:
importing the scipy.fft package pulls in scipy.special and array-api-compat, ~0.2 s of
every `tinykws featurize` start-up. It is registered under its own module name, so a later
`import scipy.fft` reuses it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

PRIVATE_MODULE = "scipy.fft._pocketfft.pypocketfft"  # where scipy keeps `r2c`


def load_r2c() -> Optional[Callable[..., Any]]:
    """scipy's pocketfft `r2c(a, axes, forward, inorm, out)`, or None on other scipy builds."""
    try:
        if PRIVATE_MODULE not in sys.modules and "scipy.fft" not in sys.modules:
            import importlib.machinery
            import importlib.util

            scipy_spec = importlib.util.find_spec("scipy")
            folder = Path(scipy_spec.submodule_search_locations[0]) / "fft" / "_pocketfft"
            suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
            ext = [
                f for f in folder.iterdir()
                if f.name.startswith("pypocketfft.") and f.name.endswith(suffixes)
            ]  # fmt: skip
            if ext:
                spec = importlib.util.spec_from_file_location(PRIVATE_MODULE, ext[0])
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[PRIVATE_MODULE] = module
        from scipy.fft._pocketfft.pypocketfft import r2c

        return r2c
    except (ImportError, OSError, TypeError, AttributeError):  # other scipy builds
        return None


_r2c = load_r2c()


def rfft_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Unnormalised real FFT of each row: x [M, N] float32 -> out [M, N // 2 + 1] complex64."""
    if _r2c is not None:
        _r2c(x, axes=[1], forward=True, inorm=0, out=out)
    else:  # slow path: scipy moved its binding (tests/test_rfft.py fails)
        import scipy.fft

        out[...] = scipy.fft.rfft(x, axis=-1)
    return out


def fast_path() -> bool:
    """Whether `rfft_into` writes straight into the buffer (scipy's binding was found)."""
    return _r2c is not None
