"""An exponential moving average of a model's weights (Polyak averaging), for training loops.

The last step's weights carry the last batches' noise; their running average over the
final few hundred steps is a smoother point of the same run. It costs one copy of the
trained parameters and one fused update a step, and nothing on the device (the average is
the model that is saved, with the same shapes and support).
"""

from __future__ import annotations

import torch
from torch import Tensor


class WeightAverage:
    """avg <- d avg + (1 - d) p after each step, with d = min(decay, (1 + n) / (10 + n))
    over the n updates so far, so the first steps' weights fade fast (TensorFlow's
    `ExponentialMovingAverage` with `num_updates`)."""

    def __init__(self, params: list[Tensor], decay: float, updates: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), not {decay!r}")
        self.params = params
        self.decay = decay
        self.updates = updates
        self.average = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters' current values into the average."""
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for a, p in zip(self.average, self.params):
            a.lerp_(p.detach(), 1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Put the average into the parameters (the model is then the averaged model)."""
        for p, a in zip(self.params, self.average):
            p.copy_(a)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "average": [a.clone() for a in self.average]}

    def load_state_dict(self, d: dict) -> None:
        if len(d["average"]) != len(self.average):
            raise ValueError("the saved average has another number of parameters")
        self.updates = int(d["updates"])
        for a, s in zip(self.average, d["average"]):
            a.copy_(s)
