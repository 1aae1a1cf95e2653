"""Fixed-point formats shared by the integer featurizer and the integer model.

The contract between them (the one place it is written down): the integer featurizer
outputs int16 log-mel features in Q7.8, value = round(float_logmel * 256) saturated to
int16, one frame of n_mels per hop, from int16 PCM input. Q7.8 covers [-128, 128) in
steps of 1/256; log-mel values of int16 audio lie in [ln(log_delta), ~40] = [-36.05, ~40].
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURE_FRAC_BITS = 8  # Q7.8: int16 feature = round(log-mel * 2^8)
FEATURE_SCALE = 1 << FEATURE_FRAC_BITS
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def saturate_int16(x: Any) -> np.ndarray:
    """Clip integers to [-32768, 32767] and return int16 (what SSAT #16 does)."""
    return np.clip(np.asarray(x, dtype=np.int64), INT16_MIN, INT16_MAX).astype(np.int16)


def features_from_q(q: Any) -> np.ndarray:
    """int16 Q7.8 features -> float32 (exact: every Q7.8 value is a float32)."""
    return np.asarray(q, dtype=np.float32) * np.float32(1.0 / FEATURE_SCALE)
