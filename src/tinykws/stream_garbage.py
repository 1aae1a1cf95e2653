"""Garbage outputs for the stream phase (`StreamTrainConfig.garbage_threshold`).

A softmax classifier gives `_unknown_` one weight row, so the hidden states it wins are one
convex region that must hold every non-keyword, while the words a keyword spotter must
reject most ("rights" for right, "gnome" for no) sit right beside each keyword. With garbage
outputs the stream phase adds one output per keyword, "sounds like keyword k, is not k", and
trains each negative clip the clip model scores as keyword k (probability >= the threshold)
towards it; the rest stay `_unknown_`. The model folds the garbage outputs into `_unknown_`
(`KWSModel.head`), so the detector, evaluation and the reports see the usual classes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from tinykws.errors import TinyKWSError
from tinykws.labels import UNKNOWN, keyword_mask
from tinykws.models import KWSModel
from tinykws.stream_clips import ClipPool

__all__ = ["garbage_targets", "keyword_scores", "raw_masks", "with_garbage"]


def _keywords(categories: Sequence[str]) -> list[int]:
    return np.flatnonzero(keyword_mask(categories)).tolist()


def _unknown(categories: Sequence[str]) -> int:
    """The index of `_unknown_`, which the garbage outputs are kinds of."""
    if UNKNOWN not in categories:
        raise TinyKWSError("garbage outputs are kinds of _unknown_; this task has no _unknown_ class")
    return list(categories).index(UNKNOWN)


def with_garbage(model: KWSModel, categories: Sequence[str]) -> KWSModel:
    """A copy of `model` with one garbage output per keyword, each starting as `_unknown_`'s
    row; those K + 1 rows' biases lowered by log(K + 1), so the folded outputs start as the
    model's own."""
    C, K, u = len(categories), len(_keywords(categories)), _unknown(categories)
    cfg = dataclasses.replace(model.config, garbage_classes=K, garbage_into=u)
    new = KWSModel(cfg)
    sd = dict(model.state_dict())
    for name in ("fc.weight", "fc.bias"):
        w = sd[name][:C]
        w = torch.cat([w, w[u:u + 1].expand(K, *w.shape[1:])])
        if name == "fc.bias":  # (K + 1) e^(b - log(K + 1)) = e^b: `_unknown_`'s share unchanged
            w[[u, *range(C, C + K)]] -= math.log(K + 1)
        sd[name] = w
    new.load_state_dict(sd)
    return new.train(model.training)


@torch.no_grad()
def keyword_scores(model: Any, pool: ClipPool, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool indices of the `_unknown_` clips [M], each one's highest keyword probability [M],
    that keyword's place among the keywords [M]) as `model` (a clip model, no garbage
    outputs) scores them: its own answer, the last frame from a zero state, about as long
    after the word's end as the stream's decision (over every frame, its unsure first frames
    put 84 % of the embedded default's negatives at >= 0.5; at the last frame 17 %)."""
    kws = _keywords(pool.categories)
    ids = np.flatnonzero(pool.labels == _unknown(pool.categories))
    best, which = np.zeros(len(ids), np.float32), np.zeros(len(ids), np.int64)
    was = model.training
    model.eval()
    for s in range(0, len(ids), batch):
        p = torch.softmax(model(torch.from_numpy(pool.features[ids[s:s + batch]])), -1)[:, kws]  # [b, K]
        b, k = p.max(-1)
        best[s:s + batch], which[s:s + batch] = b.numpy(), k.numpy()
    model.train(was)
    return ids, best, which


def garbage_targets(model: Any, pool: ClipPool, threshold: float,
                    scores: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """Each pool clip's training class `[N]`: its label, except that an `_unknown_` clip
    that `model` scores as keyword k at least `threshold` (`keyword_scores`, or `scores`
    made by it) takes garbage output C + (k's place among the keywords)."""
    ids, best, which = keyword_scores(model, pool) if scores is None else scores
    targets = pool.labels.copy()
    C, u = len(pool.categories), _unknown(pool.categories)
    targets[ids] = np.where(best >= threshold, C + which, u)
    return targets


def raw_masks(categories: Sequence[str], garbage: int,
              clip_weight: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
    """(keyword mask [C + K] bool, clip-loss class weights [C + K] or None) over the raw
    outputs: garbage outputs are no keywords and weigh as `_unknown_`."""
    kw = torch.from_numpy(np.concatenate([keyword_mask(categories), np.zeros(garbage, bool)]))
    if clip_weight is None or not garbage:
        return kw, clip_weight
    u = _unknown(categories)
    return kw, torch.cat([clip_weight, clip_weight[u].expand(garbage)])
