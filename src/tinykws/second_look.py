"""The detector's second look: a first-stage detection stands only when a clip classifier,
the *verifier*, also hears its keyword in the second of features that ends a little after it.

Why: the stream model fires on near-miss words ("store" for stop) about as surely as on its
keywords, and every lever on its own training moved both together. A second, independently
trained classifier that has heard the negatives disagrees with many of those false alarms:
on seven stream seeds of one embedded-default clip model it raised the recall at the
acceptance point (<= 1 false alarm an hour on the keyword stream, <= 2 on the negative hour)
by 7-11 points on average and doubled it at the stored operating point; over five whole runs
with their own data it gained 3.2 points (−7.1 to +14.2), within the noise (docs/benchmarks.md,
"Issue 19, twenty-fourth to twenty-sixth rounds"). Hence an option, off by default.

How: the detector keeps the last `win` feature frames (98: one training clip). When the
first stage fires at frame d, the verifier classifies, from a zero state, the window of
`win` frames that ends at frame d + `delay` (the word's end lies there: the smoothed score
crosses shortly before it); the detection stands when the verifier's softmax probability
of the same keyword reaches the threshold. A window that would reach before the stream's
first frame (or past its last) is not classified and the detection is dropped. The
first-stage rules (smoothing, threshold, refractory time) are unchanged: a dropped
detection still starts the refractory time, as a first-stage one does.

`verifier_scores` is the batch form (a whole stream's features at once: the benchmarks and
DET curves), `SecondLook` the streaming form (`tinykws.detect.Detector`); a test holds
them equal. `train_verifier` makes RUN_DIR/train/verifier.pt.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tinykws.config import TrainConfig, pipeline_recipe
from tinykws.detector_config import Detection
from tinykws.errors import TinyKWSError
from tinykws.run import RunDir, atomic_write_text, features_stamp, read_marker
from tinykws.tuning import torch_threads

if TYPE_CHECKING:
    from tinykws.checkpoint import Checkpoint
    from tinykws.features import FeatureParams


def frame_index(time_s: float, params: "FeatureParams") -> int:
    """The stream frame (0-based) a detection at `time_s` was made on: frame i ends at
    sample (i + first_block) * hop (`Detector.score_frames`' times)."""
    return int(round(time_s * params.sample_rate / params.hop)) - params.first_block


def delay_frames(delay_ms: float, params: "FeatureParams") -> int:
    """Frames between a detection and the end of the window the verifier classifies."""
    return int(round(delay_ms / params.frame_ms))


def verifier_scores(model: Any, frames: np.ndarray, ends: Sequence[int],
                    labels: Sequence[int], win: int) -> np.ndarray:
    """[n] the verifier's softmax probability of class `labels[i]` on the `win` frames of
    `frames` `[T, F]` that end at frame `ends[i]` (inclusive), from a zero state; NaN (no
    threshold confirms it) where that window is not inside the stream. One batched forward."""
    import torch

    ends = np.asarray(ends, np.int64)
    out = np.full(len(ends), np.nan)
    inside = (ends >= win - 1) & (ends < len(frames))
    if not inside.any():
        return out
    x = torch.from_numpy(np.asarray(frames, np.float32))
    rows = np.flatnonzero(inside)
    idx = torch.from_numpy(ends[rows, None] - np.arange(win - 1, -1, -1))  # [n, win]
    with torch.no_grad(), torch_threads(1):
        p = torch.softmax(model(x[idx]), -1).double().numpy()  # [n, C]
    out[rows] = p[np.arange(len(rows)), np.asarray(labels, np.int64)[rows]]
    return out


def check_verifier(checkpoint: "Checkpoint", categories: Sequence[str], params: "FeatureParams",
                   path: Path) -> None:
    """Refuse a verifier whose classes or features differ from the detector's model: it
    reads the detector's own feature frames."""
    if list(checkpoint.categories) != list(categories):
        raise TinyKWSError(f"{path}: the verifier's classes ({', '.join(checkpoint.categories)}) "
                           f"differ from the model's ({', '.join(categories)}); train it again "
                           "(`tinykws train-verifier`)")
    if checkpoint.feature_params != params:
        raise TinyKWSError(f"{path}: the verifier was trained on other features than the model's "
                           "(FeatureParams differ); train it again (`tinykws train-verifier`)")


class SecondLook:
    """Streaming second look: `push` every feature frame (`[F]`) with the first stage's
    detection on it (or None); returns the detections confirmed on that frame."""

    def __init__(self, model: Any, categories: Sequence[str], threshold: float,
                 delay: int, win: int):
        self.model, self.categories = model, list(categories)
        self.threshold, self.delay, self.win = float(threshold), max(0, int(delay)), int(win)
        self.reset()

    def reset(self) -> None:
        self.frames: deque[np.ndarray] = deque(maxlen=self.win)  # the last `win` frames
        self.pending: list[tuple[int, Detection]] = []  # (frame its window ends on, detection)
        self.seen = 0  # frames pushed

    def push(self, frame: np.ndarray, first: Detection | None) -> list[Detection]:
        self.frames.append(np.asarray(frame, np.float32))
        now = self.seen
        self.seen += 1
        if first is not None:
            self.pending.append((now + self.delay, first))
        due = [d for end, d in self.pending if end == now]
        self.pending = [(end, d) for end, d in self.pending if end != now]
        if not due or len(self.frames) < self.win:  # the window reaches before frame 0
            return []
        window = np.stack(self.frames)  # [win, F], ends at frame `now`
        labels = [self.categories.index(d.label) for d in due]
        p = verifier_scores(self.model, window, [self.win - 1] * len(due), labels, self.win)
        return [d for d, s in zip(due, p) if s >= self.threshold]


def second_look_filter(model: Any, frames: np.ndarray, detections: Sequence[Detection],
                       categories: Sequence[str], params: "FeatureParams", threshold: float,
                       delay: int, win: int,
                       memo: dict[tuple[int, str], float] | None = None) -> list[Detection]:
    """The batch second look over a whole stream's features `[T, F]`: the `detections` the
    verifier confirms. `memo` ((frame, label) -> score) carries the verifier's scores from
    one call to the next: a threshold sweep's detections are mostly the same ones."""
    memo = {} if memo is None else memo
    keys = [(frame_index(d.time_s, params) + delay, d.label) for d in detections]
    new = sorted({k for k in keys if k not in memo})
    if new:
        s = verifier_scores(model, frames, [k[0] for k in new],
                            [list(categories).index(k[1]) for k in new], win)
        memo.update(zip(new, s.tolist()))
    return [d for d, k in zip(detections, keys) if memo[k] >= threshold]


def train_verifier(run_dir: Path | str, unknown_weight: float = 0.05, threads: int = 1,
                   **changes: Any) -> Path:
    """Train RUN_DIR/train/verifier.pt: the run's clip recipe (`pipeline_recipe` for the
    larger set) on its training clips, its spare other-word clips and its negatives'
    training speech (`features/negatives.npz`, all `_unknown_`), validated on its validation
    clips. `unknown_weight` 0.05: most rows are negatives; 0.5 let them drown the keywords
    (docs/benchmarks.md, "Issue 19, twenty-third round"). A verifier already trained with
    the same recipe on the same rows is kept (`verifier_is_current`); a killed training
    resumes. Returns the checkpoint's path."""
    from tinykws.train import train  # torch: `tinykws detect` imports this module, and need not train

    run = RunDir(run_dir)
    recipe, key = _verifier_plan(run, unknown_weight, threads, changes)
    if _is_current(run, key):
        return run.verifier
    work = RunDir(run.train / "verifier")
    merged_training(run, work)
    # a killed training resumes from its last epoch when the recipe and the rows are the same
    resume = work.last.is_file() and read_marker(work.train_started) == key
    work.train.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work.train_started, json.dumps(key))
    train(work.features, work.root, recipe, resume=resume)
    target = run.verifier
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(work.best, tmp)  # best.pt stays: a finished training resumes to itself
    tmp.replace(target)
    atomic_write_text(_done_marker(run), json.dumps(key, indent=2))
    shutil.rmtree(work.features)  # the merged rows: ~0.2 GB for the default's negatives
    return target


def verifier_is_current(run_dir: Path | str, unknown_weight: float = 0.05, **changes: Any) -> bool:
    """Does RUN_DIR/train/verifier.pt come from this recipe and the run's current rows
    (`train_verifier` would keep it)?"""
    run = RunDir(run_dir)
    return _is_current(run, _verifier_plan(run, unknown_weight, 1, changes)[1])


def _verifier_plan(run: RunDir, unknown_weight: float, threads: int,
                   changes: dict[str, Any]) -> tuple[TrainConfig, dict]:
    """(the verifier's recipe, its key: the recipe but threads, and the input rows' stamps);
    refused with one line when the run has no negatives or a change is not a setting."""
    if not run.negative_features.is_file():
        raise TinyKWSError(f"{run.negative_features}: no such file; the verifier learns from the "
                           "stream phase's negatives (run `tinykws train-stream` or the pipeline first)")
    bad = set(changes) - {f.name for f in dataclasses.fields(TrainConfig)}
    if bad:
        raise TinyKWSError(f"not training settings: {', '.join(sorted(bad))}")
    n = sum(len(np.load(p)["labels"]) for p in _training_parts(run) if p.is_file())  # labels only
    recipe = dataclasses.replace(pipeline_recipe(n), unknown_weight=unknown_weight,
                                 threads=threads, **changes)
    same = {k: v for k, v in recipe.to_dict().items() if k != "threads"}  # threads: same model
    return recipe, {"recipe": same, "rows": _input_keys(run)}


def _is_current(run: RunDir, key: dict) -> bool:
    return run.verifier.is_file() and read_marker(_done_marker(run)) == key


def _done_marker(run: RunDir) -> Path:
    """What the run's verifier.pt was trained from (`_verifier_plan`'s key)."""
    return run.train / "verifier.json"


def _training_parts(run: RunDir) -> list[Path]:
    """The feature files the verifier trains on, in order (the spare clips may be missing)."""
    return [run.features_file("training"), run.spare_features, run.negative_features]


def _input_keys(run: RunDir) -> list:
    """The stamps of the feature files the verifier is trained on (None where missing)."""
    return [features_stamp(p) for p in (*_training_parts(run), run.features_file("validation"))]


def merged_training(run: RunDir, work: RunDir) -> int:
    """WORK's features: training = the run's training + spare + negatives rows; validation
    the run's (`bench/train_verifier.py` trains its variants on them too). Returns the
    training rows."""
    work.features.mkdir(parents=True, exist_ok=True)
    names = _training_parts(run)
    parts = [np.load(p) for p in names if p.is_file()]
    cats = [str(c) for c in parts[0]["categories"]]
    for p, name in zip(parts[1:], names[1:]):
        if [str(c) for c in p["categories"]] != cats:
            raise TinyKWSError(f"{name}: other classes than the training features")
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in ("features", "labels", "paths")}
    np.savez(work.features_file("training"), **arrays, categories=parts[0]["categories"],
             feature_params=parts[0]["feature_params"])
    shutil.copyfile(run.features_file("validation"), work.features_file("validation"))
    return len(arrays["labels"])
