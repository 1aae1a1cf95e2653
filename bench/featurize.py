"""Featurization speed: `tinykws featurize` end to end vs a warmed-up librosa loop.

ours    = clips/s of the real CLI (`tinykws featurize DATA --lists L --out O`, a fresh
          process: startup, list reading, cache key, decode, log-mel, npz writing) over
          lists that hold every dev clip `--repeats` times (files stay in the page cache,
          as a second pass over a dataset would);
librosa = clips/s of a plain per-clip loop with librosa configured equivalently
          (librosa.load at 16 kHz, pre-emphasis 0.97, 512-point STFT of 400-sample boxcar
          windows every 160 samples, |X|^2 / 512, tinykws' mel weights built once, log),
          over the same files in the same run, after a warm-up that absorbs numba
          compilation and first-call costs.
Also printed, to show where the time goes: decode only, log-mel only (one thread).

Usage:  python bench/featurize.py [--data DIR] [--repeats 8] [--workers N] [--runs 3]
Last line: `featurize ours=N librosa=N ratio=R`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/speech_commands_dev"


def dev_clips(data: Path) -> list[str]:
    """Every word clip of the dataset, relative to it."""
    return sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.wav")
                  if not p.parent.name.startswith("_"))


def write_lists(folder: Path, clips: list[str], repeats: int) -> int:
    """Lists with every clip `repeats` times in training and once in validation/testing."""
    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({c.split("/")[0] for c in clips})
    (folder / "categories.txt").write_text("\n".join(words) + "\n")
    (folder / "training_list.txt").write_text("\n".join(clips * repeats) + "\n")
    for split in ("validation", "testing"):
        (folder / f"{split}_list.txt").write_text("\n".join(clips) + "\n")
    return len(clips) * (repeats + 2)


def time_cli(data: Path, lists: Path, out: Path, workers: int | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `tinykws featurize` run in a fresh process."""
    exe = Path(sys.executable).with_name("tinykws")
    cmd = [str(exe), "featurize", str(data), "--lists", str(lists), "--out", str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "TINYKWS_NO_PROGRESS": "1"}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def librosa_loop(paths: list[Path]) -> np.ndarray:
    """The peer: one clip at a time, librosa's STFT, our settings."""
    import librosa

    from tinykws.features import mel_filterbank

    # librosa's own mel bases (htk or slaney) are not ELL's; use ours, built once (same cost)
    basis = mel_filterbank().T.astype(np.float32)  # [n_mels, n_bins]
    out = np.empty((len(paths), 98, 32), np.float32)
    for i, p in enumerate(paths):
        y, _ = librosa.load(p, sr=16000)
        y = librosa.util.fix_length(y * 32768.0, size=16000)
        y = librosa.effects.preemphasis(y, coef=0.97, zi=0.0)
        s = librosa.stft(np.pad(y[24:], (0, 56)), n_fft=512, hop_length=160, win_length=400,
                         window="boxcar", center=False)
        out[i] = np.log(basis @ (np.abs(s) ** 2 / 512) + 2.220446049250313e-16).T
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=8, help="copies of each clip in the training list")
    ap.add_argument("--workers", type=int, default=None, help="tinykws featurize --workers")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each side; medians reported")
    args = ap.parse_args()

    from tinykws.data.audio import load_audio
    from tinykws.features import logmel_batch

    clips = dev_clips(args.data)
    paths = [args.data / c for c in clips]
    print(f"{len(clips)} clips in {args.data}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")

    # where the time goes (single thread, in-process)
    t = time.perf_counter()
    audio = np.stack([load_audio(p)[0] for p in paths])
    decode = len(paths) / (time.perf_counter() - t)
    logmel_batch(audio[:64])
    t = time.perf_counter()
    logmel_batch(audio)
    feats = len(paths) / (time.perf_counter() - t)
    from tinykws.dataset import read_pcm16_wav

    t = time.perf_counter()
    for p in paths:
        read_pcm16_wav(p, 16000, 16000)
    fast = len(paths) / (time.perf_counter() - t)
    print(f"decode only (load_audio, 1 thread):     {decode:8.0f} clips/s")
    print(f"decode only (PCM16 fast path, 1 thread): {fast:8.0f} clips/s")
    print(f"log-mel only (logmel_batch, 1 thread): {feats:8.0f} clips/s")

    librosa_loop(paths[:20])  # warm-up: numba compilation, first-call caches
    tmp = Path(tempfile.mkdtemp(prefix="tinykws-bench-"))
    ours_runs, librosa_runs = [], []
    try:
        n = write_lists(tmp / "lists", clips, args.repeats)
        time_cli(args.data, tmp / "lists", tmp / "warm", args.workers)  # page cache, imports
        for i in range(args.runs):  # interleaved, so both sides see the same load over time
            dt, cpu = time_cli(args.data, tmp / "lists", tmp / f"out{i}", args.workers)
            ours_runs.append((n / dt, n / cpu))
            print(f"tinykws featurize (CLI, {n} clips, workers={args.workers or 'default'}): "
                  f"{n / dt:8.0f} clips/s ({dt:.1f} s wall, {n / cpu:.0f} clips per CPU-second)")
            shutil.rmtree(tmp / f"out{i}", ignore_errors=True)
            t, c = time.perf_counter(), time.process_time()
            ref = librosa_loop(paths)
            librosa_runs.append((len(paths) / (time.perf_counter() - t), len(paths) / (time.process_time() - c)))
            print(f"librosa loop (1 clip at a time):       {librosa_runs[-1][0]:8.0f} clips/s "
                  f"({librosa_runs[-1][1]:.0f} clips per CPU-second)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours, ours_cpu = (float(np.median([r[k] for r in ours_runs])) for k in (0, 1))
    librosa, librosa_cpu = (float(np.median([r[k] for r in librosa_runs])) for k in (0, 1))
    print(f"median of {args.runs}: ours {ours:.0f} clips/s, librosa {librosa:.0f} clips/s; "
          f"per CPU-second (insensitive to other load) ratio {ours_cpu / librosa_cpu:.1f}")
    worst = float(np.abs(ref - logmel_batch(audio)).max())
    print(f"max |librosa - tinykws| = {worst:.2e} (log domain; same features)")
    print(f"featurize ours={ours:.0f} librosa={librosa:.0f} ratio={ours / librosa:.1f}")


if __name__ == "__main__":
    main()
