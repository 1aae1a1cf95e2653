"""How many of a run's stream-phase negatives each garbage threshold gives a garbage output,
and which keyword's (docs/benchmarks.md, "Issue 19, twenty-seventh round").

    python bench/stream_garbage.py RUN [--thresholds 0.01 0.1 0.3 0.5]

RUN's clip model (`train/clip.pt`) scores the clips the stream phase draws its negatives from
(the training split's `_unknown_` clips, `features/spare.npz` and `features/negatives.npz`)
as `StreamTrainConfig.garbage_threshold` does (`stream_garbage.garbage_targets`).
"""
import argparse
import math
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.labels import NON_KEYWORDS, UNKNOWN  # noqa: E402
from tinykws.run import read_features, split_file  # noqa: E402
from tinykws.stream_clips import clip_pool  # noqa: E402
from tinykws.stream_garbage import garbage_targets, keyword_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.01, 0.1, 0.3, 0.5])
    a = ap.parse_args()
    feats = a.run / "features"
    split = read_features(split_file(feats, "training"))
    more = {n: np.load(feats / f"{n}.npz")["features"] if (feats / f"{n}.npz").is_file() else None
            for n in ("spare", "negatives")}
    log_per_db = math.log(10) / (10 if split.params.power_spec else 20)  # as train_stream
    pool, _ = clip_pool(split, more["spare"], more["negatives"], log_per_db)
    model, _ = load_model(a.run / "train" / "clip.pt")
    C, u = len(pool.categories), pool.categories.index(UNKNOWN)
    kws = [c for c in pool.categories if c not in NON_KEYWORDS]
    n = int((pool.labels == u).sum())
    print(f"{a.run}: {n} negative clips; keywords {' '.join(kws)}")
    scores = keyword_scores(model, pool)  # once; each threshold only compares
    for t in a.thresholds:
        g = garbage_targets(model, pool, t, scores)
        g = g[(pool.labels == u)]
        counts = np.bincount(g[g >= C] - C, minlength=len(kws))
        print(f"threshold {t}: {(g >= C).mean():.1%} take a garbage output; by keyword {counts.tolist()}")


if __name__ == "__main__":
    main()
