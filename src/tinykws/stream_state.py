"""The recurrent state of a stream-trained model over long streams: `bound_state` (the
FastGRNN state bound that stops the drift locking clip models in), `stream_through` (one
never-reset state over a long frame sequence: scores and the largest |state|) and
`longest_keyword_run` (how long one keyword wins without a break).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from tinykws.labels import keyword_mask


BOUNDED_NU = -40.0  # σ(-40) = 4e-18: below float32's resolution next to any |h| >= 1e-9


def bound_state(model) -> int:
    """Make every FastGRNN layer's state bounded by construction; returns the layers changed.

    FastGRNN's h' = z h + (σ(zeta)(1 - z) + σ(nu)) c. Where the gate z saturates at 1 the
    state grows by σ(nu) c every frame: the clip models' σ(nu) ≈ 0.016 makes |h| climb by
    ~1.6 a second, and after a minute every unit is pinned and one class wins whatever
    the audio (the lock-in measured in docs/benchmarks.md). With σ(nu) = 0,
    |h'| <= z |h| + (1 - z) σ(zeta) <= max(|h|, σ(zeta)) <= 1 from a zero state, for ever.
    nu is set to `BOUNDED_NU` and frozen (the generated C computes σ(nu) from it as before).
    """
    n = 0
    for cell in model.cells:
        if hasattr(cell, "nu") and hasattr(cell, "zeta"):
            with torch.no_grad():
                cell.nu.fill_(BOUNDED_NU)
            cell.nu.requires_grad_(False)
            n += 1
    return n


@torch.no_grad()
def stream_through(model, frames: Tensor, chunk: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Run frames `[T, F]` through `model` on one never-reset state.

    Returns (softmax scores `[T, C]`, largest |state| `[n_chunks]` at each chunk's end).
    """
    state = model.init_state(1)
    scores, peaks = [], []
    chunk -= chunk % model.config.frame_stride  # a state carries on exactly at whole groups
    for s in range(0, len(frames), chunk):
        logits, state = model.forward_sequence(frames[None, s:s + chunk], state)
        scores.append(torch.softmax(logits[0], -1).numpy())
        st = torch.cat([x.flatten() for x in state]) if isinstance(state, tuple) else state
        peaks.append(float(st.abs().max()))
    return np.concatenate(scores), np.array(peaks)


def longest_keyword_run(scores: np.ndarray, categories: Sequence[str]) -> tuple[int, str]:
    """(frames, class) of the longest run of consecutive frames whose top class is one and
    the same keyword: a state locked onto a class shows as a run of minutes."""
    top = np.asarray(scores).argmax(1)
    is_kw = keyword_mask(categories)[top]
    best, label = 0, ""
    change = np.flatnonzero(np.diff(top) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(top)]])
    for a, b in zip(starts, ends):
        if is_kw[a] and b - a > best:
            best, label = int(b - a), categories[top[a]]
    return best, label
