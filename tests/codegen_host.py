"""Host builds of the C runtime and generated code for the codegen parity tests.

Everything is compiled with the strict flags the runtime promises to pass, into a shared
library loaded with ctypes. Builds are cached per content hash inside pytest's tmp dir.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-Wfloat-conversion"]
# Generated featurizer.c / model.c are also clean under what firmware projects often add.
PEDANTIC = ["-Wconversion", "-Wshadow", "-Wpedantic", "-Wcast-qual", "-Wstrict-prototypes",
            "-Wmissing-prototypes"]

F32P = ctypes.POINTER(ctypes.c_float)


def host_cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no host C compiler (cc) to build the runtime for parity tests")
    return cc


def build_shared(sources: Sequence[Path], out: Path, include_dirs: Sequence[Path] = (),
                 defines: Sequence[str] = (), extra: Sequence[str] = ()) -> ctypes.CDLL:
    """Compile C files into one shared library with the strict warning flags; load it."""
    args = [host_cc(), *STRICT, "-O2", "-fPIC", "-shared", *extra]
    args += [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    args += [str(s) for s in sources] + ["-o", str(out), "-lm"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"host compile failed:\n{' '.join(args)}\n{proc.stderr}"
    return ctypes.CDLL(str(out))


def fptr(a: np.ndarray):
    """ctypes float* into a contiguous float32 array."""
    assert a.dtype == np.float32 and a.flags.c_contiguous
    return a.ctypes.data_as(F32P)


def digest(*texts: str) -> str:
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode())
    return h.hexdigest()[:12]
