"""Quantization-aware fine-tuning: train the float model with its weights rounded to int8
in the forward pass (straight-through gradients), so that it learns weights that survive
the rounding. Used by `tinykws quantize --qat-epochs N` when post-training quantization
loses accuracy.

What is simulated: per-row (or per-tensor) symmetric int8 rounding of W (of W / std for the
first layer, as `quantize_model` folds the input normalisation into it), U and the
classifier. The int16 activations and Q7.8 features are fine enough (2^-13, 2^-8) to leave
out. Low-rank factors are left in float (the integer model keeps them as two int8 factors;
they are not fake-quantized here), and a sparse model's zeros are not held.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from tinykws.models import build_model
from tinykws.progress import progress_bar
from tinykws.quant.measure import calibration_set, int_scores, layer_ranges
from tinykws.quant.model import WEIGHT_MAX, quantize_model


class FakeQuantRows(nn.Module):
    """w -> int8-rounded w (per row or per tensor), gradient passed straight through.

    `col_scale` [cols] (the first layer's 1 / std): rows are rounded in the scaled space,
    as the integer model stores W / std."""

    def __init__(self, per_row: bool = True, col_scale: Tensor | None = None) -> None:
        super().__init__()
        self.per_row = per_row
        self.register_buffer("col_scale", col_scale if col_scale is not None else torch.ones(1))

    def forward(self, w: Tensor) -> Tensor:
        ws = w * self.col_scale
        amax = ws.abs().amax(dim=1, keepdim=True) if self.per_row else ws.abs().amax().expand(ws.shape[0], 1)
        scale = torch.where(amax > 0, amax / WEIGHT_MAX, torch.ones_like(amax)).detach()
        q = torch.clamp(torch.round(ws / scale), -WEIGHT_MAX, WEIGHT_MAX) * scale
        return w + (q / self.col_scale - w).detach()


def attach_fake_quant(model: nn.Module, per_row: bool = True) -> nn.Module:
    """Parametrize W, U (full-rank cells; GRU: `rnn.weight_ih_l0`, `rnn.weight_hh_l0`) and
    fc.weight of a KWSModel copy with FakeQuantRows."""
    m = copy.deepcopy(model)
    for i, cell in enumerate(m.cells):
        col = (1.0 / m.std).detach().repeat(m.config.frame_stride) if i == 0 else None  # [s F]
        if m.config.architecture == "gru":
            parametrize.register_parametrization(cell.rnn, "weight_ih_l0", FakeQuantRows(per_row, col))
            parametrize.register_parametrization(cell.rnn, "weight_hh_l0", FakeQuantRows(per_row))
            continue
        if getattr(cell, "wrank", None) is None:
            parametrize.register_parametrization(cell, "W", FakeQuantRows(per_row, col))
        if getattr(cell, "urank", None) is None:
            parametrize.register_parametrization(cell, "U", FakeQuantRows(per_row))
    parametrize.register_parametrization(m.fc, "weight", FakeQuantRows(per_row))
    return m


def finetune(model: nn.Module, tr_x: np.ndarray, tr_y: np.ndarray, va_x: np.ndarray,
             va_y: np.ndarray, epochs: int = 5, per_row: bool = True, lr: float = 2e-4,
             batch: int = 128, seed: int = 0) -> nn.Module:
    """Fine-tune with int8 weights in the loop; returns the plain float model (parametrizations
    removed, weights = the latent float weights) of the epoch whose *integer* model is best
    on the validation features."""
    g = torch.Generator().manual_seed(seed)
    m = attach_fake_quant(model, per_row)
    m.train()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    x_all = torch.from_numpy(np.ascontiguousarray(tr_x, np.float32))
    y_all = torch.from_numpy(np.asarray(tr_y, np.int64))
    best, best_acc = model, -1.0
    steps = -(-len(x_all) // batch)
    with progress_bar() as bar:
        task = bar.add_task("quantization-aware fine-tuning", total=epochs * steps)
        for _ in range(epochs):
            m.train()
            perm = torch.randperm(len(x_all), generator=g)
            for s in range(steps):
                idx = perm[s * batch : (s + 1) * batch]
                loss = nn.functional.cross_entropy(m(x_all[idx]), y_all[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.advance(task)
            plain = _plain(m)
            ranges, inner = layer_ranges(plain, calibration_set(tr_x, seed=seed))
            im = quantize_model(plain, [str(i) for i in range(plain.config.num_classes)],
                                ranges, per_row, rank_max_abs=inner)
            acc = float((int_scores(im, va_x)[:, -1].argmax(-1) == va_y).mean())
            if acc > best_acc:
                best, best_acc = plain, acc
    return best


def _plain(m: nn.Module) -> nn.Module:
    """A parametrization-free eval model whose weights are the latent float weights."""
    sd = {}
    for name, t in m.state_dict().items():
        if ".parametrizations." in name:
            if not name.endswith(".original"):
                continue  # FakeQuantRows' own buffers
            module, rest = name.split(".parametrizations.")
            name = f"{module}.{rest[: -len('.original')]}"
        sd[name] = t.detach().clone()
    plain = build_model(m.config)
    plain.load_state_dict(sd)
    return plain.eval()
