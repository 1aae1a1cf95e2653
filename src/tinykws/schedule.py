"""The training schedule of `tinykws.train`: the learning rate per iteration, the seed's
`--rolling` plan (clip lengths and state carrying per epoch) and the bag of carried states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from tinykws.config import TrainConfig
from tinykws.models import State


def learning_rate_at(iteration: int, total: int, cfg: TrainConfig) -> float:
    """Cosine annealing per iteration (torch's CosineAnnealingLR closed form, as the seed):
    T_max = total / (2 * lr_peaks + 1), so the rate falls, rises lr_peaks times, ends low."""
    if cfg.lr_scheduler == "constant":
        return cfg.learning_rate
    t_max = max(total / (2 * cfg.lr_peaks + 1), 1e-9)
    return cfg.lr_min + (cfg.learning_rate - cfg.lr_min) * (
        1 + math.cos(math.pi * iteration / t_max)
    ) / 2


@dataclass(frozen=True)
class RollingPlan:
    """The seed's `--rolling` schedule (ELL train_classifier.py), for one process.

    A rolling length starts at 2 and grows by one each epoch.  While it is at most
    `max_length` = min(batches per epoch, max_rolling_length + 2, epochs + 2), an epoch
    is cut short: it trains only its first (rolling length - 1) batches, and a "bag" of
    100 * batch_size hidden states per layer is reset to zeros.  In every epoch, each
    batch after the first starts from the hidden states in bag slots [0, batch): after a
    batch, its final (detached) states are written into batch_size random bag slots.  So
    a clip starts from zeros or from the state some earlier clip ended in, and the model
    learns to classify without resetting its state between clips (streaming).  Gradients
    never flow across batches.
    """

    batches_per_epoch: int
    epochs: int
    max_rolling_length: int

    @property
    def max_length(self) -> int:
        m = min(self.batches_per_epoch, self.max_rolling_length + 2)
        return min(m, self.epochs + 2)

    def length(self, epoch: int) -> int:
        return 3 + epoch  # 2, then += 1 at the start of every epoch

    def warming(self, epoch: int) -> bool:
        """Is this epoch cut short (and its bag reset)?"""
        return self.length(epoch) <= self.max_length

    def batches(self, epoch: int) -> int:
        return self.length(epoch) - 1 if self.warming(epoch) else self.batches_per_epoch

    def total_iterations(self) -> int:
        return sum(self.batches(e) for e in range(self.epochs))


@dataclass(frozen=True)
class Schedule:
    """How many batches each epoch trains, and the iteration count the learning rate
    and the sparsity phases follow (rolling warm-up epochs are cut short)."""

    batches_per_epoch: int
    epochs: int
    rolling: Optional[RollingPlan] = None  # --rolling

    def batches(self, epoch: int) -> int:
        return self.rolling.batches(epoch) if self.rolling else self.batches_per_epoch

    def warming(self, epoch: int) -> bool:
        """Is this a rolling warm-up epoch (cut short, its bag reset)?"""
        return self.rolling is not None and self.rolling.warming(epoch)

    def iterations_before(self, epoch: int) -> int:
        return sum(self.batches(e) for e in range(epoch))

    @property
    def total_iterations(self) -> int:
        return self.iterations_before(self.epochs)


BAG_COUNT = 100  # the seed's bag_count


class RollingBag:
    """The bag of hidden states of the seed's `--rolling` training (see `RollingPlan`):
    BAG_COUNT * batch states per layer. A batch starts from the states in slots [0, B)
    and leaves its final (detached) states in B random slots."""

    def __init__(self, model: nn.Module, batch: int, device: torch.device,
                 saved: Optional[State] = None) -> None:
        self.model, self.size, self.device = model, BAG_COUNT * batch, device
        self.states: State = model.init_state(self.size, device)  # [L, size, H] (LSTM: h, c)
        if saved is not None:
            self.states = _map_state(lambda t: t.to(device), saved)

    def reset(self) -> None:
        """All states back to zeros (each rolling warm-up epoch)."""
        self.states = self.model.init_state(self.size, self.device)

    def carry(self, final: State, gen: torch.Generator) -> State:
        """Store a batch's final states in random slots; the next batch's start states."""
        n = (final[0] if isinstance(final, tuple) else final).shape[1]  # B
        slots = torch.randperm(self.size, generator=gen)[:n].to(self.device)
        if isinstance(self.states, tuple):
            for k in range(2):
                self.states[k][:, slots] = final[k].detach()
        else:
            self.states[:, slots] = final.detach()
        return _map_state(lambda t: t[:, :n].clone(), self.states)

    def saved(self) -> State:
        """A CPU copy for the checkpoint (resume continues from the same bag)."""
        return _map_state(lambda t: t.cpu(), self.states)


def _map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    return tuple(fn(t) for t in state) if isinstance(state, tuple) else fn(state)
