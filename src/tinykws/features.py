"""Log-mel features: the one definition every implementation (Python, streaming, C) follows.

This is the seed's ELL featurizer (`make_featurizer.py -ws 400 --nfft 512 --iir --log
--log_delta 2.220446049250313e-16 --power_spec -fs 32`), read from ELL's sources:

1. pre-emphasis  y[n] = x[n] - 0.97 x[n-1], x[-1] = 0 at the start of each clip;
2. window        the last 400 samples, rectangular (Hamming / Hann optional);
3. power         P[k] = |FFT_512(window)[k]|^2 / 512, k = 0..256 (zero-padded FFT);
4. mel           32 triangular filters, ELL's `MelFilterBank` (see `mel_filterbank`);
5. log           ln(mel + 2.220446049250313e-16), no DCT.

Samples are int16-scale (no scaling to [-1, 1]) and arrive in blocks of 160 (10 ms). A
clip is padded/cropped to 16000 samples; frame j covers samples [80 + 160 j, 480 + 160 j),
j = 0..97: exactly what the streaming featurizer yields, its first frame after block 3.

Public API: `FeatureParams`, `mel_filterbank`, `mel_bins`, `logmel`, `logmel_batch`,
`StreamingFeaturizer`, `frames_from_stream`.
"""

from __future__ import annotations

import json
import math
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, Iterator, Optional

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.rfft import rfft_into

WINDOWS = ("rectangular", "hamming", "hann")


@dataclass(frozen=True)
class FeatureParams:
    """Every constant of the feature definition; saved with each dataset and model.

    Defaults are the seed's ELL featurizer flags. Changing any field changes the features,
    so datasets, checkpoints and generated C all carry the params that made them.
    """

    sample_rate: int = 16000
    """audio sample rate in Hz; clips at other rates are resampled before featurizing"""
    window_size: int = 400
    """samples per analysis window (25 ms): the last `window_size` pre-emphasised samples"""
    hop: int = 160
    """samples per input block (10 ms): one feature frame per block once the window is full"""
    fft_size: int = 512
    """FFT length; the window is zero-padded to it. Power spectrum has fft_size//2+1 bins"""
    n_mels: int = 32
    """number of triangular mel filters = features per frame"""
    fmin: float = 0.0
    """lowest mel point in Hz (ELL fixes 0)"""
    fmax: float = 8000.0
    """highest mel point in Hz (ELL fixes sample_rate / 2)"""
    preemphasis: float = 0.97
    """pre-emphasis coefficient in [0, 1]: y[n] = x[n] - preemphasis * x[n-1]; 0 disables it"""
    window: str = "rectangular"
    """window function: rectangular (the seed's), hamming or hann (both symmetric)"""
    power_spec: bool = True
    """True: P = |X|^2 / fft_size (seed's --power_spec). False: magnitude |X|"""
    log_delta: float = 2.220446049250313e-16
    """finite, > 0: added before the natural log, so silence gives ln(delta) instead of -inf"""
    clip_samples: int = 16000
    """a clip is padded with zeros or cropped to this many samples (1 s -> 98 frames)"""

    # the integer fields: positive whole numbers up to these bounds (no real featurizer
    # comes near them; they keep a damaged checkpoint from asking for absurd allocations)
    INT_LIMITS = {"sample_rate": 384_000, "window_size": 1 << 16, "hop": 1 << 16,
                  "fft_size": 1 << 16, "n_mels": 1024, "clip_samples": 1 << 24}  # fmt: skip

    def __post_init__(self) -> None:
        problems = self._value_problems()
        if problems:  # the checks below assume sane types
            raise TinyKWSError("bad feature parameters: " + "; ".join(problems))
        if self.window not in WINDOWS:
            problems.append(f"window must be one of {', '.join(WINDOWS)}, not {self.window!r}")
        if self.window_size > self.fft_size:
            problems.append(f"window_size {self.window_size} exceeds fft_size {self.fft_size}")
        if self.fft_size % 2:
            problems.append(f"fft_size must be even, not {self.fft_size}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(
                f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, fmax={self.fmax}"
            )
        if self.hop > 0 and self.clip_samples < self.first_block * self.hop:  # first_block / hop
            problems.append(f"clip_samples {self.clip_samples} is shorter than one window")
        if self.n_mels > self.n_bins:
            problems.append(f"n_mels {self.n_mels} exceeds the {self.n_bins} spectrum bins")
        if problems:
            raise TinyKWSError("bad feature parameters: " + "; ".join(problems))

    def _value_problems(self) -> list[str]:
        """Types and ranges field by field: whole numbers in `INT_LIMITS`, finite floats,
        pre-emphasis in [0, 1], log_delta > 0, power_spec a bool. A checkpoint whose
        params hold NaN (a NaN pre-emphasis made every score NaN: 0 detections, the argmax
        of NaN as accuracy) is refused where it is read."""
        problems = []
        for name, top in self.INT_LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= top:
                problems.append(f"{name} must be positive, a whole number up to {top}, not {v!r}")
        for name in ("fmin", "fmax", "preemphasis", "log_delta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
                problems.append(f"{name} must be a finite number, not {v!r}")
        if not problems:
            if not 0 <= self.preemphasis <= 1:
                problems.append(f"preemphasis must be in [0, 1], not {self.preemphasis}")
            if not self.log_delta > 0:
                problems.append("log_delta must be > 0")
        if not isinstance(self.power_spec, (bool, np.bool_)):
            problems.append(f"power_spec must be true or false, not {self.power_spec!r}")
        return problems

    # ---- derived sizes
    @property
    def n_bins(self) -> int:
        """Power-spectrum bins: fft_size // 2 + 1 (257)."""
        return self.fft_size // 2 + 1

    @property
    def first_block(self) -> int:
        """Blocks needed before the first frame: ceil(window_size / hop) (3)."""
        return -(-self.window_size // self.hop)

    @property
    def frame_ms(self) -> float:
        """Milliseconds from one frame to the next: 1000 * hop / sample_rate (10.0); the
        detector counts its smoothing and refractory time in these steps."""
        return 1000.0 * self.hop / self.sample_rate

    @property
    def frame_offset(self) -> int:
        """Start sample of frame 0: first_block * hop - window_size (80)."""
        return self.first_block * self.hop - self.window_size

    @property
    def n_frames(self) -> int:
        """Frames per clip: clip_samples // hop - first_block + 1 (98)."""
        return self.clip_samples // self.hop - self.first_block + 1

    # ---- serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureParams":
        """Rebuild from `to_dict()` output; unknown keys are an error (a newer tinykws?)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TinyKWSError(f"unknown feature parameters {unknown}; made by a newer tinykws?")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "FeatureParams":
        return cls.from_dict(json.loads(s))


# ---------------------------------------------------------------- filterbank


def hz_to_mel(f: float) -> float:
    """ELL's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * math.log1p(f / 700.0)


def mel_to_hz(m: float) -> float:
    return 700.0 * (math.exp(m / 1127.0) - 1.0)


def mel_bins(params: FeatureParams = FeatureParams()) -> np.ndarray:
    """The n_mels + 2 filter edge bins (int64): b_i = floor(f_i (fft_size + 1) / sample_rate).

    f_i are n_mels + 2 points equally spaced in mel from fmin to fmax. The `fft_size + 1`
    (513, not 512) is ELL's, as in python_speech_features.
    """
    lo, hi = hz_to_mel(params.fmin), hz_to_mel(params.fmax)
    inc = (hi - lo) / (params.n_mels + 1)
    bins = [
        int(math.floor(mel_to_hz(lo + i * inc) * (params.fft_size + 1) / params.sample_rate))
        for i in range(params.n_mels + 2)
    ]
    return np.array(bins, dtype=np.int64)


@lru_cache(maxsize=16)
def _mel_filterbank_cached(params: FeatureParams) -> np.ndarray:
    b = mel_bins(params)
    fb = np.zeros((params.n_bins, params.n_mels))  # [bin, mel]
    for j in range(params.n_mels):
        lo, mid, hi = int(b[j]), int(b[j + 1]), int(b[j + 2])
        k = np.arange(lo, mid)
        fb[k, j] = (k - lo + 0.5) / (mid - lo) if mid > lo else 0.0
        k = np.arange(mid, min(hi, params.n_bins))
        fb[k, j] = (hi - k - 0.5) / (hi - mid) if hi > mid else 0.0
    fb.setflags(write=False)
    return fb


def mel_filterbank(params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Mel weights, float64 [n_bins, n_mels] (257 x 32): mel = P @ W.

    ELL's `TriangleFilter::operator[]` (what its node computes and compiles), with
    b = `mel_bins(params)` and filter j over bins k:
      rising   (k - b_j + 0.5) / (b_{j+1} - b_j)      for b_j     <= k < b_{j+1}
      falling  (b_{j+2} - k - 0.5) / (b_{j+2} - b_{j+1}) for b_{j+1} <= k < b_{j+2}
    i.e. the triangle sampled at bin centres (the +-0.5). No area normalisation. The
    result is read-only and cached; copy it before changing it.
    """
    return _mel_filterbank_cached(params)


@lru_cache(maxsize=16)
def window_table(params: FeatureParams) -> Optional[np.ndarray]:
    """The analysis window, float32 [window_size], or None for rectangular. The one
    definition: the Python features and the generated C table both use it (read-only:
    it is cached)."""
    if params.window == "rectangular":
        return None
    w = np.hamming(params.window_size) if params.window == "hamming" else np.hanning(params.window_size)
    return w.astype(np.float32)


@lru_cache(maxsize=16)
def _fb32(params: FeatureParams) -> np.ndarray:
    return np.ascontiguousarray(mel_filterbank(params), dtype=np.float32)


# ---------------------------------------------------------------- input checks


def _check_samples(x: Any, what: str) -> np.ndarray:
    """As float32 int16-scale samples; TinyKWSError on wrong dtype or non-finite values."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TinyKWSError(f"{what}: expected int16 or float samples, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise TinyKWSError(f"{what}: samples contain NaN or infinity")
    return a.astype(np.float32, copy=False)


# ---------------------------------------------------------------- batch path


def _preemphasis(x: np.ndarray, coef: float) -> np.ndarray:
    """y[n] = x[n] - coef x[n-1], x[-1] = 0, along the last axis (float32)."""
    if coef == 0:
        return x
    y = np.empty_like(x)
    y[..., 0] = x[..., 0]
    np.subtract(x[..., 1:], np.float32(coef) * x[..., :-1], out=y[..., 1:])
    return y


class _Workspace(threading.local):
    """Per-thread scratch buffers, reused across calls.

    Fresh multi-MB arrays on every chunk cost more in page faults than the FFT itself
    (measured: 3-4x slower), so the batch path writes into buffers that live on.
    """

    def __init__(self) -> None:
        self.bufs: dict[tuple, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype: Any, zero: bool = False) -> np.ndarray:
        key = (name, shape, np.dtype(dtype).str)
        a = self.bufs.get(key)
        if a is None:
            if len(self.bufs) > 32:
                self.bufs.clear()
            a = self.bufs[key] = np.zeros(shape, dtype=dtype)
        elif zero:
            a.fill(0)
        return a


_ws = _Workspace()


def windows_to_logmel(
    windows: np.ndarray, params: FeatureParams = FeatureParams(), out: Optional[np.ndarray] = None
) -> np.ndarray:
    """Pre-emphasised windows [..., window_size] -> log-mel float32 [..., n_mels].

    The shared core of the batch and streaming paths: window, zero-padded FFT, power, mel,
    log. `windows` may be a strided view; it is copied once into a zero-padded
    [M, fft_size] float32 buffer so the FFT runs on contiguous rows. `out`, if given, is a
    C-contiguous float32 array of the result's shape.
    """
    lead = windows.shape[:-1]
    m = int(np.prod(lead, dtype=np.int64))
    nfft, nw, nb = params.fft_size, params.window_size, params.n_bins
    buf = _ws.get(f"frames{nw}", (m, nfft), np.float32)  # [M, fft_size]; columns >= nw stay 0
    buf.reshape(*lead, nfft)[..., :nw] = windows
    win = window_table(params)
    if win is not None:
        buf[:, :nw] *= win
    spec = _ws.get("spec", (m, nb), np.complex64)  # [M, n_bins]
    rfft_into(buf, spec)  # scipy's pocketfft, no allocation (tinykws.rfft)
    sq = np.square(spec.view(np.float32), out=_ws.get("sq", (m, 2 * nb), np.float32))
    p = np.add(sq[:, 0::2], sq[:, 1::2], out=_ws.get("power", (m, nb), np.float32))  # |X|^2
    if params.power_spec:
        p *= np.float32(1.0 / nfft)
    else:
        np.sqrt(p, out=p)
    if out is None:
        out = np.empty((*lead, params.n_mels), dtype=np.float32)
    mel = out.reshape(m, params.n_mels)
    # Bit-equal by construction: BLAS picks its kernel (and so the summation order) by the
    # matrix height, so a batch is multiplied one clip ([n_frames, n_bins]) at a time. A
    # clip's features then never depend on how many clips it was batched with (measured on
    # another machine: 5-8 of 3136 values one ulp apart between batch sizes 1 and 12).
    rows = lead[-1] if len(lead) > 1 else m
    fb = _fb32(params)
    for r in range(0, m, max(rows, 1)):  # [rows, n_bins] @ [n_bins, n_mels] -> [rows, n_mels]
        np.matmul(p[r : r + rows], fb, out=mel[r : r + rows])
    mel += np.float32(params.log_delta)
    np.log(mel, out=mel)
    return out


_CHUNK = 8  # clips per FFT batch: 1.6 MB of float32 windows, cache-friendly (measured best)


def _clip_windows(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Pre-emphasised clips [N, clip_samples] -> strided view [N, n_frames, window_size].

    Frame j = samples [frame_offset + hop j, frame_offset + hop j + window_size).
    """
    start = params.frame_offset
    stop = start + (params.n_frames - 1) * params.hop + params.window_size
    frames = np.lib.stride_tricks.sliding_window_view(y[:, start:stop], params.window_size, axis=1)
    return frames[:, :: params.hop]


def _preemphasised_clips(x: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Clips [n, any length] -> padded/cropped, pre-emphasised float32 [n, clip_samples]."""
    n, length = x.shape[0], min(x.shape[1], params.clip_samples)
    y = _ws.get("clips", (n, params.clip_samples), np.float32, zero=length < params.clip_samples)
    xs = x[:, :length]
    y[:, 0] = xs[:, 0] if length else 0
    if params.preemphasis == 0:
        y[:, :length] = xs
    else:  # y[n] = x[n] - a x[n-1], in float32 exactly as the streaming path does it
        np.multiply(xs[:, :-1], np.float32(params.preemphasis), out=y[:, 1:length], casting="unsafe")
        np.subtract(xs[:, 1:], y[:, 1:length], out=y[:, 1:length], casting="unsafe")
    if length < params.clip_samples:  # first padded sample: 0 - a x[last]
        y[:, length:] = 0
        y[:, length] = -np.float32(params.preemphasis) * xs[:, -1].astype(np.float32) if length else 0
    return y


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return None
    return ThreadpoolController()


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run BLAS single-threaded inside this block (process-wide, re-entrant across threads).

    The mel matmul is small ([~800, 257] @ [257, 32]); OpenBLAS splitting it over threads on
    a busy 2-core machine was measured 20x slower (800 vs 37 us per clip). Parallelism comes
    from our own worker threads instead. The first user sets the limit, the last restores it.
    """
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0 and _blas_controller() is not None:
            _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def logmel_batch(
    clips: Any, params: FeatureParams = FeatureParams(), out: Optional[np.ndarray] = None
) -> np.ndarray:
    """Many clips [N, samples] (int16 or int16-scale floats) -> float32 [N, n_frames, n_mels].

    Each clip is padded/cropped to clip_samples and starts with fresh pre-emphasis state.
    Works in chunks of clips, one batched float32 FFT per chunk, into reused buffers.
    `out`: optional C-contiguous float32 [N, n_frames, n_mels] to write into.
    """
    x = np.asarray(clips)
    if x.ndim != 2:
        raise TinyKWSError(f"logmel_batch: expected clips [N, samples], got shape {x.shape}")
    shape = (x.shape[0], params.n_frames, params.n_mels)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise TinyKWSError(f"logmel_batch: out must be C-contiguous float32 {shape}")
    with single_thread_blas():
        for i in range(0, x.shape[0], _CHUNK):
            xi = _check_samples(x[i : i + _CHUNK], "logmel_batch")
            y = _preemphasised_clips(xi, params)
            windows_to_logmel(_clip_windows(y, params), params, out=out[i : i + _CHUNK])
    return out


def logmel(samples: Any, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """One clip (1-D int16, or floats at int16 scale) -> float32 [n_frames, n_mels] (98 x 32).

    Floats in [-1, 1] are not rescaled: the seed fed int16-scale values, and so must you.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise TinyKWSError(f"logmel: expected one clip as a 1-D array, got shape {x.shape}")
    return logmel_batch(x[None, :], params)[0]


# ---------------------------------------------------------------- streaming


class StreamingFeaturizer:
    """Block-by-block features, as on the device: `step(160 samples) -> frame or None`.

    Keeps the pre-emphasis state (last input sample) and the last window_size
    pre-emphasised samples across blocks. Returns None until the window is full (the first
    frame comes after block `first_block`, i.e. the 3rd), then one float32 [n_mels] frame
    per block. `reset()` starts a new clip.
    """

    def __init__(self, params: FeatureParams = FeatureParams()) -> None:
        self.params = params
        self._buf = np.zeros(params.first_block * params.hop, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget all history: x[-1] = 0 and an empty window."""
        self._buf[:] = 0
        self._prev = np.float32(0.0)
        self._blocks = 0

    def step(self, block: Any) -> Optional[np.ndarray]:
        """Feed exactly `hop` samples; get a float32 [n_mels] frame once the window is full."""
        p = self.params
        x = _check_samples(block, "StreamingFeaturizer.step")
        if x.shape != (p.hop,):
            raise TinyKWSError(
                f"StreamingFeaturizer.step: expected a block of {p.hop} samples, got shape {x.shape}"
            )
        y = np.empty(p.hop, dtype=np.float32)
        y[0] = x[0] - np.float32(p.preemphasis) * self._prev
        np.subtract(x[1:], np.float32(p.preemphasis) * x[:-1], out=y[1:])
        self._prev = x[-1]
        self._buf[: -p.hop] = self._buf[p.hop :]  # shift left by one block
        self._buf[-p.hop :] = y
        self._blocks += 1
        if self._blocks < p.first_block:
            return None
        return windows_to_logmel(self._buf[-p.window_size :][None, :], p)[0]


def frames_from_stream(samples: Any, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """What a fresh StreamingFeaturizer yields for a whole recording: float32 [T, n_mels].

    Any length: the recording is cut into hop-sized blocks (a partial last block is
    dropped), so T = len // hop - first_block + 1 (0 if too short). Computed in one batch,
    identical in definition to feeding `step` block by block; for a 1-s clip it equals
    `logmel`.
    """
    x = _check_samples(samples, "frames_from_stream")
    if x.ndim != 1:
        raise TinyKWSError(f"frames_from_stream: expected a 1-D recording, got shape {x.shape}")
    n_blocks = x.shape[0] // params.hop
    t = n_blocks - params.first_block + 1
    if t <= 0:
        return np.zeros((0, params.n_mels), dtype=np.float32)
    y = _preemphasis(x[None, : n_blocks * params.hop], params.preemphasis)[0]
    start = params.frame_offset
    frames = np.lib.stride_tricks.sliding_window_view(y[start:], params.window_size)[:: params.hop]
    out = np.empty((t, params.n_mels), dtype=np.float32)
    step = _CHUNK * params.n_frames  # bounded scratch memory for hour-long recordings
    with single_thread_blas():
        for i in range(0, t, step):
            windows_to_logmel(frames[i : min(t, i + step)], params, out=out[i : i + step])
    return out
