"""The float featurizer's constant tables as arrays: the FFT plan (scatter positions and
twiddles of tkws_fft.c) and the mel filterbank without its zeros.

A leaf (numpy and `tinykws.features` only): the featurizer emitter writes them
into C, and the integer featurizer's Python reference (`tinykws.quant.features`) builds its
own tables from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.features import mel_filterbank


def fft_positions(n_fft: int) -> np.ndarray:
    """uint16 [N/2]: where complex input z[m] goes for the in-place DIT FFT of tkws_fft.c.

    Radix-4 digit reversal when N/2 is a power of 4; otherwise the even/odd split of the
    final radix-2 stage on top (position = (m & 1) * N/4 + rev4(m >> 1)).
    """
    m = n_fft // 2
    if n_fft < 4 or n_fft & (n_fft - 1):
        raise TinyKWSError(f"the C featurizer needs a power-of-two fft_size >= 4, not {n_fft}")
    if m > 65535:
        raise TinyKWSError(f"fft_size {n_fft} is too large for the C featurizer")
    l4 = 1
    while l4 * 4 <= m and m % (l4 * 4) == 0:
        l4 *= 4
    digits = round(math.log(l4, 4))

    def rev4(v: int) -> int:
        r = 0
        for _ in range(digits):
            r = r * 4 + (v & 3)
            v >>= 2
        return r

    if l4 == m:
        pos = [rev4(v) for v in range(m)]
    else:
        pos = [(v & 1) * (m // 2) + rev4(v >> 1) for v in range(m)]
    return np.array(pos, dtype=np.uint16)


def fft_twiddles(n_fft: int) -> np.ndarray:
    """float32 [2 * (N/2)]: W_N^k = (cos, -sin)(2 pi k / N) interleaved, k < N/2."""
    k = np.arange(n_fft // 2, dtype=np.float64)
    ang = 2.0 * np.pi * k / n_fft
    return np.stack([np.cos(ang), -np.sin(ang)], axis=1).astype(np.float32).ravel()


def fft_twiddles4(n_fft: int) -> np.ndarray:
    """float32: the radix-4 stages' twiddles, stage after stage (L = 16, 64, ... while L
    divides N/2), for each j < L/4 the pairs W_L^j, W_L^2j, W_L^3j (6 floats)."""
    m = n_fft // 2
    out = []
    ln = 16
    while ln <= m and m % ln == 0:
        j = np.arange(ln // 4, dtype=np.float64)[:, None] * np.arange(1, 4)[None, :]  # [q, 3]
        ang = -2.0 * np.pi * j / ln
        out.append(np.stack([np.cos(ang), np.sin(ang)], axis=-1).ravel())
        ln *= 4
    return (np.concatenate(out) if out else np.zeros(0)).astype(np.float32)


@dataclass(frozen=True)
class SparseMel:
    """The mel filterbank as runs of nonzero weights: filter j covers bins
    start[j] .. start[j] + length[j] - 1 with weights[offset_j : offset_j + length[j]]."""

    start: np.ndarray  # uint16 [n_mels]
    length: np.ndarray  # uint16 [n_mels]
    weights: np.ndarray  # float32 [sum(length)]

    def dense(self, n_bins: int) -> np.ndarray:
        """Back to float32 [n_bins, n_mels] (for tests)."""
        fb = np.zeros((n_bins, len(self.start)), dtype=np.float32)
        off = 0
        for j, (s, n) in enumerate(zip(self.start, self.length)):
            fb[s : s + n, j] = self.weights[off : off + n]
            off += n
        return fb


def sparse_mel(params: Any) -> SparseMel:
    """`tinykws.features.mel_filterbank(params)` (as float32) without its zeros."""
    fb = np.asarray(mel_filterbank(params), dtype=np.float32)  # [n_bins, n_mels]
    starts, lens, weights = [], [], []
    for j in range(fb.shape[1]):
        nz = np.flatnonzero(fb[:, j])
        if nz.size == 0:
            starts.append(0)
            lens.append(0)
            continue
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        starts.append(lo)
        lens.append(hi - lo)
        weights.append(fb[lo:hi, j])
    w = np.concatenate(weights) if weights else np.zeros(0, dtype=np.float32)
    return SparseMel(
        np.array(starts, dtype=np.uint16), np.array(lens, dtype=np.uint16), w.astype(np.float32)
    )
