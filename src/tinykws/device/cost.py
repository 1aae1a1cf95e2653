"""Multiply-accumulates per frame of the featurizer and the model: the cost model that the
counted instructions are compared with (bench/device.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinykws.features import mel_filterbank

def featurizer_macs(params: Any) -> dict[str, int]:
    """Multiply-accumulates of one log-mel frame (FeatureParams), by step.

    The FFT is counted as a radix-2 real FFT of N points done as an N/2-point complex FFT:
    (N/4) log2(N/2) butterflies x 4 real multiplies, plus N/4 complex multiplies (4 each)
    for the split into the real spectrum. log() counts 1 per band; it costs more.
    """
    n, m = params.fft_size, params.fft_size // 2
    macs = {
        "preemphasis": params.hop,
        "window": 0 if params.window == "rectangular" else params.window_size,
        "fft": 4 * (m // 2) * int(math.log2(m)) + 4 * (m // 2),
        "power": 2 * (n // 2 + 1),
        "mel": int(np.count_nonzero(mel_filterbank(params))),
        "log": params.n_mels,
    }
    macs["total"] = sum(macs.values())
    return macs


def model_macs(config: Any) -> dict[str, int]:
    """Multiply-accumulates of one model step (ModelConfig), by layer.

    Matrix-vector products count rows x columns (low rank: both factors), gate arithmetic
    counts the element-wise products (3H for FastGRNN/GRU/LSTM, 2H for FastRNN), plus the
    input normalisation (F), the classifier (H x C) and the softmax (C). Nonlinearities
    (sigmoid, tanh, exp) are not MACs and are left out. A frame stride s steps on s frames
    stacked (layer 0 takes s F inputs) once every s frames: this is that frame's cost.
    """
    F, H, C = config.input_size, config.hidden_size, config.num_classes
    macs = {"normalize": F}
    for i in range(config.num_layers):
        n_in = F * config.frame_stride if i == 0 else H
        arch = config.architecture
        if arch in ("fastgrnn", "fastrnn"):
            w = n_in * H if config.wrank is None else config.wrank * (n_in + H)
            u = H * H if config.urank is None else config.urank * 2 * H
            elementwise = 3 * H if arch == "fastgrnn" else 2 * H
        else:
            gates = 3 if arch == "gru" else 4
            w, u, elementwise = gates * H * n_in, gates * H * H, 3 * H
        macs[f"layer{i}"] = w + u + elementwise
    macs["fc"] = H * C
    macs["softmax"] = C
    macs["total"] = sum(macs.values())
    return macs

