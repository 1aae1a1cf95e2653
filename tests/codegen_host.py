"""Host builds of the C runtime and generated code for the codegen parity tests, and the
cross-toolchains the Cortex-M4 tests run with.

Everything is compiled with the strict flags the runtime promises to pass, into a shared
library loaded with ctypes. Builds are cached per content hash inside pytest's tmp dir.

arm-none-eabi-gcc is optional (zig, a pip dependency, is always there) but CI installs it:
tests that need it are parametrized with a *visible* skip when it is missing, never dropped
silently, and `have_arm_gcc()` fails instead of skipping under TINYKWS_NO_SKIP=1.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
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

ARM_GCC = shutil.which("arm-none-eabi-gcc")
NO_ARM_GCC = "arm-none-eabi-gcc not installed (optional locally; CI installs gcc-arm-none-eabi)"


def toolchain_params(values=None) -> list:
    """pytest params for both cross-toolchains, "zig" and "gcc" (skipped, with the reason,
    where arm-none-eabi-gcc is missing). `values`: name -> param value (default the name)."""
    values = values or {"zig": "zig", "gcc": "gcc"}
    return [pytest.param(values["zig"], id="zig"),
            pytest.param(values["gcc"], id="gcc", marks=pytest.mark.skipif(ARM_GCC is None, reason=NO_ARM_GCC))]


def have_arm_gcc() -> bool:
    """For an extra check inside a test: whether arm-none-eabi-gcc is there (under
    TINYKWS_NO_SKIP=1 its absence fails the test instead of quietly passing over the check)."""
    if ARM_GCC is None and os.environ.get("TINYKWS_NO_SKIP") == "1":
        pytest.fail(NO_ARM_GCC)
    return ARM_GCC is not None


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
