"""Audio loading: any readable file -> 16 kHz mono int16, with a record of what was changed.

Featurization decodes ~100k clips through `load_audio`, so the common case (a 16 kHz mono
16-bit PCM file of the right length) is one soundfile open + one int16 read and nothing else.
Everything else (other rates, stereo, float files, long/short clips) takes the slower float
path and is recorded in `AudioInfo`, so callers can count it (`AudioStats`) and report it.
"""

from __future__ import annotations

import io

from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import Iterable, Iterator, Literal, NamedTuple

import numpy as np
import soundfile as sf

from tinykws.errors import AudioError
from tinykws.features import FeatureParams

SAMPLE_RATE = FeatureParams.sample_rate  # Hz (16000): the features' rate, what every stage expects
CLIP_SAMPLES = FeatureParams.clip_samples  # samples a clip (16000 = 1 s)
# File endings a dataset's clips and noise may have: the common formats libsndfile reads
# (Speech Commands v0.01 slices are stored as FLAC). Headerless RAW is not a clip format.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def is_audio_name(name: str) -> bool:
    """Does a file name end in one of AUDIO_SUFFIXES (any case)?"""
    return name.lower().endswith(AUDIO_SUFFIXES)

OnError = Literal["raise", "skip"]

# libsndfile subtype codes of float files: they go the slow path (NaN check, clipping).
# Read from the format integer: soundfile's `.subtype` string costs ~20 us per file.
_FLOAT_CODES = frozenset({0x0006, 0x0007})  # SF_FORMAT_FLOAT, SF_FORMAT_DOUBLE
_SUBTYPE_MASK = 0x0000FFFF


class AudioInfo(NamedTuple):
    """What `load_audio` found in a file and what it did to it (a NamedTuple: cheap to make)."""

    path: Path
    source_rate: int  # Hz, as stored in the file
    channels: int  # as stored in the file
    source_samples: int  # frames in the file (per channel)
    resampled: bool = False  # source_rate != the requested rate
    mixed: bool = False  # more than one channel, averaged to mono
    cropped: bool = False  # longer than `length`; the first `length` samples are kept
    padded: bool = False  # shorter than `length`; zeros appended at the end
    clipped: bool = False  # float samples outside [-1, 1] were clipped to int16 range

    @property
    def changed(self) -> bool:
        return self.resampled or self.mixed or self.cropped or self.padded or self.clipped


@dataclass
class AudioStats:
    """Counts of what loading did over many files, and which files were skipped.

    Picklable and mergeable, so worker processes can each keep one and the parent adds
    them up (`merge`).
    """

    loaded: int = 0
    resampled: int = 0
    mixed: int = 0
    cropped: int = 0
    padded: int = 0
    clipped: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def add(self, info: AudioInfo) -> None:
        self.loaded += 1
        self.resampled += info.resampled
        self.mixed += info.mixed
        self.cropped += info.cropped
        self.padded += info.padded
        self.clipped += info.clipped

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def merge(self, other: AudioStats) -> AudioStats:
        """Add `other`'s counts into this one; returns self."""
        for name in ("loaded", "resampled", "mixed", "cropped", "padded", "clipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.extend(other.skipped)
        return self

    def as_dict(self) -> dict:
        return {
            "loaded": self.loaded,
            "resampled": self.resampled,
            "mixed": self.mixed,
            "cropped": self.cropped,
            "padded": self.padded,
            "clipped": self.clipped,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }

    def summary(self) -> str:
        """One line for the console, e.g. `2683 clips loaded; 12 padded; 1 skipped`."""
        parts = [f"{self.loaded} clips loaded"]
        for name in ("resampled", "mixed", "cropped", "padded", "clipped"):
            n = getattr(self, name)
            if n:
                parts.append(f"{n} {'mixed to mono' if name == 'mixed' else name}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "; ".join(parts)


def load_audio(
    path: Path | str, sample_rate: int = SAMPLE_RATE, length: int | None = CLIP_SAMPLES
) -> tuple[np.ndarray, AudioInfo]:
    """Read `path` as mono int16 at `sample_rate`, cropped/padded to `length` samples.

    `length=None` keeps the (resampled) length. Raises AudioError naming the file when it
    cannot be read, has no samples, or holds NaN/inf.
    Returns `(samples [length] int16, info)`.
    """
    path = Path(path)
    try:
        with sf.SoundFile(path) as f:
            rate, channels, frames = f.samplerate, f.channels, f.frames
            if frames <= 0:
                raise AudioError(f"{path}: audio file has no samples")
            fast = channels == 1 and rate == sample_rate and not _is_float(f)
            # [frames] int16 on the fast path; [frames, channels] float32 otherwise
            data = f.read(dtype="int16") if fast else f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        raise AudioError(_cannot_open(path, e)) from None

    if len(data) == 0:
        raise AudioError(f"{path}: audio file has no samples")
    mixed = resampled = clipped = False
    if not fast:
        if not np.isfinite(data).all():
            raise AudioError(f"{path}: audio holds NaN or infinite samples")
        mixed = channels > 1
        x = data.mean(axis=1) if mixed else data[:, 0]  # [frames] float32 in [-1, 1]
        if rate != sample_rate:
            g = gcd(rate, sample_rate)
            from scipy.signal import resample_poly  # lazy: importing scipy.signal costs ~1.5 s of CPU

            x = resample_poly(x, sample_rate // g, rate // g).astype(np.float32)
            resampled = True
        scaled = np.rint(x * 32768.0)
        clipped = bool(np.any(scaled > 32767) or np.any(scaled < -32768))
        data = np.clip(scaled, -32768, 32767).astype(np.int16)
        if len(data) == 0:
            raise AudioError(f"{path}: audio too short to resample ({frames} samples)")

    cropped = padded = False
    if length is not None:
        n = len(data)
        if n > length:
            data, cropped = data[:length], True
        elif n < length:
            data, padded = np.pad(data, (0, length - n)), True
    return data, AudioInfo(path, rate, channels, frames, resampled, mixed, cropped, padded, clipped)


def stream_audio(
    path: Path | str, sample_rate: int = SAMPLE_RATE, chunk: int = 1 << 18
) -> Iterator[np.ndarray]:
    """A recording of any length as consecutive mono int16 chunks at `sample_rate`, read
    about `chunk` frames at a time: memory stays bounded whatever the file's length.

    The concatenated chunks equal `load_audio(path, length=None)[0]` (a test checks it):
    channel mixing and scaling are per sample, and resampling runs `resample_poly` on
    overlapping slices whose overlap covers its filter, so every output sample sees the
    same input samples as in one call on the whole file. Raises AudioError like load_audio.
    """
    path = Path(path)
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        raise AudioError(_cannot_open(path, e)) from None
    with f:
        rate, channels = f.samplerate, f.channels
        if f.frames <= 0:
            raise AudioError(f"{path}: audio file has no samples")
        if channels == 1 and rate == sample_rate and not _is_float(f):
            yield from _read_chunks(f, path, chunk, dtype="int16")
            return
        mono = (d.mean(axis=1) if channels > 1 else d[:, 0] for d in _read_chunks(f, path, chunk))
        g = gcd(rate, sample_rate)
        up, down = sample_rate // g, rate // g
        pieces = mono if up == down else _resample_stream(mono, up, down, chunk)
        for x in pieces:
            yield np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def _read_chunks(f: sf.SoundFile, path: Path, chunk: int, dtype: str = "float32") -> Iterator[np.ndarray]:
    """int16 [n] or finite float32 [n, channels] blocks of an open file, until its end."""
    while True:
        try:
            d = f.read(chunk, dtype=dtype, always_2d=dtype == "float32")
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise AudioError(f"{path}: cannot read audio ({_short(e)})") from None
        if len(d) == 0:
            return
        if dtype == "float32" and not np.isfinite(d).all():
            raise AudioError(f"{path}: audio holds NaN or infinite samples")
        yield d


def _resample_stream(pieces: Iterator[np.ndarray], up: int, down: int, chunk: int) -> Iterator[np.ndarray]:
    """`resample_poly(whole, up, down)` computed slice by slice: float32 mono in, out.

    Input slices [i0, i1) start at multiples of `down` (so output indices are whole), and
    are resampled with `pad` input samples of context on each side, more than the filter's
    half-length (10 * max(up, down) upsampled samples), then trimmed to their own outputs."""
    from scipy.signal import resample_poly

    pad = -(-(10 * max(up, down) // up + 2) // down) * down  # multiple of down
    step = max(1, chunk // down) * down
    buf, buf_start, i0, eof = np.zeros(0, np.float32), 0, 0, False
    while True:
        while not eof and buf_start + len(buf) < i0 + step + pad:
            nxt = next(pieces, None)
            if nxt is None:
                eof = True
            else:
                buf = np.concatenate([buf, nxt.astype(np.float32)])
        end = buf_start + len(buf)
        if i0 >= end:
            return
        i1 = min(i0 + step, end)
        lo = max(i0 - pad, buf_start)
        y = resample_poly(buf[lo - buf_start : min(i1 + pad, end) - buf_start], up, down)
        off = (i0 - lo) * up // down
        last = eof and i1 == end
        n = -(-(end - i0) * up // down) if last else (i1 - i0) * up // down
        yield y[off : off + n].astype(np.float32)
        i0 = i1
        cut = max(0, i0 - pad - buf_start)
        buf, buf_start = buf[cut:], buf_start + cut


def try_load_audio(
    path: Path | str,
    stats: AudioStats,
    *,
    on_error: OnError = "raise",
    sample_rate: int = SAMPLE_RATE,
    length: int | None = CLIP_SAMPLES,
) -> np.ndarray | None:
    """`load_audio` for bulk loading: counts into `stats`; with on_error="skip" a bad file
    is recorded in `stats.skipped` and None is returned instead of raising."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    try:
        data, info = load_audio(path, sample_rate=sample_rate, length=length)
    except AudioError as e:
        if on_error == "raise":
            raise
        stats.skip(path, str(e))
        return None
    stats.add(info)
    return data


def load_many(
    paths: Iterable[Path | str],
    *,
    on_error: OnError = "raise",
    sample_rate: int = SAMPLE_RATE,
    length: int = CLIP_SAMPLES,
    stats: AudioStats | None = None,
) -> tuple[np.ndarray, list[int], AudioStats]:
    """Load many clips into one array `[kept, length]` int16.

    Returns `(audio, kept, stats)` where `kept` are the indices into `paths` of the rows
    (all of them unless on_error="skip" dropped some; those are in `stats.skipped`).
    """
    stats = stats if stats is not None else AudioStats()
    rows: list[np.ndarray] = []
    kept: list[int] = []
    for i, p in enumerate(paths):
        x = try_load_audio(p, stats, on_error=on_error, sample_rate=sample_rate, length=length)
        if x is not None:
            rows.append(x)
            kept.append(i)
    audio = np.stack(rows) if rows else np.zeros((0, length), np.int16)
    return audio, kept, stats


def moving_mean(x: np.ndarray, win: int) -> np.ndarray:
    """`np.convolve(x, np.ones(win) / win, "valid")` by running sums, in float64: O(n), where
    the direct convolution with 1,600 taps took a tenth of a synthesized clip's rendering and
    30 s of the pipeline's operating point (an hour of stream)."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    return (c[win:] - c[:-win]) / win


def _wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono int16 samples as the bytes of a 16-bit PCM WAV file."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"save_wav wants 1-D int16 samples, got {samples.dtype} {samples.shape}")
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def save_wav(path: Path | str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV (the Speech Commands format)."""
    Path(path).write_bytes(_wav_bytes(samples, sample_rate))


def save_wav_if_changed(path: Path | str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bool:
    """`save_wav`, but a file that already holds exactly these bytes is left alone (and its
    mtime with it, which feature cache keys read). Returns whether it wrote."""
    data, path = _wav_bytes(samples, sample_rate), Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def _is_float(f: sf.SoundFile) -> bool:
    try:
        return (f._info.format & _SUBTYPE_MASK) in _FLOAT_CODES  # private, but stable since 0.9
    except AttributeError:
        return f.subtype in ("FLOAT", "DOUBLE")


def _cannot_open(path: Path, e: Exception) -> str:
    """Why `path` does not open, in words: libsndfile says 'System error.' for a missing
    file and 'Format not recognised.' for a folder."""
    if path.is_dir():
        return f"{path}: is a folder, not an audio file"
    if not path.exists():
        return f"{path}: no such file"
    return f"{path}: cannot read audio ({_short(e)})"


def _short(e: Exception) -> str:
    """The first line of an exception message (libsndfile's can be long), without
    libsndfile's `Error opening '<path>': ` (every AudioError names the file already)."""
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else type(e).__name__
    if first.startswith("Error opening '") and "': " in first:  # the path: callers name it
        first = first.split("': ", 1)[1]
    return first
