"""Measurements of a float `KWSModel` and its `IntModel` on feature clips: the ranges the
quantizer needs (calibration) and how closely the integer model follows the float one.

Below both `calibrate` (post-training quantization) and `qat` (quantization-aware
fine-tuning), which each measure after every attempt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinykws.quant.model import IntModel, quantize_features, scores_float
from tinykws.records import Agreement

CALIB_CLIPS = 512  # training clips the hidden-state ranges are measured on


def hidden_ranges(model: Any, features: np.ndarray, batch: int = 256) -> list[float]:
    """Max |h| of every layer of a float `KWSModel` over clips `features` [N, T, F]."""
    return layer_ranges(model, features, batch)[0]


def layer_ranges(model: Any, features: np.ndarray, batch: int = 256
                 ) -> tuple[list[float], list[tuple[float, float]]]:
    """(max |h| of every layer, (max |W1 x|, max |U1 h|) of every layer) of a float
    `KWSModel` over clips `features` [N, T, F]: what `quantize_model` needs. The inner
    ranges are those of the low-rank factors (0 for a full-rank matrix), with x as the
    integer layer sees it (the first layer: x / std; the mean is folded into the biases)."""
    import torch

    hmax = [0.0] * len(model.cells)
    inner = [[0.0, 0.0] for _ in model.cells]
    with torch.no_grad():
        for s in range(0, len(features), batch):
            x = torch.from_numpy(np.ascontiguousarray(features[s : s + batch], dtype=np.float32))
            # [T / s, B, s F]: frame stride s stacks s frames a step (`KWSModel.stack_frames`)
            seq = model.stack_frames((x - model.mean) / model.std).transpose(0, 1)
            raw = model.stack_frames(x / model.std).transpose(0, 1)  # what the first layer's W1 multiplies
            for i, cell in enumerate(model.cells):
                inp = raw if i == 0 else seq
                seq, _ = cell(seq, cell.init_state(seq.shape[1]))
                if getattr(cell, "wrank", None) is not None:
                    inner[i][0] = max(inner[i][0], float((inp @ cell.W1.T).abs().max()))
                if getattr(cell, "urank", None) is not None:  # h0 = 0: U1 h0 = 0
                    inner[i][1] = max(inner[i][1], float((seq @ cell.U1.T).abs().max()))
                hmax[i] = max(hmax[i], float(seq.abs().max()))
    return hmax, [(a, b) for a, b in inner]


def calibration_set(features: np.ndarray, n: int = CALIB_CLIPS, seed: int = 0) -> np.ndarray:
    """An evenly random subset of at most `n` training clips (reproducible)."""
    if len(features) <= n:
        return features
    idx = np.sort(np.random.default_rng(seed).choice(len(features), n, replace=False))
    return features[idx]


# `Agreement` (integer vs float on one feature set) is a record of quant.json: tinykws.records


def float_scores(model: Any, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """Softmax probabilities after every frame [N, T, C] of the float model."""
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(features), batch):
            x = torch.from_numpy(np.ascontiguousarray(features[s : s + batch], dtype=np.float32))
            logits, _ = model.forward_sequence(x)
            out.append(torch.softmax(logits.double(), -1).float().numpy())
    return np.concatenate(out)


def int_scores(im: IntModel, features: np.ndarray, batch: int = 512) -> np.ndarray:
    """Float probabilities [N, T, C] of the integer model on float features (quantized to
    Q7.8 first, as the contract with the featurizer says)."""
    out = []
    for s in range(0, len(features), batch):
        _, sc = im.run(quantize_features(features[s : s + batch]))
        out.append(scores_float(sc))
    return np.concatenate(out)


def compare(model: Any, im: IntModel, features: np.ndarray, labels: np.ndarray) -> Agreement:
    """How the integer model `im` follows the float `model` on clips `features` [N, T, F]
    with true classes `labels` [N]: accuracies at the last frame, argmax agreement and
    score differences."""
    fs = float_scores(model, features)
    qs = int_scores(im, features)
    fa, qa = fs[:, -1].argmax(-1), qs[:, -1].argmax(-1)
    return Agreement(
        n=len(labels),
        float_accuracy=float((fa == labels).mean()),
        int_accuracy=float((qa == labels).mean()),
        argmax_agreement=float((fa == qa).mean()),
        max_score_diff=float(np.abs(fs - qs).max()),
        mean_last_score_diff=float(np.abs(fs[:, -1] - qs[:, -1]).mean()),
    )
