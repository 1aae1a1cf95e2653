"""The clip phase's torch threads, alone and beside the negatives maker's work.

    python bench/clip_threads.py RUN/features [--epochs 4] [--rounds 2]

The pipeline trains the clip phase while a one-worker child makes the negatives set on the
other core (`pipeline.start_negatives`). This script trains `--epochs` epochs of the
pipeline recipe on a run's features (fresh process each, seed 0) with torch's default
threads (0: one per core) and with one, alternating, `--rounds` times: first beside a
child that renders synthesized words in a loop (`synth.render_word`, the maker's per-clip
work), then alone. It prints each training's seconds (imports excluded), the best of each
setting, and their ratio. Time it on an otherwise idle machine.
"""
import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")

TRAIN = """
import tempfile, time
from dataclasses import replace
from tinykws.config import pipeline_recipe
from tinykws.train import train
cfg = replace(pipeline_recipe(1920), seed=0, epochs={epochs}, threads={threads})
with tempfile.TemporaryDirectory() as out:
    t = time.perf_counter()
    train({features!r}, out, cfg)
    print(time.perf_counter() - t)
"""


def render_forever() -> None:
    """The competitor: the negatives maker's per-clip work, without end."""
    import numpy as np

    from tinykws.data import synth

    voices = synth.plan_voices(40, 0)
    e = synth.engine()
    i = 0
    while True:
        synth.render_word(["store", "dawn", "north", "upper"][i % 4], voices[i % 40][0],
                          np.random.default_rng(i), e)
        i += 1


def train_seconds(features: str, epochs: int, threads: int) -> float:
    """Seconds of one `train` call in a fresh process."""
    code = TRAIN.format(features=features, epochs=epochs, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    for beside in (True, False):
        child = None
        if beside:
            child = mp.get_context("spawn").Process(target=render_forever, daemon=True)
            child.start()
            time.sleep(3)  # past its imports
        best = {}
        for r in range(a.rounds):
            for threads in (0, 1):
                s = train_seconds(a.features, a.epochs, threads)
                best[threads] = min(best.get(threads, s), s)
                print(f"{'beside the maker' if beside else 'alone'} round {r + 1}: "
                      f"threads {threads} {s:.1f} s")
        if child is not None:
            child.terminate()
            child.join()
        print(f"{'beside the maker' if beside else 'alone'}: torch default {best[0]:.1f} s, "
              f"one thread {best[1]:.1f} s, ratio {best[0] / best[1]:.2f}x")


if __name__ == "__main__":
    main()
