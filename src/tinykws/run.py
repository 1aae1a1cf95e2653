"""The run folder contract: where each stage's files live, and the one reader of each.

A run folder (`RUN_DIR`) is what the stages pass to each other (docs/architecture.md,
"Run folder"). This module owns it:

- `RunDir(path)`: every path in it (`features/training.npz`, `train/best.pt`, ...),
  and `RunDir.checkpoint()`, the model the later stages use (`best.pt`, else `last.pt`);
- `Checkpoint`: a typed checkpoint (a real `FeatureParams`, the `ModelConfig`, the
  categories, the `TrainConfig`, the weights incl. normalisation, and for resume the
  optimiser/RNG state). `to_dict()`/`from_dict()` give the on-disk dict, which carries
  everything needed to rebuild the model (as nanoGPT's does);
- `load_checkpoint(path)` and `load_model(run_dir_or_path)`: the one checkpoint loader
  (`torch.load(weights_only=True)`: a checkpoint never runs code);
- `read_features(path)` -> `FeatureSplit`: the one reader of `features/<split>.npz`,
  and `check_splits_agree` for the splits of one training run.

Every reader validates what it loads and raises a one-line `TinyKWSError` subclass:
damaged files, weights that disagree with `model_config`, feature parameters that
disagree with the model's input, non-finite weights, splits made with different
feature parameters or categories.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import pickle
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np

from tinykws.errors import CheckpointError, FeatureFileError, TinyKWSError
from tinykws.features import FeatureParams

if TYPE_CHECKING:  # torch and the models load lazily: `tinykws --help` stays fast
    from torch import Tensor

    from tinykws.config import ModelConfig, TrainConfig
    from tinykws.models import KWSModel, State


# ---------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder (layout: docs/architecture.md, "Run folder")."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # data, lists, features
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def lists(self) -> Path:
        return self.root / "lists"

    @property
    def features(self) -> Path:
        return self.root / "features"

    def features_file(self, split: str) -> Path:
        return self.features / f"{split}.npz"

    @property
    def negative_features(self) -> Path:
        """Log-mel `[N, 98, 32]` of the negatives' training speech (`dataset.featurize_negatives`)."""
        return self.features / "negatives.npz"

    @property
    def spare_features(self) -> Path:
        """Log-mel `[N, 98, 32]` of the lists' spare `_unknown_` training clips (real other
        words the clip phase's `_unknown_` share left out; `dataset.featurize_spare`)."""
        return self.features / "spare.npz"

    # training
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def best(self) -> Path:
        """The checkpoint with the best validation accuracy."""
        return self.train / "best.pt"

    @property
    def last(self) -> Path:
        """The checkpoint of the latest epoch (what `--resume` continues)."""
        return self.train / "last.pt"

    @property
    def train_config(self) -> Path:
        return self.train / "config.json"

    @property
    def train_log(self) -> Path:
        return self.train / "log.csv"

    @property
    def curves(self) -> Path:
        return self.train / "curves.png"

    @property
    def clip(self) -> Path:
        """The clip model, kept when `tinykws.train_stream` turns best.pt into a stream model."""
        return self.train / "clip.pt"

    @property
    def stream_last(self) -> Path:
        """The stream phase's resume state (not a model checkpoint)."""
        return self.train / "stream_last.pt"

    @property
    def train_done(self) -> Path:
        """`tinykws pipeline`'s marker of a finished training recipe."""
        return self.train / "done.json"

    def checkpoint(self) -> Path:
        """The checkpoint later stages use: `train/best.pt`, else `train/last.pt` (a run
        killed before its first eligible epoch, e.g. a sparse model still in its dense
        phase). The one place this choice is made."""
        for path in (self.best, self.last):
            if path.is_file():
                return path
        raise CheckpointError(
            f"{self.root}: no train/best.pt or train/last.pt; run `tinykws train` first"
        )

    def has_checkpoint(self) -> bool:
        return self.best.is_file() or self.last.is_file()

    # later stages
    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def model_onnx(self) -> Path:
        return self.export / "model.onnx"

    @property
    def model_step_onnx(self) -> Path:
        return self.export / "model_step.onnx"

    def device(self, float_abi: str) -> Path:
        """Compiled C and `verify.json` for one float ABI."""
        return self.root / "device" / float_abi

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def pipeline_json(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def lock_file(self) -> Path:
        """Names the process that writes the run (`RunDir.lock`)."""
        return self.root / ".tinykws.lock"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for writing: a second process is refused with one line
        naming the holder's pid. `fcntl.flock` on `.tinykws.lock`: the lock dies with its
        process, so a stale lock file of a dead run is simply taken over. Re-entrant within
        one process (`pipeline` runs train, quantize, compile in-process), per folder."""
        key = str(self.root.resolve())
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                _HELD[key] = (held[0], held[1] + 1)
        if held is not None:
            try:
                yield
            finally:
                _release(key)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(
                f"{self.root} is in use by another tinykws process (pid {holder}); wait for it "
                "to finish or choose another run folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        with _HELD_GUARD:
            _HELD[key] = (fd, 1)
        try:
            yield
        finally:
            _release(key)


class RunLockedError(TinyKWSError):
    """Another process holds the run folder (`RunDir.lock`)."""


_HELD: dict[str, tuple[int, int]] = {}  # resolved run folder -> (lock fd, depth) in this process
_HELD_GUARD = threading.Lock()


def _release(key: str) -> None:
    """Leave one level of `RunDir.lock`; the last one unlocks (the file stays: deleting it
    would let a third process lock a new file while a second still waits on the old one)."""
    with _HELD_GUARD:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
            return
        del _HELD[key]
    os.close(fd)  # closing the last descriptor releases the flock


# ---------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class TrainingState:
    """What `train --resume` needs beyond the model; only in checkpoints `train` wrote."""

    epoch: int  # the last finished epoch (0-based)
    best_val_acc: float
    best_epoch: int
    val_acc: float
    optimizer: dict[str, Any]  # torch optimiser state_dict
    scheduler: dict[str, Any]  # {"iteration", "total_iterations"}
    rng_state: "Tensor"  # torch's global CPU RNG state after the epoch
    rolling_bag: Optional["State"] = None  # --rolling, single process: the bag of states

    KEYS = ("epoch", "best_val_acc", "best_epoch", "val_acc", "optimizer", "scheduler",
            "rng_state")  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    """A trained model and everything needed to rebuild and use it.

    On disk (`to_dict`, docs/architecture.md "Checkpoints"): `model_config`,
    `feature_params` and `train_config` as dicts, `categories` as a list, `state_dict`,
    and for resume `epoch`, `best_val_acc`, `best_epoch`, `val_acc`, `optimizer`,
    `scheduler`, `rng_state` (and `rolling_bag`).
    """

    model_config: "ModelConfig"
    feature_params: FeatureParams
    categories: tuple[str, ...]  # class names in index order
    state_dict: dict[str, "Tensor"]  # includes the normalisation buffers mean, std [F]
    train_config: Optional["TrainConfig"] = None
    training: Optional[TrainingState] = None
    stream_config: Optional[dict[str, Any]] = None  # tinykws.train_stream's phase, when run
    stream_seconds: Optional[float] = None
    source: str = field(default="checkpoint", compare=False)  # for error messages

    @property
    def normalization(self) -> tuple["Tensor", "Tensor"]:
        """(mean [F], std [F]): the model's input normalisation."""
        return self.state_dict["mean"], self.state_dict["std"]

    @property
    def rolling(self) -> bool:
        """Was the model trained to run on one never-reset state: on the seed's rolling
        batches (`tinykws train --rolling`) or on long streams (`tinykws.train_stream`)?"""
        return bool(self.train_config and self.train_config.rolling) or bool(self.stream_config)

    def to_dict(self) -> dict[str, Any]:
        """The on-disk dict (loads with `torch.load(weights_only=True)`)."""
        d: dict[str, Any] = {
            "model_config": self.model_config.to_dict(),
            "feature_params": self.feature_params.to_dict(),
            "categories": list(self.categories),
            "state_dict": self.state_dict,
        }
        if self.train_config is not None:
            d["train_config"] = self.train_config.to_dict()
        if self.training is not None:
            t = self.training
            d.update(epoch=t.epoch, best_val_acc=t.best_val_acc, best_epoch=t.best_epoch,
                     val_acc=t.val_acc, optimizer=t.optimizer, scheduler=t.scheduler,
                     rng_state=t.rng_state)  # fmt: skip
            if t.rolling_bag is not None:
                d["rolling_bag"] = t.rolling_bag
        if self.stream_config is not None:
            d["stream_config"] = self.stream_config
        if self.stream_seconds is not None:
            d["stream_seconds"] = self.stream_seconds
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "checkpoint") -> "Checkpoint":
        """Parse and check a checkpoint dict: structure, categories against the model's
        outputs, feature parameters against its inputs, finite weights. The weights'
        shapes are checked against `model_config` when the model is built."""
        import torch

        from tinykws.config import ModelConfig, TrainConfig

        if not isinstance(d, dict) or "model_config" not in d or "state_dict" not in d:
            raise CheckpointError(f"{source} is not a tinykws checkpoint (no model_config/state_dict)")
        for key in ("feature_params", "categories"):
            if key not in d:
                raise CheckpointError(f"{source} has no {key}; not a checkpoint of `tinykws train`")
        mc = _parse(ModelConfig.from_dict, d["model_config"], source, "model_config")
        fp = _parse(FeatureParams.from_dict, d["feature_params"], source, "feature_params")
        tc = None
        if d.get("train_config") is not None:
            tc = _parse(TrainConfig.from_dict, d["train_config"], source, "train_config")
        cats = d["categories"]
        if not isinstance(cats, (list, tuple)) or not all(isinstance(c, str) for c in cats):
            raise CheckpointError(f"{source}: categories must be a list of class names")
        if len(set(cats)) != len(cats) or not all(c.strip() for c in cats):
            raise CheckpointError(f"{source}: categories must be distinct, non-empty class names, "
                                  f"got {list(cats)}")
        if len(cats) != mc.num_classes:
            raise CheckpointError(
                f"{source}: {len(cats)} categories but model_config has {mc.num_classes} classes"
            )
        if fp.n_mels != mc.input_size:
            raise CheckpointError(
                f"{source}: feature_params make {fp.n_mels} features a frame (n_mels) but the "
                f"model takes {mc.input_size} (model_config.input_size); the checkpoint is inconsistent"
            )
        sd = d["state_dict"]
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{source}: state_dict must map names to tensors")
        for name, t in sd.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise CheckpointError(
                    f"{source}: weight {name} is not finite (NaN or Inf): the training diverged; "
                    "retrain with a lower learning rate"
                )
        std = sd.get("std")
        if std is not None and std.is_floating_point() and not bool((std > 0).all()):
            raise CheckpointError(
                f"{source}: the input normalisation std has values <= 0 (min {float(std.min()):g}); "
                "every score would be NaN or Inf: the checkpoint is damaged"
            )
        training = None
        if all(k in d for k in TrainingState.KEYS):
            training = TrainingState(
                epoch=int(d["epoch"]), best_val_acc=float(d["best_val_acc"]),
                best_epoch=int(d["best_epoch"]), val_acc=float(d["val_acc"]),
                optimizer=d["optimizer"], scheduler=d["scheduler"], rng_state=d["rng_state"],
                rolling_bag=d.get("rolling_bag"),
            )  # fmt: skip
        return cls(mc, fp, tuple(cats), sd, tc, training, d.get("stream_config"),
                   d.get("stream_seconds"), source)

    def load_weights(self, model: "KWSModel") -> None:
        """Copy the weights into `model`, refusing any name or shape that `model_config`
        does not give (a one-line error instead of load_state_dict's traceback)."""
        want = model.state_dict()
        missing = [k for k in want if k not in self.state_dict]
        extra = [k for k in self.state_dict if k not in want]
        if missing or extra:
            what = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
            raise CheckpointError(
                f"{self.source}: the weights do not match model_config ({what}; "
                f"{_describe(self.model_config)})"
            )
        for k, v in want.items():
            got = self.state_dict[k]
            if tuple(got.shape) != tuple(v.shape):
                raise CheckpointError(
                    f"{self.source}: the weights do not match model_config: {k} is "
                    f"{list(got.shape)} in the weights but {list(v.shape)} for "
                    f"{_describe(self.model_config)}"
                )
        model.load_state_dict(self.state_dict)

    def build_model(self) -> "KWSModel":
        """The model, in eval mode, with these weights."""
        from tinykws.models import build_model

        model = build_model(self.model_config)
        self.load_weights(model)
        return model.eval()


def _parse(fn, value: Any, source: str, key: str):
    """fn(value) for one sub-config, with any failure as one line naming the key."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{source}: {key} must be a dict, not {type(value).__name__}")
    try:
        return fn(value)
    except TinyKWSError as e:
        raise CheckpointError(f"{source}: bad {key}: {e}") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: bad {key}: {e}") from None


def _describe(mc: "ModelConfig") -> str:
    return (f"{mc.architecture} {mc.num_layers} x {mc.hidden_size}, input {mc.input_size}, "
            f"{mc.num_classes} classes")


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes (a checkpoint: a few MB): what a later stage or a
    done marker records to tell that file apart from a rewritten one."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read and check a checkpoint file (`torch.load(weights_only=True)`)."""
    return Checkpoint.from_dict(load_torch(path), source=str(path))


def load_torch(path: Path | str) -> Any:
    """`torch.load(path, weights_only=True)` with one-line errors: the one place a `.pt`
    file of a run is read (checkpoints, and resume state such as `stream_last.pt`)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not a weights-only PyTorch checkpoint (damaged, or holds objects "
            "tinykws never saves); refusing to load it"
        ) from None
    except PermissionError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except Exception as e:  # truncated zip, garbage bytes, ...
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is damaged or not a checkpoint (truncated?): {first}") from None
    return d


def load_model(run_or_checkpoint: Path | str) -> tuple["KWSModel", Checkpoint]:
    """(model in eval mode, its checkpoint) from a run folder (`RunDir.checkpoint()`) or a
    checkpoint file."""
    p = Path(run_or_checkpoint)
    if not p.exists():
        raise CheckpointError(f"no such run folder or checkpoint: {p}")
    path = RunDir(p).checkpoint() if p.is_dir() else p
    ck = load_checkpoint(path)
    return ck.build_model(), ck


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write `checkpoint.to_dict()` atomically."""
    atomic_torch_save(checkpoint.to_dict(), path)


def read_json(path: Path | str, remedy: str) -> Any:
    """A JSON file a stage wrote and a later one reads back (lists.json, synth.json, ...),
    with a torn or unreadable file as one line naming it and saying what to do (`remedy`),
    not a JSONDecodeError traceback."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise TinyKWSError(f"{path} is damaged or unreadable ({reason}); {remedy}") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename: a kill never leaves a
    torn file for a later run to trust."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- features


@dataclass
class FeatureSplit:
    """One featurized split, `features/<split>.npz` (format: docs/architecture.md)."""

    path: Path
    labels: np.ndarray  # int64 [N], index into categories
    categories: list[str]
    params: FeatureParams  # the FeatureParams that made the features
    paths: np.ndarray  # str [N], the source clip of each row
    features: Optional[np.ndarray] = None  # float32 [N, T, F]; None if read without

    def __len__(self) -> int:
        return len(self.labels)


def read_features(path: Path | str, *, features: bool = True) -> FeatureSplit:
    """Read and check a feature file. `features=False` reads everything but the
    features array (labels, categories, params: cheap on a multi-GB file)."""
    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"feature file missing: {path}; run `tinykws featurize` first")
    try:
        with np.load(path, allow_pickle=False) as z:
            needed = ("features", "labels", "categories", "feature_params")
            missing = [k for k in needed if k not in z.files]
            if missing:
                raise FeatureFileError(f"{path} lacks key {missing[0]!r}; not a tinykws feature file")
            labels = np.asarray(z["labels"])
            cats = [str(c) for c in np.atleast_1d(z["categories"])]
            fp_json = str(z["feature_params"])
            paths = np.asarray(z["paths"]) if "paths" in z.files else np.array([], dtype=str)
            x = np.asarray(z["features"], dtype=np.float32) if features else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FeatureFileError(f"cannot read feature file {path}: {first}") from None
    try:
        params = FeatureParams.from_json(fp_json)
    except TinyKWSError as e:
        raise FeatureFileError(f"{path}: bad feature_params: {e}") from None
    except (ValueError, TypeError) as e:
        raise FeatureFileError(f"{path}: feature_params is not a JSON object of parameters ({e})") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise FeatureFileError(f"{path}: labels must be integers [N], got {labels.dtype} {labels.shape}")
    labels = labels.astype(np.int64, copy=False)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(cats)):
        raise FeatureFileError(f"{path}: labels outside the {len(cats)} categories")
    if x is not None:
        if x.ndim != 3 or len(x) != len(labels):
            raise FeatureFileError(f"{path}: features must be [N, T, F] with one label a row, "
                                   f"got {list(x.shape)} for {len(labels)} labels")
        if x.shape[2] != params.n_mels:
            raise FeatureFileError(f"{path}: {x.shape[2]} features a frame, but its feature_params "
                                   f"say n_mels={params.n_mels}")
    return FeatureSplit(path, labels, cats, params, paths, x)


def check_split_made_like(split: FeatureSplit, categories: Sequence[str], params: FeatureParams,
                          source: str) -> None:
    """Refuse a split whose categories (or their order) or feature parameters are not
    `source`'s (another split, or the checkpoint)."""
    if list(split.categories) != list(categories):
        raise FeatureFileError(f"{split.path.name} and {source} have different categories "
                               f"({list(split.categories)} vs {list(categories)}); "
                               "featurize from one lists folder")
    if split.params != params:
        pa, pb = params.to_dict(), split.params.to_dict()
        diff = ", ".join(f"{k} {pb[k]!r} vs {pa[k]!r}" for k in pa if pa[k] != pb[k])
        raise FeatureFileError(f"{split.path.name} was made with other feature parameters than "
                               f"{source} ({diff}); featurize with one setting")


def check_splits_agree(reference: FeatureSplit, other: FeatureSplit) -> None:
    """Refuse splits of one run made differently: other categories (or their order),
    other feature parameters, or another number of features a frame."""
    a, b = reference, other
    check_split_made_like(b, a.categories, a.params, a.path.name)
    if a.features is not None and b.features is not None and a.features.shape[2] != b.features.shape[2]:
        raise FeatureFileError(f"{b.path.name} has {b.features.shape[2]} features a frame, "
                               f"{a.path.name} {a.features.shape[2]}")
