"""The names of the Speech Commands layout that every data module shares: the splits, the
background-noise and negatives folders, the google12 keywords, and the `_silence_` crops
of background noise (`silence_crop`, `write_silence`).

A leaf module (it imports nothing of tinykws but audio I/O, errors and labels), so that
`speech_commands` (the lists), `synth` and `negatives` (which make datasets in this layout)
all read it without importing each other.
"""

from __future__ import annotations

import numpy as np

from pathlib import Path

from tinykws.data.audio import CLIP_SAMPLES, AudioStats, OnError, save_wav_if_changed, try_load_audio
from tinykws.errors import TinyKWSError
from tinykws.labels import SILENCE

SPLITS = ("training", "validation", "testing")
BACKGROUND = "_background_noise_"
NEGATIVES = "_negatives_"  # list lines `_negatives_/...` are relative to the negatives folder
SYNTH_MANIFEST = "synth.json"  # a `data synth` folder's parameters and voices (written last)
GOOGLE12_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE_RMS_RANGE = (0.001, 0.3)  # of full scale; log-uniform gain target for silence crops
# the part of each background-noise file a split's silence crops come from (by time)
_SPLIT_REGIONS = {"training": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0)}


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


def load_background_noise(files: list[Path], stats: AudioStats, on_error: OnError) -> list[tuple[str, np.ndarray]]:
    """The background noises as (stem, int16 samples) pairs, at 16 kHz, full length."""
    noise = []
    for f in files:
        x = try_load_audio(f, stats, on_error=on_error, length=None)
        if x is not None and len(x) >= CLIP_SAMPLES:
            noise.append((f.stem, x))
        elif x is not None:
            stats.skip(f, f"{f}: shorter than 1 s")  # reasons name the file, as AudioErrors do
    if not noise:
        raise TinyKWSError(
            "the silence class needs 1-s crops of background noise, but the data has no usable "
            f"{BACKGROUND}/*.wav (at least 1 s long); add some or pass --silence 0"
        )
    return noise


def clear_silence(folder: Path) -> None:
    """Remove silence crops of an earlier run (only our own .wav files)."""
    if folder.is_dir():
        for f in folder.glob("*.wav"):
            f.unlink()


def write_silence(
    noise: list[tuple[str, np.ndarray]], counts: dict[str, int], folder: Path, *, seed: int = 0
) -> dict[str, list[str]]:
    """Write deterministic 1-s crops of background noise for each split.

    Each file is cut by time into a training (first 80 %), validation (next 10 %) and
    testing (last 10 %) region, so held-out crops come from noise the training crops never
    saw; a region shorter than 1 s is not used (if no file has one, the split falls back to
    whole files). Each crop is scaled to an RMS drawn log-uniformly from SILENCE_RMS_RANGE.
    Returns split -> list lines (`_silence_/...`). A crop already on disk with the same
    bytes is not rewritten, so lists made again leave the features' cache keys (which read
    mtimes) as they were and a run folder's finished stages stand; other crops are removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for i, split in enumerate(SPLITS):
        a, b = _SPLIT_REGIONS[split]
        regions = [(x, int(a * len(x)), int(b * len(x))) for _, x in noise]
        regions = [r for r in regions if r[2] - r[1] >= CLIP_SAMPLES] or [(x, 0, len(x)) for _, x in noise]
        rng = np.random.default_rng([seed, 2, i])
        lines[split] = []
        for k in range(counts.get(split, 0)):
            x, start, stop = regions[rng.integers(len(regions))]
            samples = silence_crop(x, rng, start, stop)
            name = f"{SILENCE}/silence-{split}_nohash_{k}.wav"
            save_wav_if_changed(folder.parent / name, samples)
            lines[split].append(name)
    written = {Path(line).name for split_lines in lines.values() for line in split_lines}
    for f in folder.glob("*.wav"):
        if f.name not in written:
            f.unlink()  # an earlier run's crop this one has no use for
    return lines


def synth_manifest(data_dir: Path | str) -> Path:
    """`DATA/synth.json`: present in a folder that `tinykws data synth` made (synthesized
    voices, not real speakers)."""
    return Path(data_dir) / SYNTH_MANIFEST
