"""The detector's triggers: smoothed scores -> detections. `Trigger` (float scores, the
Python detector and the float C detector's reference) and `IntTrigger` (the same rule in
exact integer arithmetic on Q15 scores: the int8 builds' detector), and the batch helpers
`moving_average` and `pick_detections` (`best_keyword` + `pick_from_best`, split so that a
threshold sweep finds the best keyword once).
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np

from tinykws.detector_config import TIME_EPS_S, Detection, DetectorConfig
from tinykws.labels import keyword_mask

def moving_average(scores: np.ndarray, n: int) -> np.ndarray:
    """Causal moving average over the last `n` rows of `[S, C]` (shorter at the start)."""
    scores = np.asarray(scores, np.float64)
    if n <= 1 or len(scores) == 0:
        return scores.copy()
    c = np.cumsum(np.vstack([np.zeros((1, scores.shape[1])), scores]), axis=0)
    idx = np.arange(1, len(scores) + 1)
    lo = np.maximum(0, idx - n)
    return (c[idx] - c[lo]) / (idx - lo)[:, None]


def pick_detections(
    times: np.ndarray, smoothed: np.ndarray, categories: Sequence[str], threshold: float,
    refractory_s: float, keywords: Optional[np.ndarray] = None,
) -> list[Detection]:
    """Detections from a smoothed score trace `[S, C]` at `times` `[S]` (seconds).

    A keyword (`keywords`: bool [C], default all but NON_KEYWORDS) fires where its smoothed
    score is the best keyword score and reaches `threshold`, unless another detection
    happened less than `refractory_s` before (up to TIME_EPS_S).
    """
    best, best_score = best_keyword(smoothed, categories, keywords)
    return pick_from_best(times, best, best_score, categories, threshold, refractory_s)


def best_keyword(smoothed: np.ndarray, categories: Sequence[str],
                 keywords: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(index `[S]`, score `[S]`) of the best keyword at each row of `[S, C]`; empty when
    no category is a keyword. Computed once, it serves a whole threshold sweep."""
    kw = (keyword_mask(categories) if keywords is None
          else np.asarray(keywords, bool))
    if not kw.any() or len(smoothed) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    masked = np.where(kw[None, :], smoothed, -np.inf)
    best = masked.argmax(1)
    return best, masked[np.arange(len(best)), best]


def pick_from_best(times: np.ndarray, best: np.ndarray, best_score: np.ndarray,
                   categories: Sequence[str], threshold: float,
                   refractory_s: float) -> list[Detection]:
    """`pick_detections` from `best_keyword`'s trace: each detection, then a jump to the
    first crossing the refractory time allows (the test `t - last >= refractory - eps` is
    monotone in t, so a binary search finds exactly the crossing a frame-by-frame loop
    would; one step per detection instead of one per frame above the threshold)."""
    cross = np.flatnonzero(best_score >= threshold)
    ct = np.asarray(times)[cross]
    gap = refractory_s - TIME_EPS_S
    out: list[Detection] = []
    j = 0
    while j < len(cross):
        i = cross[j]
        out.append(Detection(float(times[i]), categories[best[i]], float(best_score[i])))
        last = ct[j]
        k = max(j + 1, int(np.searchsorted(ct, last + gap, "left")))
        while k > j + 1 and ct[k - 1] - last >= gap:  # the rounding of last + gap, both ways
            k -= 1
        while k < len(ct) and not ct[k] - last >= gap:
            k += 1
        j = k
    return out


class Trigger:
    """Streaming form of `moving_average` + `pick_detections`, one score vector at a time.

    The generated C detector of float builds (runtime `tkws_detect.c`) is this, counting
    score steps instead of seconds (`DetectorConfig.refractory_steps`); int8 builds run
    `IntTrigger`."""

    def __init__(self, categories: Sequence[str], threshold: float, smooth_n: int,
                 refractory_s: float, keywords: Optional[np.ndarray] = None):
        self.categories = list(categories)
        self.kw = (keyword_mask(self.categories) if keywords is None
                   else np.asarray(keywords, bool))
        self.threshold, self.refractory_s = threshold, refractory_s
        self.buf: deque[np.ndarray] = deque(maxlen=max(1, smooth_n))
        self.last = -np.inf

    @classmethod
    def from_config(cls, config: DetectorConfig, categories: Sequence[str],
                    period_ms: float) -> "Trigger":
        """The trigger of `config` for one score vector every `period_ms` (smoothing in
        whole steps, `DetectorConfig.smooth_steps`, as the C detector counts them)."""
        return cls(categories, config.threshold, config.smooth_steps(period_ms),
                   config.refractory_ms / 1000.0, config.keyword_mask(categories))

    def reset(self) -> None:
        self.buf.clear()
        self.last = -np.inf

    def __call__(self, t: float, scores: np.ndarray) -> Detection | None:
        self.buf.append(np.asarray(scores, np.float64))
        smoothed = np.mean(self.buf, axis=0)
        masked = np.where(self.kw, smoothed, -np.inf)
        k = int(masked.argmax())
        if masked[k] >= self.threshold and t - self.last >= self.refractory_s - TIME_EPS_S:
            self.last = t
            return Detection(float(t), self.categories[k], float(masked[k]))
        return None


# --------------------------------------------------------------------------- integer trigger

Q15_ONE = 32768  # a Q15 score q stands for the probability q / 32768 (integer model outputs)


def threshold_sums(threshold: float, n: int) -> np.ndarray:
    """int64 [n]: entry m - 1 is the least integer sum of m Q15 scores whose mean reaches
    `threshold`: ceil(T * 32768 * m), computed exactly, where T is the decimal number the
    threshold is written as in detector.json (Python's shortest repr: 0.8 is 4/5, not the
    binary64 number just above it). So `sum >= entry` is exactly "mean >= T" in real
    numbers, and equals `Trigger`'s float64 test on the same Q15 scores whenever
    m * 10^digits < 1e11 (a mean that is not T lies at least 1 / (32768 m 10^digits) from
    it, far beyond float64 rounding; a mean equal to T rounds to the threshold itself)."""
    t = Fraction(repr(float(threshold)))
    return np.array([math.ceil(t * Q15_ONE * m) for m in range(1, n + 1)], np.int64)


class IntTrigger:
    """`Trigger` for integer builds: Q15 class scores in (int, 0 .. 32767, what the integer
    model's softmax gives), decisions in exact integer arithmetic. The generated C detector
    of an int8 build (runtime `tkws_qdetect.c`) is this, step for step.

    Per score vector: the keyword classes' Q15 scores go into a ring of the last `smooth_n`
    steps and each keyword's int sum over the m filled rows (m = min(steps seen,
    `smooth_n`)) is kept up to date by adding the new score and subtracting the one that
    leaves the ring. The keyword with the largest sum (the first on a tie) fires when its
    sum reaches `threshold_sums(threshold, smooth_n)[m - 1]`, i.e. when its mean score is
    >= threshold exactly (`Trigger` computes that mean in floating point), and at least
    `refractory_steps` steps have passed since the last detection (or there was none).
    The confidence is float32(sum) / float32(32768 m) rounded to float32, as the C
    computes it, so device and Python confidences are equal bit for bit. After every call,
    `confidence_q15` is the best keyword's mean in Q15 rounded down, ⌊sum / m⌋: what the
    C's integer call (`detector_StepQ`) writes to `*confidence`.
    """

    def __init__(self, categories: Sequence[str], threshold: float, smooth_n: int,
                 refractory_steps: int, keywords: Optional[np.ndarray] = None):
        self.categories = list(categories)
        kw = (keyword_mask(self.categories) if keywords is None
              else np.asarray(keywords, bool))
        self.keyword_index = np.flatnonzero(kw)  # [K] class indices that may fire
        self.smooth_n = max(1, int(smooth_n))
        self.refractory = max(0, int(refractory_steps))
        self.min_sum = threshold_sums(threshold, self.smooth_n)  # [smooth_n]
        self.reset()

    @classmethod
    def from_config(cls, config: DetectorConfig, categories: Sequence[str],
                    period_ms: float) -> "IntTrigger":
        """The integer trigger of `config` for one score vector every `period_ms`."""
        return cls(categories, config.threshold, config.smooth_steps(period_ms),
                   config.refractory_steps(period_ms), config.keyword_mask(categories))

    def reset(self) -> None:
        self.history = np.zeros((self.smooth_n, len(self.keyword_index)), np.int64)  # ring
        self.sums = np.zeros(len(self.keyword_index), np.int64)  # over the filled rows
        self.pos = 0  # ring row written next
        self.filled = 0  # rows in use
        self.since = self.refractory  # steps since the last detection (saturating)
        self.confidence_q15 = 0  # the last call's best keyword mean, Q15, rounded down

    def __call__(self, t: float, scores_q15: np.ndarray) -> Detection | None:
        """One Q15 score vector [C] at time `t` (s) -> the detection it makes, or None."""
        new = np.asarray(scores_q15, np.int64)[self.keyword_index]
        self.sums += new - self.history[self.pos]  # the leaving row is 0 while filling
        self.history[self.pos] = new
        self.pos = (self.pos + 1) % self.smooth_n
        self.filled = min(self.filled + 1, self.smooth_n)
        self.since = min(self.since + 1, self.refractory)
        if len(self.sums) == 0:
            return None
        j = int(self.sums.argmax())
        best = int(self.sums[j])
        self.confidence_q15 = best // self.filled
        if best >= self.min_sum[self.filled - 1] and self.since >= self.refractory:
            self.since = 0
            confidence = np.float32(best) / np.float32(Q15_ONE * self.filled)
            return Detection(float(t), self.categories[self.keyword_index[j]], float(confidence))
        return None
