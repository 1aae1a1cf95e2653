"""The keyword streams the stream benchmark (`tinykws.stream_eval`) scores detectors on: a
long recording with keywords at known times, laid from held-out 1-s clips (keywords and
other words) over a bed of background noise at several SNRs (`build_stream`), or from
synthesized non-keyword speech alone (`build_negative_stream`); `save_stream` /
`load_stream` keep one as a WAV with its events beside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tinykws.data.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio, moving_mean, save_wav
from tinykws.data.negatives import read_negatives
from tinykws.data.speech_commands import BACKGROUND, read_list
from tinykws.errors import TinyKWSError
from tinykws.evaluate import run_data_dir
from tinykws.labels import NON_KEYWORDS, SILENCE, UNKNOWN
from tinykws.run import lists_json


@dataclass(frozen=True)
class Event:
    """A clip placed in the stream at [start_s, start_s + 1)."""

    start_s: float
    word: str  # the spoken word (folder name)
    label: str  # the run category it belongs to (`_unknown_` for other words)
    snr_db: float
    source: str  # clip path, relative where possible

    @property
    def is_keyword(self) -> bool:
        return self.label not in NON_KEYWORDS


@dataclass
class Stream:
    audio: np.ndarray  # [samples] int16
    events: list[Event]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def n_keywords(self) -> int:
        return sum(e.is_keyword for e in self.events)


@dataclass(frozen=True)
class StreamSpec:
    """What goes into a stream."""

    minutes: float = 10.0
    snrs_db: tuple[float, ...] = (20.0, 10.0, 5.0)
    keyword_fraction: float = 0.6  # of the events; the rest are other words
    gap_s: tuple[float, float] = (1.0, 3.0)  # noise-only time between two clips
    min_noise_rms: float = 30.0  # int16 units: the noise never drops below this (~ -61 dBFS)
    seed: int = 0


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) if len(x) else 0.0


def speech_rms(x: np.ndarray, win: int = 1600) -> float:
    """RMS of the loudest 0.5 s of a clip: the word, not the silence around it."""
    x = x.astype(np.float64)
    if len(x) <= win * 5:
        return _rms(x)
    n = len(x) // win * win
    e = np.square(x[:n]).reshape(-1, win).sum(1)  # energy of each whole 0.1-s window
    k = 5  # best 5 windows ~ 0.5 s
    top = np.sort(e)[-k:]
    return float(np.sqrt(top.sum() / (k * win)))


def noise_bed(noise_files: Sequence[Path], n_samples: int, rms: float, rng) -> np.ndarray:
    """Random 5-20 s pieces of the noise recordings, each scaled to `rms`, end to end."""
    if not noise_files:
        return rng.normal(0, rms, n_samples)
    return noise_pieces([load_audio(f, length=None)[0].astype(np.float64) for f in noise_files], n_samples, rms, rng)


def noise_pieces(noises: Sequence[np.ndarray], n_samples: int, rms: float, rng) -> np.ndarray:
    """`noise_bed` from recordings already read (float64 int16-scale samples each)."""
    out = np.zeros(n_samples)
    pos = 0
    while pos < n_samples:
        x = noises[int(rng.integers(len(noises)))]
        n = min(int(rng.uniform(5, 20) * SAMPLE_RATE), len(x), n_samples - pos)
        start = int(rng.integers(0, len(x) - n + 1))
        piece = x[start : start + n]
        out[pos : pos + n] = piece * (rms / max(_rms(piece), 1e-9))
        pos += n
    return out


def build_stream(
    keyword_clips: Sequence[tuple[Path, str, str]],
    other_clips: Sequence[tuple[Path, str, str]],
    noise_files: Sequence[Path],
    spec: StreamSpec = StreamSpec(),
    root: Path | None = None,
) -> Stream:
    """A stream of `spec.minutes` with clips `(path, word, label)` at known times.

    Speech keeps its recorded level (as in training); the background noise is scaled
    around each clip so that the clip's loudest 0.5 s is `snr` dB above it, with 100-ms
    ramps between the noise levels of neighbouring clips. Clips are drawn without
    replacement until a pool runs out, then reused (at another SNR and position).
    """
    if not keyword_clips and spec.keyword_fraction > 0:
        raise TinyKWSError("no keyword clips to build a stream from")
    if not keyword_clips and not other_clips:
        raise TinyKWSError("no clips to build a stream from")
    rng = np.random.default_rng(spec.seed)
    n = int(spec.minutes * 60 * SAMPLE_RATE)
    pools = {True: list(keyword_clips), False: list(other_clips)}
    order = {k: list(rng.permutation(len(v))) for k, v in pools.items()}
    speech = np.zeros(n)
    events, noise_levels = [], []  # noise rms wanted around each event
    t = float(rng.uniform(*spec.gap_s))
    while (t + 1.0) * SAMPLE_RATE <= n:
        kw = bool(rng.random() < spec.keyword_fraction) or not pools[False]
        if not order[kw]:
            order[kw] = list(rng.permutation(len(pools[kw])))
        path, word, label = pools[kw][order[kw].pop()]
        x = load_audio(path, length=CLIP_SAMPLES)[0].astype(np.float64)
        snr = float(rng.choice(spec.snrs_db))
        s = int(round(t * SAMPLE_RATE))
        speech[s : s + CLIP_SAMPLES] += x
        noise_levels.append(max(spec.min_noise_rms, speech_rms(x) / 10 ** (snr / 20)))
        name = str(Path(path).relative_to(root)) if root and Path(path).is_relative_to(root) else str(path)
        events.append(Event(round(s / SAMPLE_RATE, 4), word, label, snr, name))
        t += 1.0 + float(rng.uniform(*spec.gap_s))
    noise = noise_bed(noise_files, n, 1.0, rng) * noise_envelope([e.start_s for e in events], noise_levels, n)
    audio = speech + noise
    return Stream(np.clip(np.rint(audio), -32768, 32767).astype(np.int16), events)


def noise_envelope(starts_s: Sequence[float], levels: Sequence[float], n: int) -> np.ndarray:
    """Noise gain `[n]`: the level of each 1-s clip starting at `starts_s` (seconds, in
    order) from the middle of the gap before it to the middle of the gap after it, joined
    by 100-ms linear ramps."""
    if not len(starts_s):
        return np.ones(n)
    centers = (np.asarray(starts_s, np.float64) + 0.5) * SAMPLE_RATE
    bounds = np.concatenate([[0], (centers[:-1] + centers[1:]) / 2, [n]]).astype(int)
    env = np.empty(n)
    for i, lv in enumerate(levels):
        env[bounds[i] : bounds[i + 1]] = lv
    ramp = int(0.1 * SAMPLE_RATE)
    return moving_mean(np.pad(env, ramp // 2, mode="edge"), ramp)[:n]


def run_stream_clips(run_dir: Path, split: str = "testing") -> tuple[list, list, list[Path], Path]:
    """(keyword clips, other clips, noise files, data_dir) of a run's split, from its lists.

    Clips are `(path, word, label)`; `_silence_` crops are left out (the noise bed plays
    their part); noise comes from the data folder's `_background_noise_`.
    """
    lists = Path(run_dir) / "lists"
    if not lists_json(lists).is_file():
        raise TinyKWSError(f"{lists}: no lists.json; run `tinykws data lists` first")

    data_dir = run_data_dir(lists)
    kws, others = [], []
    for ex in read_list(lists, split):
        if ex.label == SILENCE:
            continue
        word = Path(ex.path).parent.name
        (kws if ex.label not in NON_KEYWORDS else others).append((Path(ex.path), word, ex.label))
    noise = sorted((data_dir / BACKGROUND).glob("*.wav"))
    return kws, others, noise, data_dir


# --------------------------------------------------------------------------- negatives

NEGATIVE_SNRS_DB = (40.0, 30.0, 20.0, 10.0, 5.0)


def negative_stream_clips(negatives_dir: Path | str, split: str = "testing") -> tuple[list, list[Path]]:
    """(speech clips, noise files) of a `tinykws data negatives` folder's `split`.

    Clips are `(path, item, "_unknown_")`; the default split, testing, is the held-apart
    part (words and voices never trained on), and the noise files are its own
    (`_background_noise_/testing-*.wav`).
    """
    neg = read_negatives(negatives_dir)
    clips = [(neg.root / rel, rel.split("/", 1)[0], UNKNOWN) for rel in neg.speech[split]]
    noise = sorted((neg.root / BACKGROUND).glob(f"{split}-*.wav"))
    return clips, noise


def build_negative_stream(
    negatives_dir: Path | str, minutes: float = 60.0, snrs_db: tuple[float, ...] = NEGATIVE_SNRS_DB,
    gap_s: tuple[float, float] = (0.1, 0.8), noise_files: Sequence[Path] | None = None, seed: int = 0,
    piece_minutes: float = 10.0, split: str = "testing",
) -> Stream:
    """A long stream of held-apart non-keyword speech over background noise, for false
    alarms per hour: every detection on it is a false alarm.

    Continuous speech: 1-s clips of the held-apart negatives (`negative_stream_clips`; or
    of another `split`, e.g. validation for choosing a threshold),
    0.1-0.8 s apart, each at an SNR drawn from `snrs_db` over the held-apart noise (or
    `noise_files`). Built as `build_stream` pieces of `piece_minutes` (bounded memory),
    each with its own share of the clips (a clip repeats only when the pool runs out).
    """
    clips, noise = negative_stream_clips(negatives_dir, split)
    if not clips:
        raise TinyKWSError(f"{negatives_dir}: the {split} part has no speech clips")
    noise = list(noise_files) if noise_files is not None else noise
    rng = np.random.default_rng([seed, 5])
    order = rng.permutation(len(clips))
    total, per_piece = int(round(minutes * 60 * SAMPLE_RATE)), int(round(piece_minutes * 60 * SAMPLE_RATE))
    n_pieces = max(1, -(-total // per_piece))
    audio, events = [], []
    offset = 0.0
    for k in range(n_pieces):
        samples = min(per_piece, total - k * per_piece)
        share = [clips[i] for i in order[k :: n_pieces]] or clips
        spec = StreamSpec(minutes=(samples + 0.5) / (60 * SAMPLE_RATE), snrs_db=tuple(snrs_db), keyword_fraction=0.0, gap_s=gap_s,
                          seed=int(rng.integers(2**31)))  # fmt: skip
        part = build_stream([], share, noise, spec, root=Path(negatives_dir).resolve())
        audio.append(part.audio)
        events += [Event(round(e.start_s + offset, 4), e.word, e.label, e.snr_db, e.source) for e in part.events]
        offset += part.duration_s
    return Stream(np.concatenate(audio), events)


def save_stream(stream: Stream, path: Path | str) -> Path:
    """Write `stream` as a 16-kHz WAV at `path` and its events beside it (`.events.json`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_wav(tmp, stream.audio, stream.sample_rate)
    tmp.replace(path)
    events = path.with_suffix(".events.json")
    tmp = events.with_name(f".{events.name}.tmp")
    tmp.write_text(json.dumps([asdict(e) for e in stream.events]))
    tmp.replace(events)  # written last: a stream whose events file exists is complete
    return path


def load_stream(path: Path | str) -> Stream:
    """A stream written by `save_stream`."""
    path = Path(path)
    events_path = path.with_suffix(".events.json")
    if not events_path.is_file():
        raise TinyKWSError(f"{events_path} not found: not a stream written by save_stream")
    audio = load_audio(path, length=None)[0]
    return Stream(audio, [Event(**e) for e in json.loads(events_path.read_text())])
