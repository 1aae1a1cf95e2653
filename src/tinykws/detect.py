"""Streaming keyword detection: 160-sample blocks -> features -> model steps -> detections.

Audio arrives in 10-ms blocks (160 samples at 16 kHz); `StreamingFeaturizer` turns each into
at most one log-mel frame and `KWSModel.step` advances the recurrent state by one frame.
How the state is managed depends on how the model was trained (`mode`):

- `rolling`: models trained with `--rolling` saw long streams, so one state runs forever
  and scores are read every frame.
- `window` (default for the other models): a sliding 1-s window, re-classified every
  `hop_ms`. It is computed incrementally with K = window / hop staggered states fed the
  same frames, each reset after a full window: exactly `forward()` on the last 98 frames,
  at K model steps per frame and K hidden states of memory (no frame buffer).
- `reset`: one state, reset every `reset_ms`; scores read every frame once half a window
  has been seen. One model step per frame, but the model sees contexts it never trained on.

docs/architecture.md ("Evaluation and detection") gives the measurements behind the
default. Scores (softmax) are then smoothed by a moving average over `smoothing_ms`; a
keyword (never `_unknown_`/`_silence_`) fires when its smoothed score reaches `threshold`
and no detection happened in the last `refractory_ms` (`Trigger`). `IntTrigger` is the
same rule in exact integer arithmetic on Q15 scores, for integer (int8) builds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import deque
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Optional, Sequence

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.labels import NON_KEYWORDS
from tinykws.tuning import torch_threads

if TYPE_CHECKING:
    from tinykws.checkpoint import Checkpoint

Mode = Literal["auto", "rolling", "window", "reset"]
MODES = ("auto", "rolling", "window", "reset")


@dataclass(frozen=True)
class Detection:
    """A keyword heard at `time_s` (seconds from the stream start, when it fired)."""

    time_s: float
    label: str
    confidence: float  # smoothed softmax score at the time it fired

    def to_dict(self) -> dict:
        return asdict(self)


DETECTOR_FILE = "detector.json"  # RUN_DIR/detector.json: the run's DetectorConfig + operating point
# Detection times are multiples of the frame period; comparing time differences with this
# slack makes `refractory_ms=1000` mean exactly 100 frames despite float rounding (the C
# detector counts frames: `DetectorConfig.refractory_steps`).
TIME_EPS_S = 1e-6
# Longest smoothing, refractory, hop or reset time (ms): an hour. Far beyond any use for a
# ~1-s keyword, and it keeps every step count a small int32 in the C detector (a 1e300-ms
# refractory time became a 300-digit #define; 1e308-ms smoothing a Python OverflowError).
MAX_DURATION_MS = 3_600_000.0


@dataclass(frozen=True)
class DetectorConfig:
    """The one definition of the detector: how class scores become detections.

    Scores (softmax probabilities) are averaged over the last `smoothing_ms`; the best
    keyword class fires when its average reaches `threshold` and the last detection is at
    least `refractory_ms` old. `keywords` names the classes that may fire (None: every
    class but `_unknown_` and `_silence_`). `mode` says how a model's state is run
    (see the module docstring); `hop_ms` / `reset_ms` belong to modes `window` / `reset`.

    Saved in the run as `RUN_DIR/detector.json` (with the operating point the threshold
    was chosen at, `set_operating_point`); `tinykws detect`, the report and the generated
    C detector (`tinykws.codegen`, mode `rolling` only) all read it from there.
    """

    threshold: float = 0.7  # smoothed score a keyword must reach
    smoothing_ms: float = 300.0  # moving-average length over the score stream
    refractory_ms: float = 1000.0  # silence after a detection
    mode: Mode = "auto"  # auto = rolling for rolling-trained models, else `window`
    hop_ms: float = 100.0  # window mode: a fresh 1-s classification every hop
    reset_ms: float = 1000.0  # reset mode: state reset period
    keywords: Optional[tuple[str, ...]] = None  # classes that fire; None = all but NON_KEYWORDS

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TinyKWSError(f"unknown detector mode {self.mode!r}; choose one of {', '.join(MODES)}")
        for name in ("threshold", "smoothing_ms", "refractory_ms", "hop_ms", "reset_ms"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TinyKWSError(f"detector {name} must be a finite number >= 0, not {v!r}")
            if name != "threshold" and v > MAX_DURATION_MS:
                raise TinyKWSError(f"detector {name} is at most {MAX_DURATION_MS:.0f} (an hour), "
                                   f"not {v:g}")
        if self.hop_ms <= 0 or self.reset_ms <= 0:
            raise TinyKWSError("detector hop_ms and reset_ms must be positive")
        if self.threshold > 1:  # a softmax score never gets there: nothing would fire
            raise TinyKWSError(f"detector threshold is a score in [0, 1], not {self.threshold}")
        if self.keywords is not None:
            kw = () if isinstance(self.keywords, str) else tuple(self.keywords)
            if not kw or not all(isinstance(k, str) for k in kw):
                raise TinyKWSError("detector keywords must be a non-empty list of class names")
            object.__setattr__(self, "keywords", kw)

    def replace(self, **changes: Any) -> "DetectorConfig":
        """A copy with `changes`; None values keep the current setting."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def keyword_mask(self, categories: Sequence[str]) -> np.ndarray:
        """bool [C]: which classes may fire."""
        cats = list(categories)
        if self.keywords is None:
            return np.array([c not in NON_KEYWORDS for c in cats])
        missing = [k for k in self.keywords if k not in cats]
        if missing:
            raise TinyKWSError(f"detector keywords {missing} are not classes of the model "
                               f"({', '.join(cats)})")
        return np.array([c in self.keywords for c in cats])

    def resolve_mode(self, checkpoint: "Checkpoint") -> str:
        """`mode` with `auto` resolved for a checkpoint: `rolling` for rolling-trained models."""
        if self.mode != "auto":
            return self.mode
        return "rolling" if checkpoint.rolling else "window"

    def smooth_steps(self, period_ms: float) -> int:
        """Score vectors in the moving average when scores come every `period_ms`."""
        return max(1, round(self.smoothing_ms / period_ms))

    def refractory_steps(self, period_ms: float) -> int:
        """Score steps after a detection before the next may fire: the smallest n with
        n * period >= refractory (up to TIME_EPS_S), as `Trigger` compares times."""
        return max(0, math.ceil((self.refractory_ms - 1000.0 * TIME_EPS_S) / period_ms))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keywords"] = None if self.keywords is None else list(self.keywords)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectorConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TinyKWSError(f"unknown detector settings {unknown}")
        try:
            return cls(**d)
        except TypeError as e:
            raise TinyKWSError(f"bad detector settings: {e}") from None


@dataclass(frozen=True)
class OperatingPoint:
    """Where the run's threshold was chosen: the DET-curve point picked for a target
    false-alarm rate on held-apart data."""

    threshold: float
    target_fa_per_hour: float
    fa_per_hour: float  # measured at `threshold` on that data
    recall: float  # measured at `threshold` on that data
    met: bool  # False: no threshold reached the target; the lowest-FA point was taken
    hours: Optional[float] = None  # length of the held-apart audio
    source: str = ""  # what the curve was measured on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_operating_point(curve: Sequence[Any], target_fa_per_hour: float,
                           hours: Optional[float] = None, source: str = "") -> OperatingPoint:
    """The DET-curve point for a target false-alarm rate.

    `curve`: points with `threshold`, `recall`, `fa_per_hour` (`stream.StreamScore`s or
    dicts, as `stream.det_curve` makes them). Among the points with at most
    `target_fa_per_hour`, the best recall; on a tie the fewest false alarms, then the
    higher threshold (more margin). When none meets the target: the point with the fewest
    false alarms (then the best recall), marked `met=False`.
    """
    pts = [p if isinstance(p, dict) else asdict(p) for p in curve]
    pts = [p for p in pts if all(k in p for k in ("threshold", "recall", "fa_per_hour"))]
    if not pts:
        raise TinyKWSError("choose_operating_point: the DET curve has no points")
    ok = [p for p in pts if p["fa_per_hour"] <= target_fa_per_hour]
    if ok:
        best = max(ok, key=lambda p: (p["recall"], -p["fa_per_hour"], p["threshold"]))
    else:
        best = min(pts, key=lambda p: (p["fa_per_hour"], -p["recall"], -p["threshold"]))
    return OperatingPoint(float(best["threshold"]), float(target_fa_per_hour),
                          float(best["fa_per_hour"]), float(best["recall"]), bool(ok),
                          hours, source)


def detector_path(run_dir: Path | str) -> Path:
    return Path(run_dir) / DETECTOR_FILE


def load_detector(run_dir: Path | str) -> tuple[DetectorConfig, Optional[OperatingPoint]]:
    """The run's detector (RUN_DIR/detector.json) and its operating point; the defaults
    (and None) when the file does not exist. A malformed file is a TinyKWSError."""
    path = detector_path(run_dir)
    if not path.is_file():
        return DetectorConfig(), None
    try:
        d = json.loads(path.read_text())
        cfg = DetectorConfig.from_dict(d["detector"])
        op = d.get("operating_point")
        return cfg, OperatingPoint(**op) if op else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TinyKWSError(f"{path} is not a detector file ({e}); delete it to use the "
                           "defaults") from None


def load_detector_config(run_dir: Path | str | None) -> DetectorConfig:
    """The run's DetectorConfig (defaults without a run or without detector.json)."""
    return DetectorConfig() if run_dir is None else load_detector(run_dir)[0]


def save_detector(run_dir: Path | str, config: DetectorConfig,
                  operating_point: Optional[OperatingPoint] = None) -> Path:
    """Write RUN_DIR/detector.json atomically (temporary file, then rename)."""
    path = detector_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"detector": config.to_dict(),
            "operating_point": operating_point.to_dict() if operating_point else None}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def set_operating_point(run_dir: Path | str, curve: Sequence[Any], target_fa_per_hour: float = 1.0,
                        hours: Optional[float] = None, source: str = "",
                        config: Optional[DetectorConfig] = None) -> OperatingPoint:
    """Choose the threshold on a DET curve measured on held-apart data
    (`choose_operating_point`) and store it as the run's detector threshold.

    `config`: the detector the curve was measured with (default: the run's current one);
    its other settings are saved unchanged. Returns the chosen point.
    """
    op = choose_operating_point(curve, target_fa_per_hour, hours, source)
    base = config if config is not None else load_detector_config(run_dir)
    save_detector(run_dir, base.replace(threshold=op.threshold), op)
    return op


# --------------------------------------------------------------------------- state helpers


def _where_rows(mask, fresh, state):
    """`state` with the batch rows of `mask` [B] replaced by `fresh`.

    Model state is `[layers, B, H]`, or a tuple of those (LSTM)."""
    import torch

    if isinstance(state, torch.Tensor):
        return torch.where(mask.view(1, -1, 1), fresh, state)
    if isinstance(state, (tuple, list)):
        return type(state)(_where_rows(mask, f, s) for f, s in zip(fresh, state))
    raise TypeError(f"unsupported model state type {type(state).__name__}")


# --------------------------------------------------------------------------- scorers


class FrameScorer:
    """Frames `[32]` in -> softmax score vectors `[C]` out (0 or 1 per frame), per mode."""

    def __init__(self, model, mode: str, win: int, hop_frames: int = 10, reset_frames: int = 98):
        import torch

        if mode not in ("rolling", "window", "reset"):
            raise TinyKWSError(f"unknown detector mode {mode!r}; choose rolling, window or reset")
        self.torch = torch
        self.model, self.mode, self.win = model, mode, win
        self.hop = max(1, hop_frames)
        self.reset_frames = max(1, reset_frames)
        self.k = -(-win // self.hop) if mode == "window" else 1  # staggered states
        self.period_frames = self.hop if mode == "window" else 1  # frames between scores
        self.reset()

    def reset(self) -> None:
        self.fresh = self.model.init_state(self.k)
        self.state = self.model.init_state(self.k)
        # window mode: state i starts i*hop frames late (negative age = not started yet)
        self.age = -self.hop * np.arange(self.k) if self.mode == "window" else np.zeros(1, int)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        torch = self.torch
        x = torch.as_tensor(np.asarray(frame, np.float32)).view(1, -1).expand(self.k, -1)
        with torch.no_grad(), torch_threads(1):
            logits, self.state = self.model.step(x, self.state)
        self.age += 1
        if self.mode == "rolling":
            return torch.softmax(logits[0], -1).numpy()
        if self.mode == "reset":
            out = None
            if self.age[0] >= self.win // 2:
                out = torch.softmax(logits[0], -1).numpy()
            if self.age[0] >= self.reset_frames:
                self.state, self.age[:] = self.model.init_state(1), 0
            return out
        # window: the state that has seen exactly `win` frames scores, then restarts
        done = self.age >= self.win
        out = torch.softmax(logits[int(np.argmax(done))], -1).numpy() if done.any() else None
        restart = done | (self.age <= 0)
        if restart.any():
            with torch.no_grad():
                self.state = _where_rows(torch.as_tensor(restart), self.fresh, self.state)
            # wait K*hop - win frames so that the K states score exactly every hop
            self.age[done] = self.win - self.k * self.hop
        return out


# --------------------------------------------------------------------------- trigger


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
    kw = (np.array([c not in NON_KEYWORDS for c in categories]) if keywords is None
          else np.asarray(keywords, bool))
    if not kw.any() or len(times) == 0:
        return []
    masked = np.where(kw[None, :], smoothed, -np.inf)
    best = masked.argmax(1)
    best_score = masked[np.arange(len(best)), best]
    out: list[Detection] = []
    last = -np.inf
    for i in np.flatnonzero(best_score >= threshold):
        if times[i] - last >= refractory_s - TIME_EPS_S:
            out.append(Detection(float(times[i]), categories[best[i]], float(best_score[i])))
            last = times[i]
    return out


class Trigger:
    """Streaming form of `moving_average` + `pick_detections`, one score vector at a time.

    The generated C detector of float builds (runtime `tkws_detect.c`) is this, counting
    score steps instead of seconds (`DetectorConfig.refractory_steps`); int8 builds run
    `IntTrigger`."""

    def __init__(self, categories: Sequence[str], threshold: float, smooth_n: int,
                 refractory_s: float, keywords: Optional[np.ndarray] = None):
        self.categories = list(categories)
        self.kw = (np.array([c not in NON_KEYWORDS for c in self.categories]) if keywords is None
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
        kw = (np.array([c not in NON_KEYWORDS for c in self.categories]) if keywords is None
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


# --------------------------------------------------------------------------- detector


class Detector:
    """Feed 160-sample int16 blocks (`process`), get `Detection`s back.

    `Detector(run_dir)` loads the run's checkpoint (`tinykws.checkpoint.load_model`) and its detector
    (RUN_DIR/detector.json, else the `DetectorConfig` defaults); `config` replaces the
    latter, and any of threshold ... reset_ms given (not None) override single settings.
    `model` and its `checkpoint` may be passed instead of a run (tests, benchmarks). Mode
    `auto` picks `rolling` for rolling-trained models, else `window`.
    """

    def __init__(
        self,
        run_dir: Path | str | None = None,
        threshold: Optional[float] = None,
        smoothing_ms: Optional[float] = None,
        refractory_ms: Optional[float] = None,
        mode: Optional[str] = None,
        hop_ms: Optional[float] = None,
        reset_ms: Optional[float] = None,
        model=None,
        checkpoint: "Checkpoint | None" = None,
        config: Optional[DetectorConfig] = None,
    ):
        from tinykws.features import StreamingFeaturizer

        base = config if config is not None else load_detector_config(run_dir)
        cfg = base.replace(threshold=threshold, smoothing_ms=smoothing_ms,
                           refractory_ms=refractory_ms, mode=mode, hop_ms=hop_ms,
                           reset_ms=reset_ms)
        if model is None or checkpoint is None:
            if run_dir is None:
                raise TinyKWSError("Detector needs a run folder (or a model and its checkpoint)")
            from tinykws.checkpoint import load_model

            model, checkpoint = load_model(Path(run_dir))
        self.mode = cfg.resolve_mode(checkpoint)
        self.config = cfg.replace(mode=self.mode)
        self.params = checkpoint.feature_params
        self.model = model
        self.categories = list(checkpoint.categories)
        frame_ms = self.params.frame_ms  # one block = one frame
        self.win = self.params.n_frames  # frames in one 1-s training clip (98)
        self.scorer = FrameScorer(model, self.mode, self.win,
                                  hop_frames=round(cfg.hop_ms / frame_ms),
                                  reset_frames=round(cfg.reset_ms / frame_ms))
        self.score_period_s = self.scorer.period_frames * frame_ms / 1000.0
        self.keywords = cfg.keyword_mask(self.categories)
        self.trigger = Trigger.from_config(cfg, self.categories, 1000.0 * self.score_period_s)
        self.featurizer = StreamingFeaturizer(self.params)
        self.samples = 0

    def reset(self) -> None:
        self.featurizer.reset()
        self.scorer.reset()
        self.trigger.reset()
        self.samples = 0

    def scores(self, block: np.ndarray) -> tuple[float, np.ndarray] | None:
        """One block -> (time in s, raw softmax scores `[C]`) when the model scored."""
        block = np.asarray(block)
        hop = self.params.hop
        if block.shape != (hop,):
            raise TinyKWSError(f"blocks must hold {hop} samples, got shape {block.shape}")
        self.samples += hop
        frame = self.featurizer.step(block)
        if frame is None:
            return None
        s = self.scorer(frame)
        return None if s is None else (self.samples / self.params.sample_rate, s)

    def process(self, block: np.ndarray) -> list[Detection]:
        """One 160-sample int16 block -> the detections it completed (0 or 1)."""
        r = self.scores(block)
        if r is None:
            return []
        d = self.trigger(*r)
        return [d] if d else []

    def run(self, audio: np.ndarray) -> list[Detection]:
        """All detections in an int16 signal (the tail shorter than a block is dropped)."""
        out: list[Detection] = []
        for block in blocks(audio, self.params.hop):
            out += self.process(block)
        return out

    def score_trace(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(times `[S]` s, raw scores `[S, C]`) over a whole signal from a fresh state.

        The same numbers as feeding `scores()` block by block (a test checks it), computed
        in batches: all frames at once, then one batched forward per mode. Used by the
        benchmarks, where 10 minutes of audio would take minutes frame by frame.
        """
        import torch

        from tinykws.features import frames_from_stream

        p, sc = self.params, self.scorer
        frames = torch.from_numpy(np.asarray(frames_from_stream(audio, p), np.float32))  # [T, F]
        t_all = (np.arange(len(frames)) + p.first_block) * p.hop / p.sample_rate  # [T] s
        c = len(self.categories)
        if len(frames) == 0:
            return np.zeros(0), np.zeros((0, c))
        with torch.no_grad(), torch_threads(1):
            if self.mode == "rolling":
                logits, _ = self.model.forward_sequence(frames[None])  # [1, T, C]
                return t_all, torch.softmax(logits[0], -1).double().numpy()
            if self.mode == "window":
                ends = np.arange(self.win - 1, len(frames), sc.hop)  # last frame of each window
                out = []
                for i in range(0, len(ends), 512):
                    idx = torch.from_numpy(ends[i : i + 512, None] - np.arange(self.win - 1, -1, -1))
                    out.append(torch.softmax(self.model(frames[idx]), -1))  # [b, 98, F] -> [b, C]
                return t_all[ends], torch.cat(out).double().numpy().reshape(-1, c)
            # reset: segments of reset_frames from a zero state, scored from age win // 2
            r = sc.reset_frames
            n_seg = -(-len(frames) // r)
            segs = torch.zeros(n_seg * r, frames.shape[1])
            segs[: len(frames)] = frames
            logits, _ = self.model.forward_sequence(segs.view(n_seg, r, -1))  # [n_seg, r, C]
            age = np.tile(np.arange(1, r + 1), n_seg)[: len(frames)]
            keep = age >= self.win // 2
            scores = torch.softmax(logits.reshape(n_seg * r, c)[: len(frames)], -1)
            return t_all[keep], scores.double().numpy()[keep]

    def detections_from_trace(self, times: np.ndarray, scores: np.ndarray,
                              threshold: float | None = None) -> list[Detection]:
        """Smoothing + threshold + refractory over a whole trace (threshold sweeps)."""
        cfg = self.config
        smoothed = moving_average(scores, self.trigger.buf.maxlen or 1)
        thr = cfg.threshold if threshold is None else threshold
        return pick_detections(times, smoothed, self.categories, thr, cfg.refractory_ms / 1000.0,
                               self.keywords)


def blocks(audio: np.ndarray, hop: int) -> Iterator[np.ndarray]:
    """Consecutive `hop`-sample blocks of a 1-D signal (`FeatureParams.hop`, 160 = 10 ms)."""
    audio = np.asarray(audio)
    for i in range(0, len(audio) - hop + 1, hop):
        yield audio[i : i + hop]


def detect_file(
    run_dir: Path | str,
    wav: Path | str,
    threshold: Optional[float] = None,
    smoothing_ms: Optional[float] = None,
    refractory_ms: Optional[float] = None,
    mode: Optional[str] = None,
    config: Optional[DetectorConfig] = None,
) -> list[Detection]:
    """Detections in a WAV file of any length (resampled to 16 kHz mono), with the run's
    detector (RUN_DIR/detector.json) unless `config` or single settings are given.

    The file is read in chunks (`stream_audio`), never whole: a day-long recording needs
    no more memory than a minute."""
    from tinykws.data.audio import stream_audio

    det = Detector(run_dir, threshold, smoothing_ms, refractory_ms, mode, config=config)
    found: list[Detection] = []
    carry = np.zeros(0, np.int16)  # samples short of a whole block, for the next chunk
    for chunk in stream_audio(wav):
        x = np.concatenate([carry, chunk])
        n = len(x) - len(x) % det.params.hop
        found += det.run(x[:n])
        carry = x[n:]
    return found


def detect_live(
    run_dir: Path | str,
    threshold: Optional[float] = None,
    smoothing_ms: Optional[float] = None,
    refractory_ms: Optional[float] = None,
    mode: Optional[str] = None,
    on_detection: Callable[[Detection], None] = print,
    seconds: float | None = None,
    on_start: Callable[[], None] | None = None,
) -> None:
    """Listen to the default microphone and call `on_detection` for each keyword heard.

    Runs until Ctrl-C (or `seconds`). Raises TinyKWSError when `sounddevice` (extra `live`)
    or an input device is missing.
    """
    import queue

    try:
        import sounddevice as sd
    except ImportError:
        raise TinyKWSError("--live needs the sounddevice package (extra `live`): "
                           "pip install sounddevice") from None
    except OSError as e:  # the PortAudio library itself is missing
        raise TinyKWSError(f"--live needs the PortAudio library ({e}); "
                           "install it (Debian: apt-get install libportaudio2)") from None
    try:
        sd.query_devices(kind="input")
    except Exception as e:  # sounddevice raises PortAudioError / ValueError without a mic
        raise TinyKWSError(f"no audio input device available ({e})") from None

    det = Detector(run_dir, threshold, smoothing_ms, refractory_ms, mode)
    q: queue.Queue[np.ndarray] = queue.Queue()

    def callback(indata, frames, time, status):  # noqa: ARG001 - sounddevice's signature
        q.put(indata[:, 0].copy())

    rate, hop = det.params.sample_rate, det.params.hop
    n_blocks = None if seconds is None else int(seconds * rate / hop)
    try:
        with sd.InputStream(samplerate=rate, blocksize=hop, channels=1,
                            dtype="int16", callback=callback):
            if on_start:
                on_start()
            i = 0
            while n_blocks is None or i < n_blocks:
                for d in det.process(q.get()):
                    on_detection(d)
                i += 1
    except sd.PortAudioError as e:
        raise TinyKWSError(f"cannot open the microphone: {e}") from None
