"""How close to a keyword the near-misses of each negatives split are (docs/benchmarks.md, "Issue 19").

    python bench/near_miss_splits.py [--near-misses 40] [--seed 0]

`plan_items` splits each keyword's near-miss words at random. If one split drew the closest
ones, its hour would fire more and a threshold set on it would sit too high. Prints, for each
split, how many near-miss items it has, the mean and quantiles of their alignment cost
(`near_misses.phonetic_cost`: 0 is the keyword's own sound) and how many are within 0.5 and
0.7, then the closest items of the validation and testing splits. The pipeline's negatives are
the defaults here (seed 0, 40 near-misses a keyword, the google12 keywords).
"""
import argparse
import os

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.data.near_misses import candidate_words, near_misses  # noqa: E402
from tinykws.data.layout import GOOGLE12_WORDS, SPLITS  # noqa: E402
from tinykws.data.negatives import plan_items  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--near-misses", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=16, help="closest items printed per held-apart split")
    a = ap.parse_args()
    items = plan_items(GOOGLE12_WORDS, near_miss_count=a.near_misses, seed=a.seed)
    cands = candidate_words(GOOGLE12_WORDS)
    cost: dict[str, float] = {}
    for k in GOOGLE12_WORDS:
        for w, c in near_misses(k, a.near_misses, cands):
            cost[w] = min(c, cost.get(w, np.inf))
    print("split       items  mean   q10   q50   <=0.5  <=0.7")
    for split in SPLITS:
        nm = [i for i in items if i.kind == "near-miss" and i.split == split]
        c = np.array([cost[i.text] for i in nm])
        print(f"{split:10s} {len(nm):6d}  {c.mean():.3f} {np.quantile(c, 0.1):.3f} {np.median(c):.3f}"
              f"  {int((c <= 0.5).sum()):5d}  {int((c <= 0.7).sum()):5d}")
    for split in ("validation", "testing"):
        nm = sorted((cost[i.text], i.text, i.keyword) for i in items if i.kind == "near-miss" and i.split == split)
        print(f"{split} closest: " + ", ".join(f"{w} ({k}, {c:.2f})" for c, w, k in nm[: a.show]))


if __name__ == "__main__":
    main()
