"""The clip material the stream phase (`tinykws.stream_training`) lays into its training
streams: where the word is in each clip (`word_bounds`) and the clips by class
(`ClipPool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from tinykws.labels import SILENCE, UNKNOWN


def word_bounds(features: np.ndarray, drop_db: float = 20.0, log_per_db: float = math.log(10) / 10
                ) -> tuple[np.ndarray, np.ndarray]:
    """(first, last + 1) speech frame of each clip `[N, T, F]` by energy: frames whose
    energy (log of summed mel power) is within `drop_db` of the clip's loudest frame and
    above the clip's floor (10th percentile) by half the clip's range."""
    e = torch.logsumexp(torch.as_tensor(features), dim=2).numpy()  # [N, T] log power
    peak = e.max(1, keepdims=True)
    floor = np.percentile(e, 10, axis=1, keepdims=True)
    thr = np.maximum(peak - drop_db * log_per_db, floor + 0.5 * (peak - floor))
    loud = e >= thr
    T = e.shape[1]
    first = loud.argmax(1)
    last = T - loud[:, ::-1].argmax(1)
    return first.astype(np.int64), last.astype(np.int64)


@dataclass
class ClipPool:
    """The training clips a stream is made of, with their speech bounds and levels."""

    features: np.ndarray  # float32 [N, T, F] log-mel
    labels: np.ndarray  # int64 [N]
    categories: list[str]
    first: np.ndarray  # [N] first speech frame
    end: np.ndarray  # [N] last speech frame + 1
    peak: np.ndarray  # [N] loudest frame's log power
    log_per_db: float
    words: Optional[np.ndarray] = None  # str [N]: the word each clip says ("": not known)

    @classmethod
    def from_arrays(cls, features: np.ndarray, labels: np.ndarray, categories: Sequence[str],
                    log_per_db: float, words: Optional[np.ndarray] = None) -> "ClipPool":
        first, end = word_bounds(features, log_per_db=log_per_db)
        peak = torch.logsumexp(torch.as_tensor(features), dim=2).amax(1).numpy()
        return cls(features, labels, list(categories), first, end, peak, log_per_db, words)

    def indices(self, *names: str) -> np.ndarray:
        ids = [self.categories.index(n) for n in names if n in self.categories]
        return np.flatnonzero(np.isin(self.labels, ids))

    @property
    def keyword_ids(self) -> np.ndarray:
        return np.flatnonzero(~np.isin(self.labels, [self.categories.index(c) for c in
                                                     (SILENCE, UNKNOWN) if c in self.categories]))


def word_balance(words: np.ndarray) -> np.ndarray:
    """Drawing weights `[N]` that give every word of `words` `[N]` the same share, their sum
    unchanged (N): a word's clips split N / (number of words) among them. Real other-word
    speech is lopsided (the extra folder: 1,600 clips each of bed, cat and happy, about 10
    of each other word), and drawn clip by clip three words would be nearly all of it."""
    _, inverse, counts = np.unique(words, return_inverse=True, return_counts=True)
    return len(words) / len(counts) / counts[inverse]
