"""The stream phase on 1 and on N worker processes, same run, same steps: wall time a step.

    python bench/stream_workers.py RUN [--workers 1 2] [--streams 32 --clips 64] [--per-worker]
        [--steps 500] [--mine-every 250]

RUN is a finished pipeline run (its `train/clip.pt` or `train/best.pt`, `features/` with
`training.npz`, `negatives.npz` and `spare.npz` when present). Each count trains `--steps`
steps of the pipeline's stream configuration as it was before the twenty-eighth round
(`StreamTrainConfig()`, rows laid in log-mel space, with `--streams` and `--clips` a step,
mining every `--mine-every` steps; the default 250 gives one round in 500 steps, as the pipeline's default has a round every 500, and no round runs after the last
step, which the seventh round's figures, taken with 500, still had) from the
same clip model into a temporary run folder, and the script prints seconds a step, stream
frames a second (set-up included: loading, spawning, sharing the clip pool) and the
speed-ups against the first count. The workers share a step's streams and clips; with
`--per-worker` each worker has that many (N workers train N times the frames a step).
Time it on an idle machine: N workers want N free cores (docs/benchmarks.md, "Issue 19,
seventh round").
"""
import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
from tinykws.run import RunDir, read_features  # noqa: E402
from tinykws.stream_training import StreamTrainConfig, train_stream  # noqa: E402


def time_workers(run: RunDir, workers: int, steps: int, mine_every: int, streams: int, clips: int,
                 per_worker: bool) -> tuple[float, int]:
    """(seconds a step, stream frames a step) of `workers` processes (the clip model copied
    into a fresh folder)."""
    neg = read_features(run.negative_features).features if run.negative_features.is_file() else None
    spare = read_features(run.spare_features).features if run.spare_features.is_file() else None
    k = workers if per_worker else 1
    cfg = dataclasses.replace(StreamTrainConfig(), iterations=steps, mine_every=mine_every, workers=workers,
                              batch=streams * k, clip_batch=clips * k)
    with tempfile.TemporaryDirectory(prefix="tkws-bench-") as tmp:
        out = RunDir(tmp)
        out.train.mkdir(parents=True)
        shutil.copyfile(run.clip if run.clip.is_file() else run.best, out.clip)
        t = time.perf_counter()
        train_stream(run.features, out.root, cfg, extra_negatives=neg, real_negatives=spare)
        return (time.perf_counter() - t) / steps, cfg.batch * cfg.chunk_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--mine-every", type=int, default=250, help="0: no mining")
    ap.add_argument("--streams", type=int, default=StreamTrainConfig().batch, help="streams a step")
    ap.add_argument("--clips", type=int, default=StreamTrainConfig().clip_batch, help="clips a step")
    ap.add_argument("--per-worker", action="store_true", help="--streams and --clips for each worker")
    a = ap.parse_args()
    run = RunDir(a.run)
    print(f"# {a.run}: {a.steps} steps of {a.streams} streams and {a.clips} clips"
          f"{' a worker' if a.per_worker else ''}, mining every {a.mine_every}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} before")
    base = None
    for n in a.workers:
        s, frames = time_workers(run, n, a.steps, a.mine_every, a.streams, a.clips, a.per_worker)
        base = base or (s, frames / s)
        print(f"workers {n}: {s * a.steps:.1f} s, {s * 1000:.0f} ms a step (set-up included), "
              f"{frames / s:,.0f} stream frames a second; against {a.workers[0]}: steps "
              f"x{base[0] / s:.2f}, frames x{frames / s / base[1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
