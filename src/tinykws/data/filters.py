"""Second-order filter sections in closed form, for the per-clip channel of synthesized
speech (`tinykws.data.synth.render_word`): a clip draws four or more filters, and
scipy's general design (`scipy.signal.butter`: poles, zeros, pairing) took a third of a
clip's rendering. Each returns one `sosfilt` section `[[b0, b1, b2, 1, a1, a2]]`.
"""

from __future__ import annotations

import numpy as np

from tinykws.data.audio import SAMPLE_RATE


def butter_sos(order: int, fc: float, kind: str) -> np.ndarray:
    """`scipy.signal.butter(order, fc, kind, fs=SAMPLE_RATE, output="sos")` for order 1
    or 2, low- or high-pass, in closed form (bilinear transform with prewarping): the same
    section to a relative 1e-11, where scipy's general design took a third of a clip's rendering."""
    k = np.tan(np.pi * fc / SAMPLE_RATE)  # the prewarped cutoff
    low = kind == "lowpass"
    if kind not in ("lowpass", "highpass") or order not in (1, 2):
        raise ValueError(f"butter_sos: order 1 or 2, lowpass or highpass, not {order} {kind}")
    if order == 1:
        d = 1 + k
        g = k / d if low else 1 / d
        return np.array([[g, g if low else -g, 0.0, 1.0, (k - 1) / d, 0.0]])
    d = 1 + np.sqrt(2.0) * k + k * k
    g = k * k / d if low else 1 / d
    return np.array([[g, 2 * g if low else -2 * g, g, 1.0, 2 * (k * k - 1) / d,
                      (1 - np.sqrt(2.0) * k + k * k) / d]])


def peaking_sos(f0: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking biquad as one second-order section."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]
