"""The stream phase's losses (`tinykws.stream_training`), on logits `[B, T, C]` and per-frame
targets, weights and regions `[B, T]` as `StreamMaker` makes them."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn import functional as F

IGNORE = -100  # target of frames that are not scored

__all__ = ["IGNORE", "causal_mean", "inside_keyword", "peak_loss", "stream_loss"]


def inside_keyword(target: Tensor, rclass: Tensor, keyword_mask: Tensor) -> Tensor:
    """[B, T] int64: the keyword being spoken at each unscored frame of a keyword, else -1."""
    inside = (target == IGNORE) & keyword_mask[rclass]
    return torch.where(inside, rclass, torch.full_like(rclass, -1))


def causal_mean(p: Tensor, n: int) -> Tensor:
    """Mean of the last `n` frames (fewer at the start), as the detector smooths; p [B, T, C]."""
    c = torch.cumsum(p, dim=1)
    lagged = torch.cat([torch.zeros_like(c[:, :n]), c[:, :-n]], dim=1)[:, : c.shape[1]]
    count = torch.arange(1, p.shape[1] + 1, device=p.device).clamp(max=n).to(p.dtype)
    return (c - lagged) / count[None, :, None]


def peak_loss(logits: Tensor, target: Tensor, region: Tensor, rclass: Tensor, keyword_mask: Tensor,
              smooth: int) -> Tensor:
    """The detector's statistic trained directly (see `StreamTrainConfig.peak_weight`).

    Scores are softmax probabilities averaged over `smooth` frames. Per region (a word or a
    gap of one row; `region`/`rclass` [B, T]): a keyword's best smoothed own score over its
    scored frames (target == its class) -> -log(best); the best smoothed score of any
    keyword other than the region's own class over the whole region -> -log(1 - best).
    The mean of both terms over the regions in the chunk."""
    B, T, C = logits.shape
    s = causal_mean(torch.softmax(logits, -1), smooth)  # [B, T, C]
    kw = keyword_mask.to(s.device)
    own_cls = F.one_hot(rclass, C).bool()  # [B, T, C]
    wrong = s.masked_fill(~kw[None, None] | own_cls, 0.0).amax(-1)  # [B, T]
    own = s.gather(-1, rclass[..., None])[..., 0]  # [B, T]
    scored = (target == rclass) & kw[rclass]  # keyword frames of the target window
    key = torch.arange(B, device=s.device)[:, None] * (int(region.max()) + 1) + region  # [B, T]
    uniq, inv = torch.unique(key.reshape(-1), return_inverse=True)
    n = len(uniq)
    zeros = torch.zeros(n, dtype=s.dtype, device=s.device)
    wrong_max = zeros.scatter_reduce(0, inv, wrong.reshape(-1), "amax")
    own_max = zeros.scatter_reduce(0, inv, torch.where(scored, own, torch.zeros_like(own)).reshape(-1), "amax")
    has_own = zeros.scatter_reduce(0, inv, scored.reshape(-1).to(s.dtype), "amax") > 0
    eps = 1e-6
    loss = -torch.log1p(-wrong_max.clamp(max=1 - eps)).mean()
    if has_own.any():
        loss = loss - torch.log(own_max[has_own].clamp(min=eps)).mean()
    return loss


def stream_loss(logits: Tensor, target: Tensor, weight: Tensor, inside: Optional[Tensor] = None,
                keyword_mask: Optional[Tensor] = None, inside_weight: float = 0.0,
                focal_gamma: float = 0.0) -> Tensor:
    """Weighted per-frame cross-entropy; logits [B, T, C], target/weight/inside [B, T].

    With `focal_gamma` > 0 each frame's cross-entropy is scaled by (1 - p)^gamma, p the
    probability of its target (the focal loss of Lin et al. 2017): frames already right
    count little, confident errors fully.

    With `inside_weight` > 0, frames inside a keyword (`inside` >= 0: its class) add
    `inside_weight` * -log(1 - p(other keywords)) (`keyword_mask` bool [C]), counted in the
    same normalisation as the scored frames."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                         ignore_index=IGNORE, reduction="none")
    w = weight.reshape(-1)
    if focal_gamma > 0:
        ce = ce * (-torch.expm1(-ce)).pow(focal_gamma)  # 1 - p = 1 - exp(-ce); ignored frames: ce 0
    total, norm = (ce * w).sum(), w.sum()
    if inside_weight > 0 and inside is not None and keyword_mask is not None:
        rows = inside.reshape(-1) >= 0
        if rows.any():
            logp = torch.log_softmax(logits.reshape(-1, logits.shape[-1])[rows], -1)  # [n, C]
            own = F.one_hot(inside.reshape(-1)[rows], logp.shape[-1]).bool()
            other = keyword_mask[None, :] & ~own  # [n, C]
            log_other = torch.logsumexp(logp.masked_fill(~other, -torch.inf), -1)  # log p(other kw)
            # -log(1 - p_other), computed stably from log p_other
            pen = -torch.log1p(-torch.exp(log_other).clamp(max=1 - 1e-6))
            total = total + inside_weight * pen.sum()
            norm = norm + inside_weight * rows.sum()
    return total / norm.clamp_min(1e-6)
