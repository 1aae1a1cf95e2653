"""The clip material the stream phase (`tinykws.stream_training`) lays into its training
streams: where the word is in each clip (`word_bounds`) and the clips by class
(`ClipPool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from tinykws.errors import TinyKWSError
from tinykws.labels import UNKNOWN, keyword_mask


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
    targets: Optional[np.ndarray] = None  # int64 [N]: training class if not the label (garbage)

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
        return np.flatnonzero(keyword_mask(self.categories)[self.labels])


def word_balance(words: np.ndarray) -> np.ndarray:
    """Drawing weights `[N]` that give every word of `words` `[N]` the same share, their sum
    unchanged (N): a word's clips split N / (number of words) among them. Real other-word
    speech is lopsided (the extra folder: 1,600 clips each of bed, cat and happy, about 10
    of each other word), and drawn clip by clip three words would be nearly all of it."""
    _, inverse, counts = np.unique(words, return_inverse=True, return_counts=True)
    return len(words) / len(counts) / counts[inverse]


def resample_axis(x: np.ndarray, axis: int, factor: float, n_out: int) -> np.ndarray:
    """`x` read along `axis` at positions i / factor for i < n_out (linear interpolation;
    positions past the end read the last entry): factor > 1 stretches, so a word said more
    slowly (time) or a shorter vocal tract (mel bands: formants move up)."""
    n = x.shape[axis]
    pos = np.minimum(np.arange(n_out) / factor, n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = n_out
    frac = frac.reshape(shape)
    return np.take(x, lo, axis) * (1 - frac) + np.take(x, hi, axis) * frac


def augment_word(seg: np.ndarray, on: int, end: int, rng: np.random.Generator, stretch: float,
                 warp: float, gain: float) -> tuple[np.ndarray, int, int, float]:
    """One stream word made new: `seg` [T, F] log-mel with its speech in [on, end) ->
    (the word [T', F], on', end', the log-power shift added). Speaking rate: T' = T x a
    factor in [1 - stretch, 1 + stretch]; vocal tract: the mel axis by one in [1 - warp,
    1 + warp]; level: `gain` (log units) x U(-1, 1) added. A draw is made only for an
    amount > 0, so with all three 0 the word and the generator are left as they were."""
    if stretch > 0:
        f = 1.0 + stretch * (2 * rng.random() - 1)
        n_out = max(1, round(len(seg) * f))
        seg = resample_axis(seg, 0, f, n_out)
        on, end = min(round(on * f), n_out - 1), min(max(round(end * f), 1), n_out)
    if warp > 0:
        seg = resample_axis(seg, 1, 1.0 + warp * (2 * rng.random() - 1), seg.shape[1])
    shift = gain * (2 * rng.random() - 1) if gain > 0 else 0.0
    return (seg + np.float32(shift) if shift else seg), on, end, shift


def clip_pool(split: Any, real_negatives: Optional[np.ndarray], extra_negatives: Optional[np.ndarray],
               log_per_db: float, real_words: Optional[Sequence[str]] = None) -> tuple[ClipPool, int]:
    """The clips the streams are made of: the training split, then the real and the
    synthesized negatives as `_unknown_`; and how many of them are real recordings. Each
    clip's word is its folder's name (training split), `real_words`, or "" (synthesized)."""
    if real_words is not None and len(real_words) != (0 if real_negatives is None else len(real_negatives)):
        raise TinyKWSError("real_negative_words must name the word of every real negative clip")
    feats, labels = split.features, split.labels
    words = list(split.words)
    n_real = len(split.labels)  # real recordings first, then the synthesized negatives
    for more in (real_negatives, extra_negatives):
        if more is not None and len(more):
            unk = split.categories.index(UNKNOWN)
            feats = np.concatenate([feats, np.asarray(more, np.float32)])
            labels = np.concatenate([labels, np.full(len(more), unk, np.int64)])
            n_real += len(more) if more is real_negatives else 0
            said = real_words if more is real_negatives and real_words is not None else [""] * len(more)
            words += list(said)
    return ClipPool.from_arrays(feats, labels, split.categories, log_per_db, np.asarray(words)), n_real
