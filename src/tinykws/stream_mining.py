"""Hard-negative mining for the stream phase (`StreamTrainConfig.mine_*`): every
`mine_every` steps the model scores negatives inside a stream context, and the hard ones
are drawn `mine_boost` times as often afterwards (`StreamMaker.set_negative_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from tinykws.labels import keyword_mask
from tinykws.stream_losses import causal_mean
from tinykws.stream_workers import Group

# `maker` is a `stream_maker.StreamMaker` and `cfg` its `stream_training.StreamTrainConfig` (not imported:
# stream_training imports this module)
StreamMaker = StreamTrainConfig = Any


@torch.no_grad()
def negative_keyword_scores(model, maker: StreamMaker, context: int = 100, batch: int = 256,
                            which: Optional[np.ndarray] = None, smooth: int = 0) -> np.ndarray:
    """Highest keyword probability of each negative clip `[len(maker.neg)]` (or of the
    negatives at positions `which` of `maker.neg`), heard after `context` frames of
    background from a zero state and until its target window ends; with `smooth` > 0, of
    the probabilities' `smooth`-frame mean, as the detector fires on."""
    pool, cfg = maker.pool, maker.cfg
    kw_cls = torch.from_numpy(keyword_mask(pool.categories))
    out = []
    T = pool.features.shape[1]
    negs = maker.neg if which is None else maker.neg[which]
    for s in range(0, len(negs), batch):
        ids = negs[s:s + batch]
        bed = torch.from_numpy(np.stack([maker._noise_bed(context + T + cfg.target_delay + cfg.target_frames)
                                         for _ in ids]))
        x = bed.clone()
        words = torch.from_numpy(pool.features[ids])
        x[:, context:context + T] = torch.logaddexp(words, bed[:, context:context + T])
        logits, _ = model.forward_sequence(x)
        p = torch.softmax(logits, -1)  # [b, T, C]
        if smooth > 0:  # the mean runs over the context too, as the detector's does
            p = causal_mean(p, smooth)
        p = p[:, context:, kw_cls].amax(-1)  # [b, T']
        out.append(p.amax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class Miner:
    """Hard-negative mining state: the latest score of every negative (NaN: not scored
    yet) and where the next round starts (`StreamTrainConfig.mine_*`)."""

    scores: np.ndarray  # [len(maker.neg)] float64
    pos: int = 0

    @classmethod
    def for_maker(cls, maker: StreamMaker) -> "Miner":
        return cls(np.full(len(maker.neg), np.nan))

    def next_round(self, cfg: StreamTrainConfig) -> np.ndarray:
        """Positions in `maker.neg` to score this round (the next `mine_clips`, wrapping)."""
        n = len(self.scores)
        k = n if cfg.mine_clips <= 0 else min(n, cfg.mine_clips)
        which = (self.pos + np.arange(k)) % n
        self.pos = int((self.pos + k) % n)
        return which

    def weights(self, cfg: StreamTrainConfig) -> np.ndarray:
        """Drawing weight of every negative: `mine_boost` for the hard ones, else 1."""
        s = np.nan_to_num(self.scores, nan=-np.inf)
        hard = s >= cfg.mine_threshold
        scored = s[np.isfinite(s)]
        if cfg.mine_top > 0 and len(scored):
            k = max(1, round(cfg.mine_top * len(scored)))  # the k highest scores so far
            hard &= s >= np.partition(scored, len(scored) - k)[len(scored) - k]
        return 1.0 + (cfg.mine_boost - 1.0) * hard

    def mine(self, model, maker: StreamMaker, cfg: StreamTrainConfig, group: Optional[Group] = None) -> int:
        """Score this round's negatives (shared among the workers of `group`), reweight the
        maker; returns the hard count."""
        group = group or Group()
        which = self.next_round(cfg)
        was_training = model.training
        model.eval()
        mine = negative_keyword_scores(model, maker, which=which[group.rank::group.world],
                                       smooth=cfg.mine_smooth_frames)
        model.train(was_training)
        self.scores[which] = group.gather(len(which), mine)
        w = self.weights(cfg)
        maker.set_negative_weights(w)
        return int((w > 1).sum())
