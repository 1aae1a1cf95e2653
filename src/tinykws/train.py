"""`tinykws train`: feature files -> a trained keyword spotter, with the seed's options.

Writes `RUN_DIR/train/`: `config.json` (`TrainConfig` + `ModelConfig`, from
tinykws.config), `log.csv` (one row an epoch), `curves.png`, `last.pt` (every epoch,
atomically; `--resume` continues from it exactly) and `best.pt` (best validation
accuracy).  Checkpoints follow the contract in
docs/architecture.md and load with `tinykws.checkpoint.load_checkpoint` (weights_only=True).

Faithful to the seed (ELL's `train_classifier.py` driving EdgeML's FastGRNN):
- loss: cross-entropy of the linear classifier on the last step;
- learning rate: cosine annealing per *iteration* from `learning_rate` to `lr_min`, with
  `lr_peaks` warm restarts (the cosine runs 2*peaks+1 half-periods, ending at the minimum);
- `--normalize`: mean and std of the training features become part of the model;
- `--rolling` / `--max-rolling-length`: see `RollingPlan` below.

Reproducible: every random choice of epoch e (shuffle, augmentation, rolling bag) comes
from generators seeded with (seed, e, rank), so a resumed run repeats a killed one exactly.

Distributed: under `torchrun --nproc_per_node N -m tinykws train ...` each process takes
1/N of every epoch (DistributedSampler) and batch_size/N clips per step; DDP averages the
gradients (gloo on CPU, nccl on GPU); only rank 0 writes files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tinykws.augment import augment_batch
from tinykws.errors import TinyKWSError
from tinykws.labels import SILENCE, UNKNOWN
from tinykws.config import TrainConfig, pipeline_recipe  # noqa: F401 (pipeline_recipe: re-exported)
from tinykws.models import KWSModel, State, build_model
from tinykws.models.sparsity import iht_phase, sparse_groups, sparsify_step
from tinykws.progress import progress_bar
from tinykws.plots import pyplot, save_png
from tinykws.checkpoint import Checkpoint, TrainingState, load_checkpoint, load_model
from tinykws.schedule import RollingBag, RollingPlan, Schedule, learning_rate_at
from tinykws.run import (
    FeatureSplit, RunDir, atomic_torch_save, check_splits_agree, file_sha256, read_features,
    split_file,
)
from tinykws.tuning import torch_threads, tune_for_training

LOG_COLUMNS = (
    "epoch", "iterations", "learning_rate", "train_loss", "train_acc", "val_loss", "val_acc",
    "phase", "seconds",
)


# ---------------------------------------------------------------------------- data


class ClipSource:
    """Where an epoch's batches come from: the clips of `training.npz`, in memory.

    Each epoch draws a seeded shuffle (`DistributedSampler`: under torchrun each process
    takes its 1/world share) and cuts it into batches of `batch` clips, dropping the last
    partial batch as the seed did. A training loop only needs `batches_per_epoch` and
    `batches(epoch, n, device)`; another source (e.g. long streams) can offer the same.
    """

    def __init__(self, split: FeatureSplit, batch_size: int, dist: "Dist", seed: int) -> None:
        self.x = torch.from_numpy(split.features)  # float32 [N, T, F]
        self.y = torch.from_numpy(split.labels)  # int64 [N]
        self.batch = max(1, batch_size // dist.world)  # clips a step in this process
        self.sampler = torch.utils.data.DistributedSampler(
            range(len(self.y)), num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=seed
        )

    @property
    def batches_per_epoch(self) -> int:
        return max(1, len(self.sampler) // self.batch)  # drop_last, as the seed

    def batches(self, epoch: int, n: int, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
        """The first `n` batches (x [B, T, F], y [B]) of epoch `epoch`'s order."""
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for b in range(n):
            idx = order[b * self.batch:(b + 1) * self.batch]
            if len(idx) == 0:
                idx = order[:self.batch]
            yield self.x[idx].to(device), self.y[idx].to(device)


def normalization_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """The seed's --normalize: per-feature mean over all frames; std = the per-(time,
    feature) std across clips, averaged over time; zero std -> 1.  x [N, T, F] -> [F], [F]."""
    mean = x.mean(dim=(0, 1))
    std = x.std(dim=0, unbiased=False).mean(dim=0)
    return mean, torch.where(std == 0, torch.ones_like(std), std)


# ---------------------------------------------------------------------------- randomness


def _rng_seed(cfg: TrainConfig, epoch: int, rank: int, stream: int) -> int:
    """The seed of one random stream of one epoch and process (resume repeats it exactly)."""
    return (cfg.seed * 1_000_003 + epoch * 7919 + rank * 104_729 + stream) % (2**63)


# ---------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def choose_device(name: str) -> torch.device:
    """auto -> CUDA when available, else CPU; cuda when none is available is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TinyKWSError("--device cuda: no CUDA device is available (use auto or cpu)")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", local % max(1, torch.cuda.device_count()))


# ---------------------------------------------------------------------------- loop


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced."""

    train_dir: Path
    best_path: Path
    last_path: Path
    best_epoch: int
    best_val_acc: float
    last_val_acc: float
    test_acc: Optional[float]
    epochs_run: int
    seconds: float


@torch.no_grad()
def evaluate_set(model: nn.Module, x: Tensor, y: Tensor, batch: int = 512) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on features x [N, T, F], labels y [N]."""
    if len(x) == 0:
        return float("nan"), float("nan")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch].to(dev), y[i:i + batch].to(dev)
        logits = model(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was)
    return loss / len(x), correct / len(x)


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate,
                                weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum,
                           nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay)


def _read_log(path: Path, upto_epoch: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["epoch"]) <= upto_epoch]


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch (training and validation) as a PNG."""
    plt = pyplot()

    ep = [int(r["epoch"]) for r in rows]
    col = {k: [float(r[k]) for r in rows] for k in ("train_loss", "val_loss", "train_acc", "val_acc")}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, col["train_loss"], label="training")
    a1.plot(ep, col["val_loss"], label="validation")
    a1.set_xlabel("epoch"), a1.set_ylabel("cross-entropy"), a1.legend(), a1.grid(alpha=0.3)
    a2.plot(ep, col["train_acc"], label="training")
    a2.plot(ep, col["val_acc"], label="validation")
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.legend(), a2.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, dpi=80)


def train(
    features_dir: Path | str,
    out_dir: Path | str,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    max_epochs_this_run: Optional[int] = None,
    init: Path | str | None = None,
    teacher: Path | str | None = None,
) -> TrainResult:
    """Train on `features_dir/{training,validation}.npz` into `out_dir/train/`.

    `resume=True` continues from `out_dir/train/last.pt` with the configuration saved
    there.  `max_epochs_this_run` stops early (as a kill would; used by tests).
    `init`: a checkpoint whose weights (not its input normalisation) the model starts
    from, e.g. one pretrained on synthesized speech (`initial_weights`); recorded in
    `config.json`. A resumed run continues from `last.pt` whatever `init` says.
    `teacher`: the checkpoint whose outputs `config.distill_weight` of the loss matches
    (knowledge distillation, `distill_loss`), e.g. a full model's for a small one; needed
    whenever `distill_weight` > 0, also on resume (recorded in `config.json`).
    Tunes the process for training first (`tinykws.tuning.tune_for_training`) and runs
    with `config.threads` intra-op threads (0: torch's default).
    """
    features_dir, run = Path(features_dir), RunDir(out_dir)
    ckpt = None
    if resume:
        if not run.last.is_file():
            raise TinyKWSError(f"nothing to resume: {run.last} does not exist")
        ckpt = load_checkpoint(run.last)
        if ckpt.train_config is None or ckpt.training is None:
            raise TinyKWSError(f"{run.last} has no training state; cannot resume from it")
        config = ckpt.train_config
    tune_for_training()  # process-wide: glibc keeps freed tensors (see tinykws.tuning)
    with torch_threads(config.threads):
        session = _set_up(features_dir, run, config, ckpt, init, teacher)
        return _train(session, features_dir, max_epochs_this_run)


@dataclass
class _Session:
    """Everything one `train` call works with; the mutable fields change every epoch."""

    cfg: TrainConfig
    run: RunDir
    dist: Dist
    device: torch.device
    training: FeatureSplit  # training.npz: its categories and params go into checkpoints
    data: ClipSource  # where each epoch's batches come from
    val: tuple[Tensor, Tensor]  # validation features [N, T, F], labels [N]
    model: KWSModel
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    schedule: Schedule
    noise: Optional[Tensor]  # training `_silence_` clips for the noise augmentation
    log_per_db: float  # log-mel units per dB (power: ln 10 / 10)
    bag: Optional[RollingBag]  # --rolling
    start_epoch: int = 0
    iteration: int = 0  # optimiser steps so far (the learning rate follows it)
    best_acc: float = -1.0
    best_epoch: int = -1
    masks: Optional[list[Tensor]] = None  # sparsity supports once fixed
    rows: list[dict[str, Any]] = field(default_factory=list)  # log.csv
    class_weight: Optional[Tensor] = None  # [C] loss weights (None: all 1)
    teacher: Optional[KWSModel] = None  # distillation teacher (cfg.distill_weight > 0)


def _load_splits(features_dir: Path) -> tuple[FeatureSplit, FeatureSplit]:
    """training.npz and validation.npz, checked to be made alike."""
    tr = read_features(split_file(features_dir, "training"))
    va = read_features(split_file(features_dir, "validation"))
    if len(tr.labels) == 0:
        raise TinyKWSError(f"{features_dir}/training.npz has no clips")
    check_splits_agree(tr, va)
    return tr, va


def class_weights(cfg: TrainConfig, categories: Sequence[str],
                  device: torch.device | str = "cpu") -> Optional[Tensor]:
    """[C] cross-entropy weights: `cfg.unknown_weight` for `_unknown_`, 1 elsewhere
    (None when that is all ones)."""
    if cfg.unknown_weight == 1.0 or UNKNOWN not in categories:
        return None
    w = torch.ones(len(categories))
    w[list(categories).index(UNKNOWN)] = cfg.unknown_weight
    return w.to(device)


def initial_weights(path: Path | str, model_config: Any, categories: Sequence[str],
                    params: Any) -> dict[str, Tensor]:
    """The weights of checkpoint `path` to start training from, checked to fit the model
    about to be trained (same architecture, classes in the same order, same features).

    The input normalisation (`mean`, `std`) is left out: it is the new training set's.
    """
    ck = load_checkpoint(path)
    what = []
    if ck.model_config != model_config:
        what.append(f"model {ck.model_config.to_dict()} != {model_config.to_dict()}")
    if tuple(ck.categories) != tuple(categories):
        what.append(f"classes {list(ck.categories)} != {list(categories)}")
    if ck.feature_params != params:
        what.append("feature parameters differ")
    if what:
        raise TinyKWSError(f"cannot start from {path}: " + "; ".join(what))
    return {k: v for k, v in ck.state_dict.items() if k not in ("mean", "std")}


def load_teacher(path: Path | str | None, cfg: TrainConfig, categories: Sequence[str],
                 params: Any, device: torch.device) -> Optional[KWSModel]:
    """The distillation teacher of checkpoint `path` (eval mode, frozen), checked to have
    the same classes and features as the training set; None when `cfg` does not distil."""
    if cfg.distill_weight == 0:
        if path is not None:
            raise TinyKWSError("--teacher needs --distill-weight above 0")
        return None
    if path is None:
        raise TinyKWSError(f"distill_weight {cfg.distill_weight} needs a teacher checkpoint (--teacher)")
    if not Path(path).is_file():
        raise TinyKWSError(f"teacher checkpoint {path} does not exist")
    ck = load_checkpoint(path)
    if tuple(ck.categories) != tuple(categories) or ck.feature_params != params:
        raise TinyKWSError(f"teacher {path} was trained on other classes or features")
    model, _ = load_model(path)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()


def distill_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Hinton et al.'s distillation term: KL(teacher || student) of the outputs softened
    by `temperature`, times T^2 (so its gradients keep their size as T changes)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)


def _set_up(features_dir: Path, run: RunDir, cfg: TrainConfig,
            ckpt: Optional[Checkpoint], init: Path | str | None = None,
            teacher: Path | str | None = None) -> _Session:
    """Data, model, optimiser and schedule; restored from `ckpt` when resuming, else
    started from the weights of checkpoint `init` when given; the distillation teacher
    from checkpoint `teacher`."""
    device = choose_device(cfg.device)
    dist = _init_distributed(device)
    if dist.world > 1 and device.type == "cuda":
        torch.cuda.set_device(device)
    tr, va = _load_splits(features_dir)
    cfg.check_fits(tr.features.shape[1], tr.features.shape[2])
    data = ClipSource(tr, cfg.batch_size, dist, cfg.seed)
    mcfg = cfg.model_config(len(tr.categories), tr.features.shape[2])

    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    init_sha = None
    if init is not None and ckpt is None:  # (resuming: the weights come from last.pt)
        model.load_state_dict(initial_weights(init, mcfg, tr.categories, tr.params), strict=False)
    if init is not None and Path(init).is_file():
        init_sha = file_sha256(init)
    if cfg.normalize:
        model.set_normalization(*normalization_stats(data.x))
    model.to(device)
    opt = _make_optimizer(model, cfg)
    schedule = Schedule(data.batches_per_epoch, cfg.epochs,
                        RollingPlan(data.batches_per_epoch, cfg.epochs, cfg.max_rolling_length)
                        if cfg.rolling else None)
    noise = None
    if cfg.noise_prob > 0 and SILENCE in tr.categories:
        noise = data.x[data.y == tr.categories.index(SILENCE)].to(device)
    s = _Session(
        cfg=cfg, run=run, dist=dist, device=device, training=tr, data=data,
        val=(torch.from_numpy(va.features), torch.from_numpy(va.labels)),
        model=model, net=model, opt=opt, schedule=schedule, noise=noise,
        log_per_db=math.log(10) / (10 if tr.params.power_spec else 20), bag=None,
        class_weight=class_weights(cfg, tr.categories, device),
        teacher=load_teacher(teacher, cfg, tr.categories, tr.params, device),
    )  # fmt: skip
    if ckpt is not None:
        _restore(s, ckpt)
    if cfg.rolling:
        s.bag = RollingBag(model, data.batch, device,
                           ckpt.training.rolling_bag if ckpt is not None else None)
    if dist.world > 1:
        s.net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    s.iteration = schedule.iterations_before(s.start_epoch)
    if sparse_groups(model) and s.start_epoch > 0 \
            and iht_phase(max(s.iteration - 1, 0), schedule.total_iterations) != "dense":
        s.masks = [p.detach() != 0 for p, _ in sparse_groups(model)]
    if dist.main:
        run.train.mkdir(parents=True, exist_ok=True)
        run.train_config.write_text(json.dumps(
            {"train_config": cfg.to_dict(), "model_config": mcfg.to_dict(),
             "categories": tr.categories, "feature_params": tr.params.to_dict(),
             "n_train": len(data.y), "n_validation": len(va.labels), "world_size": dist.world,
             "init": None if init is None else {"path": str(init), "sha256": init_sha},
             **({} if teacher is None else
                {"teacher": {"path": str(teacher), "sha256": file_sha256(teacher)}})},
            indent=2) + "\n")
        s.rows = _read_log(run.train_log, s.start_epoch - 1)
    return s


def _restore(s: _Session, ckpt: Checkpoint) -> None:
    """Continue from `last.pt`: weights, optimiser, epoch, best so far, torch's RNG."""
    tr = s.training
    if ckpt.model_config != s.model.config or ckpt.feature_params != tr.params \
            or list(ckpt.categories) != tr.categories:
        raise TinyKWSError("the features no longer match the checkpoint's model; cannot resume")
    ckpt.load_weights(s.model)
    st = ckpt.training
    s.opt.load_state_dict(st.optimizer)
    s.start_epoch = st.epoch + 1
    s.best_acc, s.best_epoch = st.best_val_acc, st.best_epoch
    torch.set_rng_state(st.rng_state)


def _train_epoch(s: _Session, epoch: int) -> tuple[float, float, float]:
    """One epoch of optimiser steps -> (training loss, training accuracy, last rate)."""
    cfg, total = s.cfg, s.schedule.total_iterations
    s.net.train()
    gen = torch.Generator().manual_seed(_rng_seed(cfg, epoch, s.dist.rank, 1))
    if s.bag is not None and s.schedule.warming(epoch):
        s.bag.reset()
    state, lr = None, cfg.learning_rate
    sum_loss, sum_correct, seen = 0.0, 0, 0
    for xb, yb in s.data.batches(epoch, s.schedule.batches(epoch), s.device):
        if cfg.augments:
            xb = augment_batch(xb, cfg, gen, s.noise, s.log_per_db)
        lr = learning_rate_at(s.iteration, total, cfg)
        for g in s.opt.param_groups:
            g["lr"] = lr
        s.opt.zero_grad(set_to_none=True)
        if s.bag is not None:
            logits, final = s.net(xb, state, return_state=True)
        else:
            logits = s.net(xb)
        loss = F.cross_entropy(logits, yb, weight=s.class_weight, label_smoothing=cfg.label_smoothing)
        if s.teacher is not None:
            with torch.no_grad():
                target = s.teacher(xb)
            loss = (1 - cfg.distill_weight) * loss \
                + cfg.distill_weight * distill_loss(logits, target, cfg.distill_temperature)
        loss.backward()
        s.opt.step()
        s.masks = sparsify_step(s.model, s.iteration, total, s.masks)
        if s.bag is not None:  # carry states to later batches through the bag
            state = s.bag.carry(final, gen)
        s.iteration += 1
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            _diverged(epoch, f"loss {loss_value} at step {s.iteration}", s.run.train)
        sum_loss += loss_value * len(yb)
        sum_correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
    totals = torch.tensor([sum_loss, sum_correct, seen], dtype=torch.float64)
    if s.dist.world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(totals)
    return float(totals[0] / totals[2]), float(totals[1] / totals[2]), lr


def _end_epoch(s: _Session, epoch: int, train_loss: float, train_acc: float, lr: float,
               seconds: float) -> float:
    """Validate, track the best epoch, and (rank 0) write log.csv, best.pt, last.pt.
    Returns the validation accuracy."""
    val_loss, val_acc = evaluate_set(s.model, *s.val)
    sparse = bool(sparse_groups(s.model))
    phase = iht_phase(s.iteration - 1, s.schedule.total_iterations) if sparse else "dense"
    # sparse models are selected only once their support is fixed (EdgeML: after IHT);
    # no validation clips (a tiny dataset): the latest epoch counts as the best
    improved = (phase == "sparse" or not sparse) and (val_acc > s.best_acc or math.isnan(val_acc))
    if improved:
        s.best_acc, s.best_epoch = val_acc, epoch
    if not all(torch.isfinite(p).all() for p in s.model.parameters()):
        _diverged(epoch, "non-finite weights", s.run.train)  # before anything is saved
    if not s.dist.main:
        return val_acc
    s.rows.append({
        "epoch": epoch, "iterations": s.iteration, "learning_rate": f"{lr:.6g}",
        "train_loss": f"{train_loss:.5f}", "train_acc": f"{train_acc:.5f}",
        "val_loss": f"{val_loss:.5f}", "val_acc": f"{val_acc:.5f}", "phase": phase,
        "seconds": f"{seconds:.2f}",
    })
    ck = _checkpoint(s, epoch, val_acc).to_dict()
    # Log first: a kill between the two leaves a log row ahead of last.pt, which resume
    # drops (it keeps rows up to the checkpoint's epoch) and redoes.
    _write_log(s.run.train_log, s.rows)
    if improved:
        atomic_torch_save(ck, s.run.best)
    atomic_torch_save(ck, s.run.last)
    if epoch % 10 == 9:  # and at the end; a killed run still has curves
        plot_curves(s.rows, s.run.curves)
    return val_acc


def _checkpoint(s: _Session, epoch: int, val_acc: float) -> Checkpoint:
    """The model after `epoch`, with what `--resume` needs (tinykws.checkpoint.Checkpoint)."""
    return Checkpoint(
        s.model.config, s.training.params, tuple(s.training.categories),
        {k: v.detach().cpu() for k, v in s.model.state_dict().items()},
        train_config=s.cfg,
        training=TrainingState(
            epoch=epoch, best_val_acc=s.best_acc, best_epoch=s.best_epoch, val_acc=val_acc,
            optimizer=s.opt.state_dict(),
            scheduler={"iteration": s.iteration, "total_iterations": s.schedule.total_iterations},
            rng_state=torch.get_rng_state(),
            # under DDP each rank has its own bag: not saved (resume starts it afresh)
            rolling_bag=s.bag.saved() if s.bag is not None and s.dist.world == 1 else None,
        ),
    )  # fmt: skip


def _train(s: _Session, features_dir: Path, max_epochs_this_run: Optional[int]) -> TrainResult:
    """The epochs, then the best checkpoint's accuracy on testing.npz (when present)."""
    cfg = s.cfg
    t_start = time.perf_counter()
    end = cfg.epochs if max_epochs_this_run is None \
        else min(cfg.epochs, s.start_epoch + max_epochs_this_run)
    epochs = range(s.start_epoch, end)
    last_val_acc = float("nan")
    with progress_bar(enabled=s.dist.main) as bar:  # one bar, from rank 0
        task = bar.add_task("train", total=cfg.epochs, completed=s.start_epoch)
        for epoch in epochs:
            t0 = time.perf_counter()
            train_loss, train_acc, lr = _train_epoch(s, epoch)
            last_val_acc = _end_epoch(s, epoch, train_loss, train_acc, lr, time.perf_counter() - t0)
            bar.update(task, advance=1, description=(
                f"train e{epoch + 1} loss {train_loss:.3f} val {last_val_acc:.3f} "
                f"best {s.best_acc:.3f}"))
    if s.dist.main and s.rows:
        plot_curves(s.rows, s.run.curves)
    test_acc = _test_accuracy(s, features_dir) if s.dist.main else None
    if s.dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
    return TrainResult(
        train_dir=s.run.train, best_path=s.run.best, last_path=s.run.last,
        best_epoch=s.best_epoch, best_val_acc=s.best_acc, last_val_acc=last_val_acc,
        test_acc=test_acc, epochs_run=len(epochs), seconds=time.perf_counter() - t_start,
    )  # fmt: skip


def _test_accuracy(s: _Session, features_dir: Path) -> Optional[float]:
    """Accuracy of best.pt on testing.npz; None without either."""
    if not split_file(features_dir, "testing").is_file() or not s.run.best.is_file():
        return None
    te = read_features(split_file(features_dir, "testing"))
    check_splits_agree(s.training, te)
    best_model, _ = load_model(s.run.best)
    _, acc = evaluate_set(best_model.to(s.device), torch.from_numpy(te.features),
                          torch.from_numpy(te.labels))
    return acc


def _diverged(epoch: int, what: str, train_dir: Path) -> None:
    """Stop a run whose loss or weights went non-finite, before it saves anything of this
    epoch: last.pt and best.pt keep the last good epoch."""
    kept = (f"{train_dir}/last.pt keeps epoch {epoch} (the last good one)" if epoch > 0
            else "no checkpoint was written")
    raise TinyKWSError(
        f"training diverged in epoch {epoch + 1} ({what}); {kept}. "
        "Lower --learning-rate (or --lr-min) and train again"
    )
