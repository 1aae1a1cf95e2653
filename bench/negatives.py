"""Negatives speed (docs/benchmarks.md, "Negatives"): `make_negatives` against `synthesize`.

Both render 1-s clips with the same voice/channel/noise model (`synth.render_word`) in a
pool of fresh processes; the peer is `data synth` making the same number of speech clips
(words x voices), in the same run, so machine load affects both. The speech is what
scales (50,000 clips by default); the background noises are the fixed part, so both make
theirs at the minimum length (`--noise-seconds 2`) and the negatives no background clips
unless `--background N`:

    python bench/negatives.py --utterances 1200 --out /tmp/negbench

Prints clips/s and MB for each, and the ratio. Folders under OUT are remade each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")

from tinykws.data.near_misses import candidate_words  # noqa: E402
from tinykws.data.negatives import NegativesConfig, make_negatives  # noqa: E402
from tinykws.data.synth import synthesize  # noqa: E402


def du(folder: Path) -> float:
    """MB of .wav files under `folder`."""
    return sum(f.stat().st_size for f in folder.rglob("*.wav")) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/negbench"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--noise-seconds", type=float, default=2.0)
    ap.add_argument("--background", type=int, default=0)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    n = args.utterances
    words = max(50, n // 10)  # as the default set: ~8 clips per item

    t = time.perf_counter()
    s = make_negatives(args.out / "negatives", NegativesConfig(
        utterances=n, words=words, phrases=words // 4, background=args.background,
        voices=max(30, n // 50), noise_seconds=args.noise_seconds), workers=args.workers)
    neg_s = time.perf_counter() - t
    per_word = 50
    synth_words = candidate_words()[: max(1, n // per_word)]  # real words, as the negatives
    t = time.perf_counter()
    synthesize(args.out / "synth", words=synth_words, per_word=per_word, workers=args.workers,
               noise_seconds=args.noise_seconds)  # fmt: skip
    syn_s = time.perf_counter() - t
    syn_clips = len(synth_words) * per_word

    load = os.getloadavg()[0]
    print(f"load average {load:.1f}, {os.cpu_count()} cores")
    print(f"{'':28s} {'clips':>7s} {'seconds':>8s} {'clips/s':>8s} {'MB':>7s}")
    print(f"{'negatives':28s} {n:7d} {neg_s:8.1f} {n / neg_s:8.1f} {du(args.out / 'negatives'):7.0f}")
    print(f"{'synth (peer, same model)':28s} {syn_clips:7d} {syn_s:8.1f} {syn_clips / syn_s:8.1f} {du(args.out / 'synth'):7.0f}")
    print(f"negatives: {s.plan_seconds:.1f} s of it planning (word list, near-misses), then "
          f"{s.clips_per_second:.1f} clips/s")
    print(f"negatives / synth clips per second: {(n / neg_s) / (syn_clips / syn_s):.2f}; "
          f"{s.background} background clips and {s.hours:.2f} h in all")  # fmt: skip


if __name__ == "__main__":
    main()
