"""Process-wide tuning: every change tinykws makes to the process it runs in, in one place.

Library code elsewhere does not touch process state; it calls these:

- `tune_for_training()`: called once by `train.train()` before the first step. Raises
  glibc's mmap and trim thresholds so freed multi-megabyte tensors stay in the heap.
- `ignore_sigint()`: the initializer of worker-process pools (`data synth`, `data
  negatives`): Ctrl-C is the parent's to handle.
- `torch_threads(n)`: torch's intra-op thread count set to `n` inside a `with` block and
  restored after it. Used for the per-frame/per-step loops of tiny matrices (FastGRNN's
  recurrence, the streaming detector, the tests' tiny models) and for `TrainConfig.threads`.

Features use their own BLAS limit (`features.single_thread_blas`, threadpoolctl) because
it must be shared by worker threads; it is not a torch setting.
"""

from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

_MALLOC_TUNED = False


def ignore_sigint() -> None:
    """Ignore SIGINT in this (worker) process: the pool initializer of tinykws' worker pools.

    A terminal's Ctrl-C reaches the whole process group. Workers used to print a
    KeyboardInterrupt traceback each; now only the parent sees it, leaves its `with Pool`
    (which terminates the workers) and the CLI says `interrupted` in one line."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def tune_for_training() -> bool:
    """Let glibc keep freed multi-megabyte blocks in the heap instead of unmapping them.

    By default glibc hands blocks above a (dynamic) threshold back to the OS when they are
    freed, so every training step's fresh [T, B, H] tensors (outputs, gradients, autograd's
    GEMM results) start as untouched pages: thousands of page faults a step, 5-10 % of the
    step time at the benchmark configuration. Raising the mmap and trim thresholds keeps
    those blocks for the next step (at most 256 MB kept free).

    Process-wide and idempotent. A no-op outside Linux/glibc (no `mallopt`) and with
    TINYKWS_NO_MALLOC_TUNING=1. Returns whether the thresholds were set by this call.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return False
    _MALLOC_TUNED = True
    if os.environ.get("TINYKWS_NO_MALLOC_TUNING") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    ok = mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum on 64-bit
    ok &= mallopt(m_trim_threshold, 256 << 20)
    return bool(ok)


@contextmanager
def torch_threads(n: Optional[int] = 1) -> Iterator[None]:
    """Run torch with `n` intra-op threads inside the block (None or 0: leave it as is).

    Per-step matrices are tiny ([B, H] @ [H, H]); splitting them over threads costs more
    in barriers than it gains, and on a busy machine a barrier can wait for a whole
    scheduler slice (measured ~300x the arithmetic for a streaming step on 2 busy cores).
    The previous count is restored on exit, also on an exception.
    """
    import torch

    before = torch.get_num_threads()
    change = bool(n) and n != before
    if change:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)
