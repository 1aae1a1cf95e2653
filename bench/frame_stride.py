"""The clip phase of a run again, with a model that steps once every S frames (`ModelConfig.frame_stride`).

    python bench/frame_stride.py BASE_RUN OUT_RUN --stride 2 [--epochs 80] [--threads 0] [--seed 0]

OUT_RUN gets links to BASE_RUN's lists and features and a clip model trained with the
pipeline's recipe (`train/config.json` of BASE_RUN: the same epochs, schedule, augmentation and
seed) on S stacked frames a recurrent step; then train its stream phase with
`bench/stream_variant.py OUT_RUN OUT_RUN` and score it with `bench/stream_diagnose.py`
(docs/benchmarks.md, "Issue 19, eleventh round"). Prints the clip phase's wall time and
best validation accuracy. (`TrainConfig.frame_stride` is the same as `tinykws train
--frame-stride`; the pipeline's recipe uses 2.)
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
from tinykws.config import TrainConfig  # noqa: E402
from tinykws.run import RunDir  # noqa: E402
from tinykws.train import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="default: the base run's")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=None, help="default: the base run's")
    a = ap.parse_args()
    base, out = RunDir(a.base), RunDir(a.out)
    saved = json.loads((base.train / "config.json").read_text())["train_config"]
    changes = {"threads": a.threads, "frame_stride": a.stride, **({"epochs": a.epochs} if a.epochs else {}),
               **({"seed": a.seed} if a.seed is not None else {})}
    cfg = TrainConfig(**{**saved, **changes})
    out.root.mkdir(parents=True, exist_ok=True)
    for name in ("lists", "features"):
        if not (out.root / name).exists():
            (out.root / name).symlink_to((base.root / name).resolve())
    t = time.time()
    result = train(base.features, out.root, cfg)
    print(f"clip phase, frame stride {a.stride}: {time.time() - t:.0f} s, best validation "
          f"{result.best_val_acc:.3f} (epoch {result.best_epoch})", file=sys.stderr)


if __name__ == "__main__":
    main()
