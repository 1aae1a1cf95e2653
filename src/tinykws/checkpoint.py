"""Checkpoints: the typed `Checkpoint` and the one loader of `train/*.pt` files.

- `Checkpoint`: a real `FeatureParams`, the `ModelConfig`, the categories, the
  `TrainConfig`, the weights incl. normalisation, and for resume the optimiser/RNG state
  (`TrainingState`). `to_dict()`/`from_dict()` give the on-disk dict, which carries
  everything needed to rebuild the model (as nanoGPT's does);
- `load_checkpoint(path)` and `load_model(run_dir_or_path)`: the one checkpoint loader
  (`torch.load(weights_only=True)`: a checkpoint never runs code); `save_checkpoint`.

Every reader validates what it loads and raises a one-line `CheckpointError`: damaged
files, weights that disagree with `model_config`, feature parameters that disagree with
the model's input, non-finite weights. Which checkpoint a run's later stages use is the
run folder's decision (`RunDir.checkpoint()`, `tinykws.run`).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from tinykws.config import ModelConfig, TrainConfig
from tinykws.errors import CheckpointError, TinyKWSError
from tinykws.features import FeatureParams
from tinykws.labels import UNKNOWN
from tinykws.run import RunDir, atomic_torch_save

if TYPE_CHECKING:  # torch and the models load lazily: `tinykws --help` stays fast
    from torch import Tensor

    from tinykws.models import KWSModel, State


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
    stream_config: Optional[dict[str, Any]] = None  # tinykws.stream_training's phase, when run
    stream_seconds: Optional[float] = None
    source: str = field(default="checkpoint", compare=False)  # for error messages

    @property
    def normalization(self) -> tuple["Tensor", "Tensor"]:
        """(mean [F], std [F]): the model's input normalisation."""
        return self.state_dict["mean"], self.state_dict["std"]

    @property
    def rolling(self) -> bool:
        """Was the model trained to run on one never-reset state: on the seed's rolling
        batches (`tinykws train --rolling`) or on long streams (`tinykws.stream_training`)?"""
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
        if mc.garbage_classes and cats[mc.garbage_into] != UNKNOWN:  # else they fold into a keyword
            raise CheckpointError(f"{source}: garbage outputs fold into {cats[mc.garbage_into]!r}, not {UNKNOWN}")
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
        from tinykws.models import build_model  # optional: torch (the `train` extra) loads here only

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


