"""Rendering speed of synthesized clips: the closed-form filters against scipy's design.

    python bench/synth_speed.py [--clips 400] [--rounds 3]

`render_word` (the per-clip work of `data synth` and `data negatives`) renders the same
`--clips` clips (near-miss and keyword words, 40 voices, fixed seeds) once as shipped and
once with scipy's general filter design and np.convolve put back in its place (the code
before this script's round: `scipy.signal.butter(..., output="sos")` for `butter_sos`, the
direct convolution for the running-sum `moving_mean`). Each run is a fresh process
(espeak keeps state between utterances), the two alternate `--rounds` times, and the
script prints seconds a clip of each, their ratio (best round of each), and whether the
two produced the same int16 clips. Time it on an idle machine.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ["store", "dawn", "north", "yesterday", "upper", "cleft", "happy", "rewrite", "yes", "seven"]


def render(n: int, old: bool, out: str) -> None:
    """The child: render `n` clips, print the seconds, save the clips."""
    import tinykws.data.synth as synth

    if old:  # the design route of the code before: scipy's butter and np.convolve
        from scipy.signal import butter

        synth.butter_sos = lambda order, fc, kind: butter(order, fc, kind, fs=synth.SAMPLE_RATE, output="sos")
        synth.moving_mean = lambda x, win: np.convolve(x, np.ones(win) / win, "valid")
    voices = synth.plan_voices(40, 0)
    e = synth.engine()
    t = time.perf_counter()
    clips = [synth.render_word(WORDS[i % len(WORDS)], voices[i % len(voices)][0], np.random.default_rng(i), e)[0]
             for i in range(n)]
    print(time.perf_counter() - t)
    np.save(out, np.stack(clips))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        render(a.clips, a.child == "old", a.out)
        return
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    best = {"new": float("inf"), "old": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for which in ("new", "old"):
                out = str(Path(tmp) / f"{which}.npy")
                s = float(subprocess.run([sys.executable, __file__, "--child", which, "--clips", str(a.clips),
                                          "--out", out], check=True, capture_output=True, text=True).stdout)
                best[which] = min(best[which], s)
                print(f"round {r + 1}: {which} {1000 * s / a.clips:.2f} ms a clip")
        same = np.array_equal(np.load(Path(tmp) / "new.npy"), np.load(Path(tmp) / "old.npy"))
    print(f"closed form {1000 * best['new'] / a.clips:.2f} ms a clip, scipy design "
          f"{1000 * best['old'] / a.clips:.2f} ms, ratio {best['old'] / best['new']:.2f}x; "
          f"identical int16 clips: {same}; load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
