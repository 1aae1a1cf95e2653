"""The integer log-mel featurizer: Python reference of the generated C, bit for bit.

Same definition as `tinykws.features` (pre-emphasis, rectangular/Hamming/Hann window,
zero-padded FFT, power |X|^2 / N, ELL's mel filters, ln(mel + log_delta)), computed with
integers only, as `codegen/runtime/tkws_qlogmel.c` does on a Cortex-M4 without an FPU.
Input: int16 PCM. Output: int16 log-mel in Q7.8 (`tinykws.quant.formats`).

The steps, with every rounding defined (">>" is an arithmetic shift, i.e. floor):

1. pre-emphasis, in the FFT's input scale 2^13: y[n] = x[n] * 2^13 - A * x[n-1], with
   A = round(preemphasis * 2^13) (7946 for 0.97); |y| < 2^29 for any int16 input.
   Windowed (Hamming/Hann): y = ((2 y) * w) >> 16 with w = min(round(w * 2^15), 32767).
2. complex FFT of M = N/2 points z[m] = y[2m] + i y[2m+1], decimation in time, radix 4
   (then one radix-2 stage when M is not a power of 4), tkws_fft.c's order. Twiddles are
   Q14 int16 pairs W = (wr, wi); a complex product is
       re = (ar wr >> 16) - (ai wi >> 16),  im = (ar wi >> 16) + (ai wr >> 16)
   i.e. a W / 4 (SMULWB/SMULWT/SMLAWB on the M4). Every stage scales by 1/4: the
   untwiddled input is a >> 2. Each stage's output is bounded by its largest input
   (|X| <= |b0| + |b1| + |b2| + |b3| <= 4 max|a| / 4), so nothing overflows int32 on any
   input: |z| <= sqrt(2) 2^29.01 < 7.5e8 throughout (tests drive full-scale squares/noise).
3. real spectrum by the split step, scaled by 1/4 again: X'[k] = (E >> 2) + (O W_N^k)/4,
   so X' = X * 2^xexp with xexp = 13 - 2 (stages) - 1 (4 for N = 512); |X'| < 7.5e8.
4. power P[k] = X're^2 + X'im^2 (< 2^60, int64); frame shift sh = max(0, bitlen(OR_k P[k])
   - 32) makes every P32 = P >> sh fit 32 bits (a block exponent per frame: 96 dB of
   dynamic range below the frame's loudest bin, whatever the input level).
5. mel[j] = sum_t Wq[t] P32[start_j + t] with Q16 weights Wq = round(w * 2^16) (uint16;
   every ELL weight is < 1), plus the log_delta term D = round(log_delta 2^-e0) >> sh; in
   float units mel = mel_int 2^(sh + e0), e0 = -16 - 2 xexp - log2(N) (-33 for N = 512).
6. log: 0 -> round(ln(log_delta) 256); else with e = bitlen(v) - 1 and f = the 16 bits
   after the leading one (truncated), log2 = e + sh + e0 + T(f) where T interpolates a
   65-entry Q16 table of log2(1 + i/64) linearly (error < 4e-5); out = (L2 ln2_Q16 +
   2^23) >> 24 (Q16 x Q16 -> Q8, rounded), saturated to int16.

Against the float features, the error comes from step 4's 32-bit power (a mel band far
below the frame's loudest bin keeps fewer bits) and the final rounding (1/512); measured on
real clips in tests/test_quant_features.py and docs/benchmarks.md.

Public API: `IntFeaturizerTables`, `int_tables`, `logmel_q`, `logmel_q_batch`,
`frames_from_stream_q`, `windows_to_logmel_q`, `pcm16_from_float`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import numpy as np

from tinykws.feature_tables import fft_positions, sparse_mel
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams
from tinykws.quant.formats import FEATURE_FRAC_BITS, saturate_int16

PRE_SHIFT = 13  # FFT input scale: pre-emphasised int16 samples * 2^13 (|y| < 2^29)
TWIDDLE_ONE = 1 << 14  # Q14 twiddles: (a * w) >> 16 = a * w / 4
LOG_TABLE_BITS = 6  # log2(1 + f) table: 2^6 + 1 entries, linear interpolation between
LN2_Q16 = round(math.log(2.0) * 65536)  # 45426


@dataclass(frozen=True)
class IntFeaturizerTables:
    """Every constant of the integer featurizer, derived from FeatureParams.

    The one source of the tables: the numpy reference computes with them and
    `tinykws.codegen.featurizer` writes them into the C.
    """

    params: FeatureParams
    preemph: int  # A = round(preemphasis * 2^13)
    window: Optional[np.ndarray]  # int16 [window_size] Q15, or None (rectangular)
    pos: np.ndarray  # uint16 [M]: complex input m goes to position pos[m]
    stage_tw: tuple[np.ndarray, ...]  # per radix-4 stage L = 4, 16, ...: int16 [L/4, 3, 2]
    radix2: bool  # one final radix-2 stage (M = 2 * 4^k)
    split_tw: np.ndarray  # int16 [M, 2]: W_N^k Q14 (re, im), k < M
    mel_start: np.ndarray  # uint16 [n_mels]
    mel_len: np.ndarray  # uint16 [n_mels]
    mel_weights: np.ndarray  # uint16 [sum(len)] Q16
    xexp: int  # X' = X * 2^xexp
    exp0: int  # mel (float) = mel_int * 2^(sh + exp0)
    delta_q: int  # round(log_delta * 2^-exp0), added to mel_int after >> sh
    log_floor: int  # Q7.8 output when mel_int + delta == 0: round(ln(log_delta) * 256)
    log2_table: np.ndarray  # int32 [2^LOG_TABLE_BITS + 1]: round(log2(1 + i / 64) * 2^16)
    ring_size: int  # raw samples kept: whole blocks covering window_size + 1 samples

    @property
    def m(self) -> int:
        return self.params.fft_size // 2


def _q14_pairs(angles: np.ndarray) -> np.ndarray:
    """exp(-i angle) as Q14 int16 (re, im) pairs: [..., 2]."""
    w = np.stack([np.cos(angles), -np.sin(angles)], axis=-1)
    return np.round(w * TWIDDLE_ONE).astype(np.int16)


def _check_params(params: FeatureParams) -> None:
    n = params.fft_size
    if n < 8 or n & (n - 1):
        raise TinyKWSError(f"the integer featurizer needs a power-of-two fft_size >= 8, not {n}")
    if not params.power_spec:
        raise TinyKWSError("the integer featurizer computes the power spectrum only (power_spec)")
    if not 0 <= params.preemphasis <= 1:  # |y| < 2^29 needs A <= 2^13
        raise TinyKWSError(f"preemphasis {params.preemphasis} is outside [0, 1] for the integer featurizer")


@lru_cache(maxsize=16)
def int_tables(params: FeatureParams = FeatureParams()) -> IntFeaturizerTables:
    """The integer featurizer's constants for `params` (cached)."""
    _check_params(params)
    n = params.fft_size
    m = n // 2
    stages = []
    ln = 4
    while ln <= m and m % ln == 0:
        j = np.arange(ln // 4, dtype=np.float64)[:, None] * np.arange(1, 4)[None, :]  # [q, 3]
        stages.append(_q14_pairs(2.0 * np.pi * j / ln))
        ln *= 4
    radix2 = (ln // 4) != m
    n_stages = len(stages) + int(radix2)
    xexp = PRE_SHIFT - 2 * n_stages - 1
    exp0 = -16 - 2 * xexp - int(math.log2(n))
    mel = sparse_mel(params)
    wq = np.round(mel.weights.astype(np.float64) * 65536.0)
    if wq.size and wq.max() > 65535:
        raise TinyKWSError("a mel weight >= 1 does not fit the integer featurizer's Q16")
    window = None
    if params.window != "rectangular":
        fn = np.hamming if params.window == "hamming" else np.hanning
        window = np.minimum(np.round(fn(params.window_size) * 32768.0), 32767).astype(np.int16)
    delta_q = int(round(params.log_delta * 2.0 ** (-exp0)))
    if delta_q >= 1 << 62:
        raise TinyKWSError(f"log_delta {params.log_delta} is too large for the integer featurizer")
    i = np.arange((1 << LOG_TABLE_BITS) + 1, dtype=np.float64)
    log2_table = np.round(np.log2(1.0 + i / (1 << LOG_TABLE_BITS)) * 65536.0).astype(np.int32)
    log_floor = int(np.clip(round(math.log(params.log_delta) * (1 << FEATURE_FRAC_BITS)), -32768, 32767))
    hop = params.hop
    ring_size = -(-(params.window_size + 1) // hop) * hop
    return IntFeaturizerTables(
        params=params,
        preemph=int(round(params.preemphasis * (1 << PRE_SHIFT))),
        window=window,
        pos=fft_positions(n),
        stage_tw=tuple(stages),
        radix2=radix2,
        split_tw=_q14_pairs(2.0 * np.pi * np.arange(m, dtype=np.float64) / n),
        mel_start=mel.start,
        mel_len=mel.length,
        mel_weights=wq.astype(np.uint16),
        xexp=xexp,
        exp0=exp0,
        delta_q=delta_q,
        log_floor=log_floor,
        log2_table=log2_table,
        ring_size=ring_size,
    )


# ---------------------------------------------------------------- arithmetic (int64 arrays)


def _cmul(ar: np.ndarray, ai: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ar + i ai) * W / 4 with Q14 W = w[..., 0] + i w[..., 1], as SMULW* do it."""
    wr = w[..., 0].astype(np.int64)
    wi = w[..., 1].astype(np.int64)
    return (ar * wr >> 16) - (ai * wi >> 16), (ar * wi >> 16) + (ai * wr >> 16)


def _radix4_stage(zr: np.ndarray, zi: np.ndarray, tw: np.ndarray) -> None:
    """One radix-4 DIT stage in place over zr, zi [F, M]; tw int16 [q, 3, 2] (L = 4 q)."""
    f, m = zr.shape
    q = tw.shape[0]
    r = zr.reshape(f, m // (4 * q), 4, q)  # [F, block, r, j]
    i = zi.reshape(f, m // (4 * q), 4, q)
    b0r, b0i = r[:, :, 0] >> 2, i[:, :, 0] >> 2
    b1r, b1i = _cmul(r[:, :, 1], i[:, :, 1], tw[:, 0])
    b2r, b2i = _cmul(r[:, :, 2], i[:, :, 2], tw[:, 1])
    b3r, b3i = _cmul(r[:, :, 3], i[:, :, 3], tw[:, 2])
    t0r, t0i = b0r + b2r, b0i + b2i
    t1r, t1i = b0r - b2r, b0i - b2i
    t2r, t2i = b1r + b3r, b1i + b3i
    t3r, t3i = b1r - b3r, b1i - b3i
    r[:, :, 0], i[:, :, 0] = t0r + t2r, t0i + t2i
    r[:, :, 2], i[:, :, 2] = t0r - t2r, t0i - t2i
    r[:, :, 1], i[:, :, 1] = t1r + t3i, t1i - t3r
    r[:, :, 3], i[:, :, 3] = t1r - t3i, t1i + t3r


def _radix2_last(zr: np.ndarray, zi: np.ndarray, split_tw: np.ndarray) -> None:
    """Final radix-2 stage in place: X[k] = e/4 + W_M^k o / 4, X[k + M/2] = e/4 - W o / 4."""
    h = zr.shape[1] // 2
    er, ei = zr[:, :h] >> 2, zi[:, :h] >> 2
    tr, ti = _cmul(zr[:, h:], zi[:, h:], split_tw[0 : 2 * h : 2])  # W_M^k = W_N^2k
    zr[:, :h], zi[:, :h] = er + tr, ei + ti
    zr[:, h:], zi[:, h:] = er - tr, ei - ti


class _Peaks:
    """Largest |value| per step into a caller's dict (a no-op without one)."""

    def __init__(self, trace: Optional[dict[str, int]]) -> None:
        self.trace = trace

    def __call__(self, name: str, *arrays: np.ndarray) -> None:
        if self.trace is not None:
            v = max(int(np.abs(a).max(initial=0)) for a in arrays)
            self.trace[name] = max(self.trace.get(name, 0), v)


def _power(zr: np.ndarray, zi: np.ndarray, split_tw: np.ndarray,
           peak: _Peaks = _Peaks(None)) -> np.ndarray:
    """Split step: the scaled real spectrum's power P[F, M + 1] (int64), tkws_fft.c's order."""
    f, m = zr.shape
    k = np.arange(1, m // 2 + 1)
    ar, ai = zr[:, k], zi[:, k]
    br, bi = zr[:, m - k], zi[:, m - k]
    peak("split_sums", ar + br, ai - bi, ai + bi, ar - br, zr[:, :1] + zi[:, :1], zr[:, :1] - zi[:, :1])
    er, ei = (ar + br) >> 2, (ai - bi) >> 2
    tr, ti = _cmul(ai + bi, -(ar - br), split_tw[k])  # O = -i (A - conj B)
    pr, pi = er + tr, ei + ti
    qr, qi = er - tr, ei - ti
    peak("spectrum", pr, pi, qr, qi)
    p = np.empty((f, m + 1), dtype=np.int64)
    p[:, m - k] = qr * qr + qi * qi  # first, so that k = M/2 ends with P's value
    p[:, k] = pr * pr + pi * pi
    x0 = (zr[:, 0] + zi[:, 0]) >> 1
    xm = (zr[:, 0] - zi[:, 0]) >> 1
    p[:, 0] = x0 * x0
    p[:, m] = xm * xm
    peak("power", p)
    return p


def _bitlen(v: np.ndarray) -> np.ndarray:
    """Bits needed for non-negative int64 values (0 for 0), exactly (no float rounding)."""
    v = v.astype(np.uint64)
    out = np.zeros(v.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = v >= (np.uint64(1) << np.uint64(s))
        out += np.where(big, s, 0)
        v = np.where(big, v >> np.uint64(s), v)
    return out + (v > 0)


def _log_q8(mel: np.ndarray, sh: np.ndarray, t: IntFeaturizerTables) -> np.ndarray:
    """mel_int [F, n_mels] (int64 >= 0), frame shifts sh [F, 1] -> Q7.8 int16 ln(mel)."""
    e = _bitlen(mel) - 1  # floor(log2), -1 for 0
    v = mel.astype(np.uint64)
    up = np.clip(16 - e, 0, 63).astype(np.uint64)
    down = np.clip(e - 16, 0, 63).astype(np.uint64)
    f = ((v << up) >> down).astype(np.int64) & 0xFFFF  # 16 bits after the leading one
    frac_bits = 16 - LOG_TABLE_BITS
    idx, r = f >> frac_bits, f & ((1 << frac_bits) - 1)
    tab = t.log2_table.astype(np.int64)
    interp = tab[idx] + (((tab[idx + 1] - tab[idx]) * r) >> frac_bits)
    l2 = ((e + sh + t.exp0) << 16) + interp  # log2(mel in float units), Q16
    out = (l2 * LN2_Q16 + (1 << 23)) >> 24
    return saturate_int16(np.where(mel > 0, out, t.log_floor))


# ---------------------------------------------------------------- the featurizer


def windows_to_logmel_q(
    windows: np.ndarray,
    gain: np.ndarray,
    params: FeatureParams = FeatureParams(),
    trace: Optional[dict[str, int]] = None,
) -> np.ndarray:
    """Pre-emphasised windows [..., window_size] in the 2^13 input scale (int64) and their
    gain shifts g [...] (see `ring_gain`) -> int16 Q7.8 log-mel [..., n_mels].

    The shared core of every path (steps 2-6). Computed in int64, so nothing wraps here; the
    C computes in int32 and matches only if no value exceeds int32. `trace`, if given, gets
    the largest |value| of every int32 quantity by step (input, each FFT stage, the split
    step's sums) and the largest power (int64): the overflow tests check them.
    """
    t = int_tables(params)
    lead = windows.shape[:-1]
    nw, n, m = params.window_size, params.fft_size, t.m
    g = np.asarray(gain, dtype=np.int64).reshape(-1, 1)  # [F, 1]
    y = np.zeros((g.shape[0], n), dtype=np.int64)  # [F, N]
    y[:, :nw] = np.asarray(windows, dtype=np.int64).reshape(-1, nw) << g
    peak = _Peaks(trace)
    peak("preemphasis", y)
    if t.window is not None:
        y[:, :nw] = ((2 * y[:, :nw]) * t.window.astype(np.int64)) >> 16
    zr = np.empty((y.shape[0], m), dtype=np.int64)
    zi = np.empty_like(zr)
    zr[:, t.pos] = y[:, 0::2]  # scatter into digit-reversed order
    zi[:, t.pos] = y[:, 1::2]
    peak("input", zr, zi)
    for s, tw in enumerate(t.stage_tw):
        _radix4_stage(zr, zi, tw)
        peak(f"radix4_{s}", zr, zi)
    if t.radix2:
        _radix2_last(zr, zi, t.split_tw)
        peak("radix2", zr, zi)
    p = _power(zr, zi, t.split_tw, peak)  # [F, M + 1]
    sh = np.maximum(_bitlen(np.bitwise_or.reduce(p, axis=1)) - 32, 0)[:, None]  # [F, 1]
    p32 = p >> sh
    mel = np.empty((p.shape[0], params.n_mels), dtype=np.int64)
    off = 0
    for j, (s, ln) in enumerate(zip(t.mel_start.tolist(), t.mel_len.tolist())):
        mel[:, j] = p32[:, s : s + ln] @ t.mel_weights[off : off + ln].astype(np.int64)
        off += ln
    if t.delta_q:
        mel += t.delta_q >> sh
    peak("mel", mel)
    return _log_q8(mel, sh - 2 * g, t).reshape(*lead, params.n_mels)


def _preemphasised(x: np.ndarray, params: FeatureParams) -> np.ndarray:
    """int16 samples [..., S] -> int64 y = x * 2^13 - A x[n-1] (x[-1] = 0)."""
    a = int_tables(params).preemph
    x = x.astype(np.int64)
    y = x << PRE_SHIFT
    y[..., 1:] -= a * x[..., :-1]
    return y


def _check_pcm(samples: Any, what: str) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype != np.int16:
        raise TinyKWSError(f"{what}: expected int16 PCM, got dtype {x.dtype} (see pcm16_from_float)")
    return x


def frames_from_stream_q(samples: Any, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """What the C featurizer yields for a recording fed hop by hop from a reset: int16
    Q7.8 [T, n_mels], T = len // hop - first_block + 1 (warm-up frames left out), like
    `tinykws.features.frames_from_stream`."""
    x = _check_pcm(samples, "frames_from_stream_q")
    if x.ndim != 1:
        raise TinyKWSError(f"frames_from_stream_q: expected a 1-D recording, got shape {x.shape}")
    n_blocks = x.shape[0] // params.hop
    t = n_blocks - params.first_block + 1
    if t <= 0:
        return np.zeros((0, params.n_mels), dtype=np.int16)
    x = x[: n_blocks * params.hop]
    y = _preemphasised(x, params)
    start = params.frame_offset
    frames = np.lib.stride_tricks.sliding_window_view(y[start:], params.window_size)[:: params.hop]
    gain = ring_gain(x, params)[params.first_block - 1 :]  # [T]: block b ends frame b - first_block + 1
    out = np.empty((t, params.n_mels), dtype=np.int16)
    step = 512  # frames per batch: bounded scratch memory for long recordings
    for i in range(0, t, step):
        j = slice(i, min(t, i + step))
        out[j] = windows_to_logmel_q(frames[j], gain[j], params)
    return out


def ring_gain(x: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """The input gain shift g after each block of int16 `x` (fed from a reset): [n_blocks].

    g = 15 - bitlen(OR of (s ^ (s >> 15)) over the ring, i.e. the last ring_size raw samples,
    zeros before the start): every |s| <= 2^bitlen, so the shifted pre-emphasised samples
    (y << g) stay below 16138 * 2^15 < 2^29, the full-scale bound. Quiet frames get up to
    15 more bits of FFT precision (a block exponent, undone in the log).
    """
    t = int_tables(params)
    hop = params.hop
    n_blocks = x.shape[0] // hop
    s = x[: n_blocks * hop].astype(np.int32).reshape(n_blocks, hop)
    block_or = np.bitwise_or.reduce(s ^ (s >> 15), axis=1)  # [n_blocks]
    k = t.ring_size // hop
    padded = np.concatenate([np.zeros(k - 1, dtype=block_or.dtype), block_or])
    ring_or = np.bitwise_or.reduce(
        np.lib.stride_tricks.sliding_window_view(padded, k), axis=1
    )  # [n_blocks]
    return 15 - _bitlen(ring_or.astype(np.int64))


def logmel_q_batch(clips: Any, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """int16 clips [N, samples] -> int16 Q7.8 [N, n_frames, n_mels] (padded/cropped to
    clip_samples, fresh pre-emphasis state per clip, as `tinykws.features.logmel_batch`)."""
    x = _check_pcm(clips, "logmel_q_batch")
    if x.ndim != 2:
        raise TinyKWSError(f"logmel_q_batch: expected clips [N, samples], got shape {x.shape}")
    s = params.clip_samples
    fit = np.zeros((x.shape[0], s), dtype=np.int16)
    fit[:, : min(s, x.shape[1])] = x[:, :s]
    return np.stack([frames_from_stream_q(c, params)[: params.n_frames] for c in fit])


def logmel_q(samples: Any, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """One int16 clip -> int16 Q7.8 [n_frames, n_mels] (98 x 32)."""
    x = _check_pcm(samples, "logmel_q")
    if x.ndim != 1:
        raise TinyKWSError(f"logmel_q: expected one clip as a 1-D array, got shape {x.shape}")
    return logmel_q_batch(x[None, :], params)[0]


def pcm16_from_float(x: Any) -> np.ndarray:
    """int16-scale float samples -> int16, as the C float-in wrapper (mfcc_Filter) converts:
    round half away from zero, saturate, NaN -> 0."""
    a = np.asarray(x, dtype=np.float32).astype(np.float64)
    r = np.sign(a) * np.floor(np.abs(a) + 0.5)
    r = np.where(np.isnan(r), 0.0, r)
    return np.clip(r, -32768, 32767).astype(np.int16)


__all__ = [
    "IntFeaturizerTables",
    "frames_from_stream_q",
    "int_tables",
    "logmel_q",
    "logmel_q_batch",
    "pcm16_from_float",
    "ring_gain",
    "windows_to_logmel_q",
]
