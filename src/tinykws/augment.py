"""Data augmentation on log-mel features (the clip phase of `tinykws.train` and the stream
phase): speaking rate and vocal-tract warp, time shift, gain, background noise and
SpecAugment masks, all drawn from one torch generator (resume repeats them).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from tinykws.config import TrainConfig


def warp_axis(x: Tensor, axis: int, factor: Tensor, fill: Tensor) -> Tensor:
    """Resample x [B, T, F] along `axis` (1: time, 2: mel bands) by a factor per clip [B]:
    output index i reads input position i / factor (linear interpolation), so a factor
    above 1 stretches (slower speech, formants moved up).  Positions past the end take
    `fill` (broadcastable to x)."""
    x_ = x.transpose(1, axis) if axis != 1 else x  # warped axis second: [B, N, ...]
    n = x_.shape[1]
    pos = torch.arange(n, device=x.device, dtype=x.dtype)[None, :] / factor[:, None]  # [B, N]
    lo = pos.floor().clamp(0, n - 1).long()
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.to(x.dtype)).clamp(0, 1)
    shape = (x_.shape[0], n) + (1,) * (x_.dim() - 2)
    gather = lambda i: torch.gather(x_, 1, i.view(shape).expand_as(x_))  # noqa: E731
    out = gather(lo) * (1 - frac).view(shape) + gather(hi) * frac.view(shape)
    out = out.transpose(1, axis) if axis != 1 else out
    inside = (pos <= n - 1).view(shape)
    inside = inside.transpose(1, axis) if axis != 1 else inside
    return torch.where(inside, out, fill)


def augment_batch(
    x: Tensor, cfg: TrainConfig, gen: torch.Generator, noise: Optional[Tensor], log_per_db: float
) -> Tensor:
    """Random speaking rate and vocal-tract warp, time shift, gain, background-noise mix
    and SpecAugment masks on log-mel features x [B, T, F] (before normalisation).  Gain and
    noise act in the log domain: a gain of g dB adds g * log_per_db; noise n mixes as
    log(e^x + e^(n + level))."""
    B, T, Fd = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=gen).to(dev)

    def randint(lo, hi, shape):
        return torch.randint(lo, hi, shape, generator=gen).to(dev)

    for amount, axis in ((cfg.time_stretch, 1), (cfg.freq_warp, 2)):
        if amount > 0:
            factor = 1 + (rand(B) * 2 - 1) * amount
            fill = x.min(dim=1, keepdim=True).values if axis == 1 else x[:, :, -1:]
            x = warp_axis(x, axis, factor, fill)  # time: the quietest level; mel: top band
    if cfg.time_shift > 0:
        shift = randint(-cfg.time_shift, cfg.time_shift + 1, (B,))
        src = torch.arange(T, device=dev)[None, :] - shift[:, None]  # [B, T]
        valid = (src >= 0) & (src < T)
        moved = torch.gather(x, 1, src.clamp(0, T - 1)[:, :, None].expand(B, T, Fd))
        floor = x.min(dim=1, keepdim=True).values  # the clip's quietest level per band
        x = torch.where(valid[:, :, None], moved, floor)
    if cfg.gain_db > 0:
        x = x + ((rand(B) * 2 - 1) * cfg.gain_db * log_per_db)[:, None, None]
    if cfg.noise_prob > 0 and noise is not None and len(noise):
        pick = rand(B) < cfg.noise_prob
        n = noise[randint(0, len(noise), (B,))]
        lo, hi = cfg.noise_db
        level = (lo + (hi - lo) * rand(B)) * log_per_db
        mixed = torch.logaddexp(x, n + level[:, None, None])
        x = torch.where(pick[:, None, None], mixed, x)
    for n_masks, width, axis in ((cfg.time_masks, cfg.time_mask_width, 1),
                                 (cfg.freq_masks, cfg.freq_mask_width, 2)):
        size = x.shape[axis]
        fill = x.mean(dim=(1, 2), keepdim=True)
        for _ in range(n_masks):
            w = randint(0, width + 1, (B,))
            start = (rand(B) * (size - w + 1).float()).long()
            pos = torch.arange(size, device=dev)[None, :]
            m = (pos >= start[:, None]) & (pos < (start + w)[:, None])  # [B, size]
            m = m[:, :, None] if axis == 1 else m[:, None, :]
            x = torch.where(m, fill, x)
    return x
