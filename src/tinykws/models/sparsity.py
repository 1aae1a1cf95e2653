"""Sparsity by iterative hard thresholding (IHT), as in the FastGRNN paper / EdgeML FastTrainer.

Training runs in three equal thirds of all iterations:
1. dense training;
2. IHT: every `TRIM_EVERY` iterations W and U are hard-thresholded to their largest
   entries (a new support); in between, entries outside the current support are zeroed
   after each optimiser step;
3. sparse retraining on the fixed support from the last threshold.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TRIM_EVERY = 15  # EdgeML's trimlevel


def sparse_groups(model: nn.Module) -> list[tuple[nn.Parameter, float]]:
    """The (matrix, fraction kept) pairs that sparsity applies to: every cell's W and U parts."""
    cfg = model.config
    groups = []
    for cell in model.cells:
        if not hasattr(cell, "w_matrices"):
            continue
        if cfg.w_sparsity < 1.0:
            groups += [(p, cfg.w_sparsity) for p in cell.w_matrices()]
        if cfg.u_sparsity < 1.0:
            groups += [(p, cfg.u_sparsity) for p in cell.u_matrices()]
    return groups


def hard_threshold_mask(t: Tensor, keep: float) -> Tensor:
    """Boolean mask of the ceil(keep * n) largest-magnitude entries of t."""
    n = t.numel()
    k = max(1, min(n, math.ceil(keep * n)))
    idx = torch.topk(t.detach().abs().flatten(), k).indices
    mask = torch.zeros(n, dtype=torch.bool, device=t.device)
    mask[idx] = True
    return mask.view_as(t)


def iht_phase(iteration: int, total_iterations: int) -> str:
    """'dense' | 'iht' | 'sparse' for a global iteration index (EdgeML's thirds)."""
    if iteration < total_iterations // 3:
        return "dense"
    if iteration < (2 * total_iterations) // 3:
        return "iht"
    return "sparse"


@torch.no_grad()
def sparsify_step(
    model: nn.Module, iteration: int, total_iterations: int, masks: list[Tensor] | None
) -> list[Tensor] | None:
    """Call after each optimiser step; returns the current masks (None while dense)."""
    groups = sparse_groups(model)
    if not groups:
        return None
    phase = iht_phase(iteration, total_iterations)
    if phase == "dense":
        return masks
    # a run too short for an IHT third (fewer than 3 iterations) reaches "sparse" without a
    # support yet: threshold once there
    if masks is None or (phase == "iht" and iteration % TRIM_EVERY == 0):
        masks = [hard_threshold_mask(p, keep) for p, keep in groups]
    for (p, _), m in zip(groups, masks):
        p.mul_(m)
    return masks


def fix_support(model: nn.Module, opt: torch.optim.Optimizer) -> list[Tensor] | None:
    """Keep a sparse model sparse while `opt` trains it further (e.g. the pipeline's stream
    phase after the clip phase's IHT): the zeros of every sparse matrix now are re-zeroed
    after each `opt.step()` (a post-step hook), so the support stays the one the clip phase
    fixed and the device build keeps its size. Returns the masks (None: a dense model, no
    hook)."""
    groups = sparse_groups(model)
    if not groups:
        return None
    masks = [p.detach() != 0 for p, _ in groups]

    @torch.no_grad()
    def reapply(*_: object) -> None:
        for (p, _), m in zip(groups, masks):
            p.mul_(m)

    opt.register_step_post_hook(reapply)
    return masks
