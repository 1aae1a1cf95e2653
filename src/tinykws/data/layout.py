"""The names of the Speech Commands layout that every data module shares: the splits, the
background-noise and negatives folders, the google12 keywords and the silence crop.

A leaf module (it imports nothing of tinykws but the audio constants and labels), so that
`speech_commands` (the lists), `synth` and `negatives` (which make datasets in this layout)
all read it without importing each other.
"""

from __future__ import annotations

import numpy as np

from tinykws.data.audio import CLIP_SAMPLES

SPLITS = ("training", "validation", "testing")
BACKGROUND = "_background_noise_"
NEGATIVES = "_negatives_"  # list lines `_negatives_/...` are relative to the negatives folder
GOOGLE12_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE_RMS_RANGE = (0.001, 0.3)  # of full scale; log-uniform gain target for silence crops


def silence_crop(
    x: np.ndarray, rng: np.random.Generator, start: int, stop: int,
    rms_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """A 1-s crop of int16 noise `x` from within `[start, stop)`, scaled to an RMS drawn
    log-uniformly from `rms_range` (of full scale; default SILENCE_RMS_RANGE);
    int16 [CLIP_SAMPLES]."""
    rms_range = rms_range or SILENCE_RMS_RANGE
    off = int(rng.integers(start, stop - CLIP_SAMPLES + 1))
    crop = x[off : off + CLIP_SAMPLES].astype(np.float64) / 32768.0
    target = np.exp(rng.uniform(np.log(rms_range[0]), np.log(rms_range[1])))  # RMS of full scale
    rms = np.sqrt(np.mean(crop**2))
    if rms > 1e-6:
        crop *= target / rms
    return np.clip(np.rint(crop * 32768.0), -32768, 32767).astype(np.int16)
