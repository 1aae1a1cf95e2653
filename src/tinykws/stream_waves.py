"""Training streams laid in waveform (`StreamTrainConfig.wave_share`): whole 1-s clips over
recorded noise, each clip at its own SNR, featurized as the device hears them: the way the
measured streams (`tinykws.keyword_streams.build_stream`) are made.

`StreamMaker` otherwise lays each word cut to its speech in log-mel space over one noise
level a block (`stream_maker`). The twentieth round found the model scores its own log-mel
streams far lower than waveform streams of the same training speech (keyword peak median
0.62 against 0.94, docs/benchmarks.md): the phase trains on a task unlike the measured one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from tinykws.data.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams, frames_from_stream
from tinykws.keyword_streams import StreamSpec, speech_rms


class WaveSource:
    """The clips' audio (read when laid: 20,000 clips would take 0.6 GB a process held) and
    the recorded noise (read once) that waveform stream rows are made of."""

    def __init__(self, paths: Sequence[str], params: FeatureParams, noise_files: Sequence[Path]):
        """`paths` [N]: the audio file of each clip of the stream phase's `ClipPool`."""
        if params.clip_samples != CLIP_SAMPLES or params.sample_rate != SAMPLE_RATE or CLIP_SAMPLES % params.hop:
            raise TinyKWSError(f"waveform streams need {SAMPLE_RATE}-Hz clips of {CLIP_SAMPLES} samples and a hop "
                               f"that divides them, not {params.sample_rate} Hz x {params.clip_samples}, hop {params.hop}")
        self.paths = [str(p) for p in paths]
        self.params = params
        # float32 int16-scale samples, and each recording's running energy (float64): a
        # piece's RMS in O(1), where summing it took a fifth of a row's making
        self.noises = [load_audio(f, length=None)[0].astype(np.float32) for f in noise_files]
        self._energy = [np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))]) for x in self.noises]

    @property
    def clip_blocks(self) -> int:
        """Hops a clip spans (100 at the default hop of 160): a clip laid at block p gives
        stream frames p .. p + n_frames - 1 (97)."""
        return CLIP_SAMPLES // self.params.hop

    def check(self, ids: np.ndarray) -> None:
        """TinyKWSError naming the first clip of `ids` whose file is gone (before training)."""
        for i in ids:
            if not Path(self.paths[i]).is_file():
                raise TinyKWSError(f"waveform streams: {self.paths[i]} not found (the features were made "
                                   "from it): featurize again, or set wave_share 0 (`train-stream --wave-share 0`)")

    def audio(self, i: int) -> np.ndarray:
        """Clip i as float32 int16-scale samples [CLIP_SAMPLES]."""
        return load_audio(self.paths[i], length=CLIP_SAMPLES)[0].astype(np.float32)

    def noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`keyword_streams.noise_pieces(self.noises, n, 1.0, rng)`, the same draws: random
        5-20 s pieces of the recordings, each at RMS 1, end to end (float32 [n]); white
        noise without recordings, as `noise_bed`."""
        if not self.noises:
            return rng.normal(0, 1.0, n).astype(np.float32)
        out = np.empty(n, np.float32)
        pos = 0
        while pos < n:
            k = int(rng.integers(len(self.noises)))
            x, e = self.noises[k], self._energy[k]
            m = min(int(rng.uniform(5, 20) * SAMPLE_RATE), len(x), n - pos)
            start = int(rng.integers(0, len(x) - m + 1))
            rms = math.sqrt(max(e[start + m] - e[start], 0.0) / m)
            np.multiply(x[start:start + m], np.float32(1.0 / max(rms, 1e-9)), out=out[pos:pos + m])
            pos += m
        return out

    def lay(self, placed: Sequence[tuple[int, int]], n_frames: int, snr_db: tuple[float, float],
            rng: np.random.Generator) -> np.ndarray:
        """Log-mel frames `[n_frames, F]` of `mix(placed, ...)`. Frame p + j of the stream is
        frame j of a clip laid at block p (the same samples), so the clip's speech bounds
        carry over by adding p."""
        return frames_from_stream(self.mix(placed, n_frames, snr_db, rng), self.params)[:n_frames]

    def mix(self, placed: Sequence[tuple[int, int]], n_frames: int, snr_db: tuple[float, float],
            rng: np.random.Generator) -> np.ndarray:
        """The samples (float32, int16 scale) that make `n_frames` frames, with clips laid at
        (hop block, clip index) `placed` (in order) at their recorded level, over noise whose
        level puts each clip's loudest 0.5 s `snr` dB (drawn in `snr_db`) above it, with
        100-ms ramps between clips: as `build_stream` makes the measured streams."""
        p = self.params
        n = (n_frames + p.first_block - 1) * p.hop  # samples that make n_frames frames
        speech = np.zeros(n, np.float32)
        starts, levels = [], []
        for block, i in placed:
            x = self.audio(i)
            s = block * p.hop
            m = min(len(x), n - s)
            speech[s:s + m] += x[:m]
            snr = float(rng.uniform(*snr_db))
            levels.append(max(StreamSpec.min_noise_rms, speech_rms(x) / 10 ** (snr / 20)))
            starts.append(s)
        audio = speech + self.noise(n, rng) * envelope(starts, levels, n)
        return np.clip(np.rint(audio, out=audio), -32768, 32767, out=audio)


def envelope(starts: Sequence[int], levels: Sequence[float], n: int) -> np.ndarray:
    """`keyword_streams.noise_envelope` of 1-s clips starting at samples `starts` (float32
    [n]): each clip's level from the middle of the gap before it to the middle of the gap
    after it, a 100-ms linear ramp centred on each middle. The moving mean there makes
    exactly these ramps when the middles are over 100 ms apart (clips here are >= 1 s
    apart); drawn directly it costs a tenth as much."""
    levels = np.asarray(levels, np.float32)
    if not len(starts):
        return np.ones(n, np.float32)
    half = int(0.1 * SAMPLE_RATE) // 2
    centers = np.asarray(starts, np.float64) + SAMPLE_RATE / 2
    middles = ((centers[:-1] + centers[1:]) / 2).astype(int)  # as noise_envelope rounds them
    bounds = np.concatenate([[0], middles, [n]])
    env = np.repeat(levels, np.diff(bounds))  # [n] each clip's level between the middles
    ramp = (np.arange(2 * half, dtype=np.float32) / (2 * half))  # 0 .. 1, 1 excluded
    for k, m in enumerate(middles):
        lo, hi = max(m - half, 0), min(m + half, n)
        env[lo:hi] = levels[k] + (levels[k + 1] - levels[k]) * ramp[lo - (m - half):hi - (m - half)]
    return env
