"""The detector's configuration and its persistence: `DetectorConfig` (mode, smoothing,
threshold, refractory time, keywords), the operating point chosen on a DET curve, and
`detector.json` (the run's, and a compiled folder's copy: `load_detector`,
`save_detector`, `set_operating_point`).

The triggers that apply a config to scores are in `tinykws.triggers`; the runtime that
turns audio into scores and detections in `tinykws.detect`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Sequence

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.labels import keyword_mask
from tinykws.run import DETECTOR_FILE

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
    # the second look (`tinykws.second_look`): None = off; else the verifier's probability of
    # a detection's keyword, on the second of features ending `second_look_delay_ms` after
    # it, that the detection needs to stand
    second_look: Optional[float] = None
    second_look_delay_ms: float = 200.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TinyKWSError(f"unknown detector mode {self.mode!r}; choose one of {', '.join(MODES)}")
        names = ("threshold", "smoothing_ms", "refractory_ms", "hop_ms", "reset_ms",
                 "second_look_delay_ms") + (() if self.second_look is None else ("second_look",))
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TinyKWSError(f"detector {name} must be a finite number >= 0, not {v!r}")
            if name.endswith("_ms") and v > MAX_DURATION_MS:
                raise TinyKWSError(f"detector {name} is at most {MAX_DURATION_MS:.0f} (an hour), "
                                   f"not {v:g}")
        if self.hop_ms <= 0 or self.reset_ms <= 0:
            raise TinyKWSError("detector hop_ms and reset_ms must be positive")
        for name in ("threshold", "second_look"):
            v = getattr(self, name)
            if v is not None and v > 1:  # a softmax score never gets there: nothing would fire
                raise TinyKWSError(f"detector {name} is a score in [0, 1], not {v}")
        if self.keywords is not None:
            kw = () if isinstance(self.keywords, str) else tuple(self.keywords)
            if not kw or not all(isinstance(k, str) for k in kw):
                raise TinyKWSError("detector keywords must be a non-empty list of class names")
            object.__setattr__(self, "keywords", kw)

    def replace(self, **changes: Any) -> "DetectorConfig":
        """A copy with `changes`; None values keep the current setting."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def first_stage(self) -> "DetectorConfig":
        """This detector without its second look: what the generated C runs (the second
        look is Python only so far)."""
        return dataclasses.replace(self, second_look=None)

    def keyword_mask(self, categories: Sequence[str]) -> np.ndarray:
        """bool [C]: which classes may fire."""
        cats = list(categories)
        if self.keywords is None:
            return keyword_mask(cats)
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
    # with a separate non-keyword stream (`choose_threshold(negatives=...)`): its own limit
    # and its rate at `threshold` (`fa_per_hour` is then the keyword stream's)
    negative_target_fa_per_hour: Optional[float] = None
    negative_fa_per_hour: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_operating_point(curve: Sequence[Any], target_fa_per_hour: float,
                           hours: Optional[float] = None, source: str = "",
                           negative_curve: Optional[Sequence[Any]] = None,
                           negative_target_fa_per_hour: Optional[float] = None) -> OperatingPoint:
    """The DET-curve point for a target false-alarm rate.

    `curve`: points with `threshold`, `recall`, `fa_per_hour` (`stream.StreamScore`s or
    dicts, as `stream.det_curve` makes them). Among the points with at most
    `target_fa_per_hour`, the best recall; on a tie the fewest false alarms, then the
    lower threshold: where the held-apart audio cannot tell thresholds apart and every one
    keeps the limits, the lowest keeps the most recall on unseen audio (a higher one cost
    1.4 points on one model of three, docs/benchmarks.md, "Issue 19, eighth round"). When
    none meets the target: the point with the fewest false alarms (then the best recall),
    marked `met=False`.

    `negative_curve` (the same thresholds, on a stream of non-keyword speech) adds a second
    limit, `negative_target_fa_per_hour`, that a point must also meet; without a point that
    meets both, the one least over its limits (in multiples of them) is taken.
    """
    pts = _points(curve)
    if not pts:
        raise TinyKWSError("choose_operating_point: the DET curve has no points")
    neg = _negative_rates(pts, negative_curve, negative_target_fa_per_hour)

    def over(i: int) -> float:  # how far point i is over its limits (<= 1: within them)
        kw = pts[i]["fa_per_hour"] / target_fa_per_hour if target_fa_per_hour > 0 else (
            0.0 if pts[i]["fa_per_hour"] <= 0 else float("inf"))
        if neg is None:
            return kw
        n = neg[i] / negative_target_fa_per_hour if negative_target_fa_per_hour else (
            0.0 if neg[i] <= 0 else float("inf"))
        return max(kw, n)

    def fa(i: int) -> float:
        return pts[i]["fa_per_hour"] + (neg[i] if neg is not None else 0.0)

    ok = [i for i in range(len(pts)) if pts[i]["fa_per_hour"] <= target_fa_per_hour
          and (neg is None or neg[i] <= negative_target_fa_per_hour)]
    if ok:
        i = max(ok, key=lambda i: (pts[i]["recall"], -fa(i), -pts[i]["threshold"]))
    elif neg is None:
        i = min(range(len(pts)), key=lambda i: (fa(i), -pts[i]["recall"], -pts[i]["threshold"]))
    else:
        i = min(range(len(pts)), key=lambda i: (over(i), -pts[i]["recall"], -pts[i]["threshold"]))
    best = pts[i]
    return OperatingPoint(float(best["threshold"]), float(target_fa_per_hour),
                          float(best["fa_per_hour"]), float(best["recall"]), bool(ok),
                          hours, source,
                          None if neg is None else float(negative_target_fa_per_hour),
                          None if neg is None else float(neg[i]))


def _points(curve: Sequence[Any]) -> list[dict[str, Any]]:
    """A DET curve's points as dicts with threshold, recall and fa_per_hour."""
    pts = [p if isinstance(p, dict) else asdict(p) for p in curve]
    return [p for p in pts if all(k in p for k in ("threshold", "recall", "fa_per_hour"))]


def _negative_rates(pts: list[dict[str, Any]], negative_curve: Optional[Sequence[Any]],
                    limit: Optional[float]) -> Optional[list[float]]:
    """The non-keyword stream's false alarms an hour at each of `pts`' thresholds."""
    if negative_curve is None:
        return None
    if limit is None:
        raise TinyKWSError("choose_operating_point: a negative curve needs its own limit "
                           "(negative_target_fa_per_hour)")
    neg = _points(negative_curve)
    if [p["threshold"] for p in neg] != [p["threshold"] for p in pts]:
        raise TinyKWSError("choose_operating_point: the keyword and negative curves must be "
                           "measured at the same thresholds")
    return [float(p["fa_per_hour"]) for p in neg]


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
                        config: Optional[DetectorConfig] = None,
                        negative_curve: Optional[Sequence[Any]] = None,
                        negative_target_fa_per_hour: Optional[float] = None) -> OperatingPoint:
    """Choose the threshold on a DET curve measured on held-apart data
    (`choose_operating_point`) and store it as the run's detector threshold.

    `config`: the detector the curve was measured with (default: the run's current one);
    its other settings are saved unchanged. Returns the chosen point.
    """
    op = choose_operating_point(curve, target_fa_per_hour, hours, source, negative_curve,
                                negative_target_fa_per_hour)
    base = config if config is not None else load_detector_config(run_dir)
    save_detector(run_dir, base.replace(threshold=op.threshold), op)
    return op
