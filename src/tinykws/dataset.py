"""Featurize the clips of the list files into `training.npz`, `validation.npz`, `testing.npz`.

The seed's `make_dataset.py`, rebuilt: every clip of a list is decoded (16 kHz mono int16,
padded/cropped to 1 s), optionally mixed with background noise (training only), turned
into log-mel frames by `tinykws.features` and cut into rows of `window_size` frames every
`shift` frames (the defaults 98/98 give one row per 1-s clip).

Differences from the seed, on purpose:
- the featurizer state is reset for every clip (the seed carried its IIR/buffer state
  from one file into the next, so a clip's first frames depended on the previous file);
- noise: each selected clip gets a random segment of a random noise file at a random
  gain in [0, max_noise_ratio], drawn from `seed` (the seed read every noise file from the
  same start, round robin, at a fixed gain of max_noise_ratio);
- noise is mixed into the training split only: validation and testing stay clean, so
  they measure the clips as recorded.

Decoding (soundfile) and the batched FFTs both release the GIL, so worker threads overlap
them. A cache key (list contents, file sizes and mtimes, FeatureParams and every option)
is stored beside each .npz; re-running with unchanged inputs does no work.

npz keys (docs/architecture.md): features float32 [N, window_size, n_mels], labels int64
[N], categories str [C], paths str [N], feature_params str (JSON); read back with
`tinykws.run.read_features`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator, Optional, Sequence

import numpy as np
from rich.console import Console

from tinykws import __version__
from tinykws.data.audio import AudioStats, load_audio, try_load_audio
from tinykws.data.negatives import read_negatives
from tinykws.data.speech_commands import Example, SPLITS, read_categories, read_list, read_spare
from tinykws.errors import MAX_WORKERS, TinyKWSError, check_count, check_seed
from tinykws.features import FeatureParams, logmel_batch, single_thread_blas
from tinykws.labels import UNKNOWN
from tinykws.progress import progress_bar
from tinykws.run import cache_json, content_digest, split_file

console = Console(stderr=True)

CACHE_VERSION = 1  # bump when the npz contents change for the same inputs
CHUNK = 64  # clips per work item: decode, mix, featurize


@dataclass(frozen=True)
class NoiseOptions:
    """How background noise is mixed into training clips."""

    files: tuple[Path, ...] = ()
    max_ratio: float = 0.1  # noise gain ~ U(0, max_ratio), noise at its recorded int16 scale
    selection: float = 1.0  # fraction of training clips that get noise


# ---------------------------------------------------------------- framing into rows


def row_starts(n_frames: int, window_size: int, shift: int) -> list[int]:
    """First frame of each row: 0, shift, 2 shift, ... while the row fits in the clip."""
    if window_size < 1 or shift < 1:
        raise TinyKWSError("--window-size and --shift must be >= 1")
    if window_size > n_frames:
        raise TinyKWSError(
            f"--window-size {window_size} is longer than a clip ({n_frames} frames); "
            "use longer clips (FeatureParams.clip_samples) or a smaller window"
        )
    return list(range(0, n_frames - window_size + 1, shift))


# ---------------------------------------------------------------- noise


def noise_files(noise_dir: Path | str) -> tuple[Path, ...]:
    """The .wav files of a noise folder, sorted; error when there are none."""
    d = Path(noise_dir)
    if not d.is_dir():
        raise TinyKWSError(f"noise folder {d} not found")
    files = tuple(sorted(p for p in d.iterdir() if p.suffix.lower() == ".wav"))
    if not files:
        raise TinyKWSError(f"no .wav files in noise folder {d}")
    return files


def noise_plan(n: int, n_files: int, opts: NoiseOptions, seed: int) -> np.ndarray:
    """Per-clip noise draws, fixed by `seed` alone (not by worker count or chunking).

    Returns float64 [n, 3]: (file index or -1 for no noise, start fraction in [0, 1), gain).
    """
    rng = np.random.default_rng([seed, 0x6E6F6973])  # "nois"
    chosen = rng.random(n) < opts.selection
    which = rng.integers(0, max(n_files, 1), n)
    start = rng.random(n)
    gain = rng.uniform(0.0, opts.max_ratio, n)
    return np.stack([np.where(chosen & (n_files > 0), which, -1), start, gain], axis=1)


def mix_noise(clips: np.ndarray, plan: np.ndarray, noise: Sequence[np.ndarray]) -> np.ndarray:
    """clips int16 [n, L] + gain * (noise segment) per `plan` rows -> int16 [n, L], saturated."""
    out = clips.copy()
    length = clips.shape[1]
    for i, (which, start_frac, gain) in enumerate(plan):
        if which < 0:
            continue
        src = noise[int(which)]
        start = int(start_frac * max(0, len(src) - length + 1))
        seg = src[start : start + length].astype(np.float32)
        mixed = clips[i, : len(seg)].astype(np.float32) + np.float32(gain) * seg
        out[i, : len(seg)] = np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
    return out


# ---------------------------------------------------------------- cache key


def cache_key(examples: Sequence[Example], categories: Sequence[str], settings: dict) -> str:
    """sha256 over every input that changes the npz: clips (path, label, size, mtime),
    categories, FeatureParams and options (including the noise files' sizes and mtimes)."""
    h = hashlib.sha256()
    head = {"version": CACHE_VERSION, "tinykws": __version__, "categories": list(categories), **settings}
    h.update(json.dumps(head, sort_keys=True).encode())
    for ex in examples:
        try:
            st = os.stat(ex.path)
        except OSError:
            raise TinyKWSError(f"{ex.path}: listed clip not found") from None
        h.update(f"{ex.path}\t{ex.label}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _file_stamp(p: Path) -> list:
    st = os.stat(p)
    return [str(p), st.st_size, st.st_mtime_ns]


# ---------------------------------------------------------------- featurizing one split


_FMT16_MONO_PCM = b"fmt \x10\x00\x00\x00\x01\x00\x01\x00"  # "fmt ", size 16, PCM, mono


def _read_pcm16(path: Path | str, sample_rate: int) -> Optional[np.ndarray]:
    """Fast path for the canonical clip (RIFF/WAVE, PCM, 16-bit, mono, `sample_rate`):
    all its int16 samples. Anything else
    (other formats, rates, channels, a malformed or empty file) returns None, and the
    caller falls back to `load_audio`, which handles and reports it.

    One read() and a header walk: about 2.5x faster than opening the file through
    libsndfile, which is most of featurization's decode time on 100k one-second clips.
    """
    try:
        with open(path, "rb", buffering=0) as f:  # unbuffered: one read of the whole file
            raw = f.readall()
    except OSError:
        return None
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return None
    if raw[12:24] == _FMT16_MONO_PCM and raw[24:28] == sample_rate.to_bytes(4, "little") \
            and raw[34:40] == b"\x10\x00data":  # fmt: skip
        # the canonical 44-byte header (what the walk below would find, without the walk)
        n = min(int.from_bytes(raw[40:44], "little"), len(raw) - 44) // 2
        return np.frombuffer(raw, dtype="<i2", count=n, offset=44) if n > 0 else None
    pos, fmt_ok = 12, False
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            if size < 16:
                return None
            tag, channels, rate = (int.from_bytes(raw[body + a : body + b], "little")
                                   for a, b in ((0, 2), (2, 4), (4, 8)))
            bits = int.from_bytes(raw[body + 14 : body + 16], "little")
            fmt_ok = tag == 1 and channels == 1 and rate == sample_rate and bits == 16
            if not fmt_ok:
                return None
        elif cid == b"data":
            if not fmt_ok:
                return None
            n = min(size, len(raw) - body) // 2
            if n == 0:
                return None
            return np.frombuffer(raw, dtype="<i2", count=n, offset=body)
        pos = body + size + (size & 1)  # chunks are word-aligned
    return None


def read_pcm16_wav(path: Path | str, sample_rate: int, length: int) -> Optional[np.ndarray]:
    """`_read_pcm16` cropped or zero-padded to `length` samples, as `load_audio` does."""
    x = _read_pcm16(path, sample_rate)
    if x is None:
        return None
    out = np.zeros(length, dtype=np.int16)
    out[: min(len(x), length)] = x[:length]
    return out


def _load_chunk(
    paths: Sequence[Path],
    params: FeatureParams,
    stats: AudioStats,
    on_error: str = "raise",
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Decode clips to int16 [n, clip_samples], counting into `stats` what was padded,
    cropped, resampled or mixed. A bad file raises AudioError naming it, or with
    on_error="skip" is recorded in `stats.skipped` and left as a zero row (dropped later).

    `out`: optional int16 [>= n, clip_samples] buffer to reuse (every row is overwritten):
    a fresh 2 MB array per chunk costs more in page faults than decoding it."""
    length, rate = params.clip_samples, params.sample_rate
    if out is None:
        out = np.empty((len(paths), length), dtype=np.int16)
    out = out[: len(paths)]
    loaded = cropped = padded = 0  # fast-path counts, added to `stats` once per chunk
    for i, p in enumerate(paths):
        x = _read_pcm16(p, rate)
        if x is not None:
            n = len(x)
            if n >= length:
                out[i] = x[:length]
                cropped += n > length
            else:
                out[i, :n] = x
                out[i, n:] = 0
                padded += 1
            loaded += 1
            continue
        y = try_load_audio(p, stats, on_error=on_error, sample_rate=rate, length=length)
        out[i] = 0 if y is None else y
    stats.loaded += loaded
    stats.cropped += cropped
    stats.padded += padded
    return out


def default_workers() -> int:
    """One worker thread per usable CPU core. More threads only add GIL and cache contention
    (measured on 2 cores, 26830 page-cached clips: 2 threads 6.1 CPU-s, 3.6 s wall; 4 threads
    6.4 CPU-s, 3.7 s wall): decoding is a page-cache copy, not I/O worth waiting on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def featurize_clips(
    paths: Sequence[Path],
    params: FeatureParams = FeatureParams(),
    *,
    workers: Optional[int] = None,
    noise: Sequence[np.ndarray] = (),
    plan: Optional[np.ndarray] = None,
    on_chunk: Optional[Callable[[int], None]] = None,
    stats: Optional[AudioStats] = None,
    on_error: str = "raise",
) -> np.ndarray:
    """Decode + (noise) + log-mel for many files -> float32 [N, n_frames, n_mels].

    `stats` (if given) receives the loading counts and, with on_error="skip", the skipped
    files (whose rows are then meaningless: the caller drops them).

    `workers` threads each take CHUNK files at a time (decode, mix, featurize); soundfile and
    the FFTs release the GIL so they overlap. `on_chunk(n_done)` reports progress.
    """
    n = len(paths)
    out = np.empty((n, params.n_frames, params.n_mels), dtype=np.float32)
    workers = max(1, workers or default_workers())

    chunk_stats: list[AudioStats] = []  # one per chunk: threads never share one
    local = threading.local()  # per-thread int16 [CHUNK, clip_samples] decode buffer

    def work(lo: int) -> int:
        hi = min(n, lo + CHUNK)
        st = AudioStats()
        chunk_stats.append(st)
        if not hasattr(local, "clips"):
            local.clips = np.empty((CHUNK, params.clip_samples), dtype=np.int16)
        clips = _load_chunk(paths[lo:hi], params, st, on_error, out=local.clips)
        if plan is not None and noise:
            clips = mix_noise(clips, plan[lo:hi], noise)
        logmel_batch(clips, params, out=out[lo:hi])
        return hi - lo

    starts = range(0, n, CHUNK)
    with single_thread_blas():  # held for the whole run: toggling OpenBLAS threads is costly
        if workers == 1:
            for lo in starts:
                done = work(lo)
                if on_chunk:
                    on_chunk(done)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="featurize") as pool:
                for done in _bounded_map(pool, work, starts, 4 * workers):
                    if on_chunk:
                        on_chunk(done)
    if stats is not None:
        for st in chunk_stats:
            stats.merge(st)
    return out


def _bounded_map(pool: ThreadPoolExecutor, fn: Callable, items, ahead: int) -> Iterator:
    """pool.map with at most `ahead` items in flight, so an error stops the run early."""
    pending = []
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.pop(0).result()
    for f in pending:
        yield f.result()


def _rows(features: np.ndarray, starts: list[int], window_size: int) -> np.ndarray:
    """[N, n_frames, F] -> [N * len(starts), window_size, F], rows of a clip consecutive."""
    if starts == [0] and window_size == features.shape[1]:
        return features
    return np.stack([features[:, s : s + window_size] for s in starts], axis=1).reshape(
        -1, window_size, features.shape[2]
    )


def _save_npz(path: Path, **arrays) -> None:
    """Write atomically: a killed run never leaves a half-written npz behind."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ---------------------------------------------------------------- all splits


@dataclass(frozen=True)
class FeaturizeConfig:
    """How `featurize_lists` makes the feature files: the feature parameters, the noise
    mixed into the training split, the rows cut from each clip, and the work."""

    params: FeatureParams = FeatureParams()
    noise_dir: Optional[Path | str] = None  # background noise, mixed into training only
    max_noise_ratio: float = 0.1  # largest noise gain (random up to it, per clip)
    noise_selection: float = 1.0  # share of training clips that get noise
    window_size: int = 98  # frames a row
    shift: int = 98  # frames from one row to the next
    workers: Optional[int] = None  # threads (None: one per core)
    seed: int = 0
    splits: Sequence[str] = SPLITS
    on_error: str = "raise"  # raise | skip: what an unreadable clip does

    def check(self) -> None:
        """Refuse bad options with one line, before any work."""
        if not 0 <= self.noise_selection <= 1:
            raise TinyKWSError("--noise-selection must be in [0, 1]")
        if not 0 <= self.max_noise_ratio < float("inf"):  # NaN too
            raise TinyKWSError(f"--max-noise-ratio must be a finite number >= 0, not {self.max_noise_ratio}")
        check_seed(self.seed)
        check_count(self.workers, "--workers", 1, MAX_WORKERS)
        if self.on_error not in ("raise", "skip"):
            raise TinyKWSError(f"--on-error must be raise or skip, not {self.on_error!r}")
        self.row_starts()

    def row_starts(self) -> list[int]:
        """First frame of each row cut from a clip (`row_starts`)."""
        return row_starts(self.params.n_frames, self.window_size, self.shift)

    def settings(self, split: str, noise: NoiseOptions) -> dict:
        """What the split's features depend on besides its clips (part of its cache key)."""
        with_noise = split == "training" and bool(noise.files)
        return {
            "split": split,
            "feature_params": self.params.to_dict(),
            "window_size": self.window_size,
            "shift": self.shift,
            "noise": {
                "files": [_file_stamp(p) for p in noise.files],
                "max_ratio": noise.max_ratio,
                "selection": noise.selection,
                "seed": self.seed,
            } if with_noise else None,
        }  # fmt: skip


def featurize_lists(
    data_dir: Path | str,
    lists_dir: Path | str,
    out_dir: Path | str,
    config: FeaturizeConfig = FeaturizeConfig(),
) -> dict[str, Path]:
    """Featurize each split's list into `out_dir/<split>.npz`; returns split -> npz path.

    Unreadable clips stop the run with an error naming the file, or with on_error="skip"
    are left out and listed at the end. What loading changed (resampled, mixed to mono,
    cropped, padded) is counted, printed, and kept in `<split>.cache.json`.

    Noise (`noise_dir`) is mixed into the training split only. A split whose inputs are
    unchanged since the last run (same cache key in `<split>.cache.json`) is not redone.
    """
    data_dir, lists_dir, out_dir = Path(data_dir).resolve(), Path(lists_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise TinyKWSError(f"data folder {data_dir} not found")
    config.check()
    categories = read_categories(lists_dir)
    noise = NoiseOptions(
        files=noise_files(config.noise_dir) if config.noise_dir is not None else (),
        max_ratio=config.max_noise_ratio,
        selection=config.noise_selection,
    )
    lists = {split: read_list(lists_dir, split, data_dir) for split in config.splits}
    for split, examples in lists.items():  # fail before any work, not after the first split
        if not examples:
            raise TinyKWSError(f"{Path(lists_dir) / f'{split}_list.txt'} is empty: nothing to featurize")
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Path] = {}
    job = _SplitJob(config, categories, noise)
    # npz writing (hundreds of MB, I/O bound) overlaps the next split's featurizing
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="save") as saver:
        saves = []
        for split, examples in lists.items():
            results[split] = split_file(out_dir, split)
            made = job.run(split, examples, out_dir)
            if made is not None:
                saves.append(saver.submit(_save_split, *made))
        for f in saves:
            f.result()
    if job.skipped:
        console.print(f"[yellow]skipped {len(job.skipped)} unreadable clips:[/]")
        for split, _, reason in job.skipped:  # the reason names the file
            console.print(f"  {split}: {reason}", markup=False, soft_wrap=True)
    return results


class _SplitJob:
    """Featurizes one split after another for `featurize_lists` (the noise is loaded once,
    for the training split; the clips skipped by on_error="skip" are gathered)."""

    def __init__(self, config: FeaturizeConfig, categories: list[str], noise: NoiseOptions) -> None:
        self.config, self.categories, self.noise = config, categories, noise
        self.starts = config.row_starts()
        self.noise_audio: Optional[list[np.ndarray]] = None
        self.skipped: list[tuple[str, str, str]] = []  # (split, path, reason)

    def run(self, split: str, examples: list[Example], out_dir: Path) -> Optional[tuple]:
        """The split's (npz, cache json, arrays, info) to save, or None when its cache is
        current."""
        cfg, params = self.config, self.config.params
        settings = cfg.settings(split, self.noise)
        with_noise = settings["noise"] is not None
        npz = split_file(out_dir, split)
        meta = cache_json(npz)
        key = cache_key(examples, self.categories, settings)
        if npz.is_file() and meta.is_file() and _cache_hit(meta, key, cfg.on_error):
            console.print(f"{split}: {len(examples)} clips, unchanged -> {npz} (cached)")
            return None
        plan = None
        if with_noise:
            if self.noise_audio is None:
                self.noise_audio = [load_audio(p, params.sample_rate, length=None)[0] for p in self.noise.files]
            plan = noise_plan(len(examples), len(self.noise_audio), self.noise, cfg.seed)
        t0 = time.perf_counter()
        stats = AudioStats()
        with progress_bar() as bar:
            task = bar.add_task(f"featurize {split}", total=len(examples))
            feats = featurize_clips(
                [ex.path for ex in examples], params, workers=cfg.workers,
                noise=self.noise_audio or (), plan=plan,
                on_chunk=lambda k: bar.advance(task, k), stats=stats, on_error=cfg.on_error,
            )  # fmt: skip
        dt = time.perf_counter() - t0
        if stats.skipped:
            bad = {p for p, _ in stats.skipped}
            keep = np.array([str(ex.path) not in bad for ex in examples])
            feats, examples = feats[keep], [ex for ex, k in zip(examples, keep) if k]
            self.skipped.extend((split, p, r) for p, r in stats.skipped)
            if not examples:
                raise TinyKWSError(f"every clip of the {split} list was unreadable")
        rows = _rows(feats, self.starts, cfg.window_size)
        per_clip = len(self.starts)
        arrays = dict(
            features=rows,
            labels=np.repeat(np.array([ex.label_index for ex in examples], dtype=np.int64), per_clip),
            categories=np.array(self.categories, dtype=str),
            paths=np.repeat(np.array([str(ex.path) for ex in examples], dtype=str), per_clip),
            feature_params=np.array(params.to_json()),
        )
        info = {"key": key, "clips": len(examples), "rows": len(rows), "audio": stats.as_dict(),
                **settings}  # fmt: skip
        console.print(
            f"{split}: {len(examples)} clips in {dt:.1f} s ({len(examples) / max(dt, 1e-9):.0f} clips/s)"
            f" -> {len(rows)} rows {tuple(rows.shape)} -> {npz}" + (" (noise mixed)" if with_noise else "")
        )
        console.print(f"  audio: {stats.summary()}")
        return npz, meta, arrays, info


def featurize_negatives(
    negatives_dir: Path | str,
    out_npz: Path | str,
    categories: Sequence[str],
    params: FeatureParams = FeatureParams(),
    *,
    split: str = "training",
    workers: Optional[int] = None,
    exclude_words: Collection[str] = (),
) -> Path:
    """Featurize a `data negatives` set's `split` speech into one feature file, all labelled
    `_unknown_` of `categories` (same format as a split's npz; cached like one).

    `exclude_words`: leave out every clip whose item (a word, or any word of a phrase) is
    one of these, e.g. the words another set holds apart for measuring, so a larger set
    trains on none of them (bench/negatives_unseen.py).

    The stream phase mixes these into its training streams (`train_stream(...,
    extra_negatives=...)`); they stay out of the clip lists so the clip phase keeps its
    balance of real clips (docs/benchmarks.md, "Streaming").
    """
    if UNKNOWN not in categories:
        raise TinyKWSError(f"negatives need an {UNKNOWN} class; the categories are {list(categories)}")
    neg = read_negatives(negatives_dir)
    unk = list(categories).index(UNKNOWN)
    excluded = set(exclude_words)
    examples = [Example(neg.root / rel, UNKNOWN, unk, Path(rel).name.split("_nohash_")[0])
                for rel in neg.speech.get(split, [])
                if not excluded.intersection(Path(rel).parent.name.split("_"))]  # folder: words joined by "_"
    if not examples:
        raise TinyKWSError(f"{negatives_dir}: no {split} speech clips to featurize")
    return _featurize_unknown(examples, out_npz, categories, params, f"negatives/{split}", workers)


def featurize_spare(
    lists_dir: Path | str, out_npz: Path | str, params: FeatureParams = FeatureParams(),
    *, data_dir: Path | str | None = None, workers: Optional[int] = None,
) -> Optional[Path]:
    """Featurize the lists' spare `_unknown_` training clips (`SPARE_LIST`: real other-word
    speech the clip phase's `_unknown_` share left out) into one feature file, all
    `_unknown_`, like `featurize_negatives`; None when the lists have no spare clips.

    The stream phase draws them as real negatives beside the synthesized ones.
    """
    examples = read_spare(lists_dir, data_dir)
    if not examples:
        return None
    return _featurize_unknown(examples, out_npz, read_categories(lists_dir), params, "spare", workers)


def _featurize_unknown(examples: Sequence[Example], out_npz: Path | str, categories: Sequence[str],
                       params: FeatureParams, name: str, workers: Optional[int]) -> Path:
    """`examples` (all `_unknown_`) -> one cached feature file `[N, 98, F]` (see
    `featurize_negatives`)."""
    unk = list(categories).index(UNKNOWN)
    out_npz = Path(out_npz)
    meta = cache_json(out_npz)
    settings = {"split": name, "feature_params": params.to_dict()}
    key = cache_key(examples, categories, settings)
    if out_npz.is_file() and meta.is_file() and _cache_hit(meta, key, "raise"):
        console.print(f"{name}: {len(examples)} clips, unchanged -> {out_npz} (cached)")
        return out_npz
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stats = AudioStats()
    with progress_bar() as bar:
        task = bar.add_task(f"featurize {name}", total=len(examples))
        feats = featurize_clips([ex.path for ex in examples], params, workers=workers,
                                on_chunk=lambda k: bar.advance(task, k), stats=stats)
    arrays = dict(features=feats, labels=np.full(len(examples), unk, dtype=np.int64),
                  categories=np.array(list(categories), dtype=str),
                  paths=np.array([str(ex.path) for ex in examples], dtype=str),
                  feature_params=np.array(params.to_json()))
    _save_split(out_npz, meta, arrays, {"key": key, "clips": len(examples), "rows": len(feats),
                                        "audio": stats.as_dict(), **settings})
    dt = time.perf_counter() - t0
    console.print(f"{name}: {len(examples)} clips in {dt:.1f} s -> {tuple(feats.shape)} -> {out_npz}")
    return out_npz


def _save_split(npz: Path, meta: Path, arrays: dict, info: dict) -> None:
    """The npz first, then its cache key: a key on disk always describes a complete npz."""
    _save_npz(npz, **arrays)
    meta.write_text(json.dumps({**info, "content": content_digest(arrays)}, indent=1))


def _cache_hit(meta: Path, key: str, on_error: str) -> bool:
    """Does `<split>.cache.json` describe the npz this run would make? Same key, and, for an
    on_error="raise" run, no clip skipped (a skip run's npz lacks the clips raise must report)."""
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict) or info.get("key") != key:
        return False
    skipped = (info.get("audio") or {}).get("skipped")
    return on_error == "skip" or not skipped
