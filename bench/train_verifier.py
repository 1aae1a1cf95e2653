"""Train a second-look clip classifier that has heard the negatives (docs/benchmarks.md, "Issue 19").

    python bench/train_verifier.py BASE_RUN OUT_DIR [--unknown-weight 0.5] [--cfg JSON]

The fifth and twelfth rounds' second look (`bench/stream_two_stage.py --verifier clip`) used the
run's clip model, which never heard a synthesized negative: it was as sure of "store" as the
stream model. This trains the pipeline's clip recipe (`pipeline_recipe` for the larger set) on
BASE_RUN's training clips, its spare other-word clips and its negatives' training part
(`features/negatives.npz`, all `_unknown_`), validated on BASE_RUN's validation clips.
OUT_DIR/train/best.pt is the verifier: `bench/stream_two_stage.py RUN --verifier
OUT_DIR/train/best.pt`. No held-apart word or voice is in its training set (the negatives'
training part says none of them).
"""
import argparse
import dataclasses
import json
import os
import sys

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.config import TrainConfig, pipeline_recipe  # noqa: E402
from tinykws.run import RunDir  # noqa: E402
from tinykws.train import train  # noqa: E402


def merged_training(base: RunDir, out: RunDir) -> int:
    """Write OUT's training.npz (training + spare + negatives) and link the other splits; rows."""
    out.features.mkdir(parents=True, exist_ok=True)
    parts = [np.load(base.features / f"{n}.npz") for n in ("training", "spare", "negatives")
             if (base.features / f"{n}.npz").is_file()]
    cats = [str(c) for c in parts[0]["categories"]]
    for p in parts[1:]:
        if [str(c) for c in p["categories"]] != cats:
            sys.exit("the feature files' categories differ")
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in ("features", "labels", "paths")}
    np.savez(out.features_file("training"), **arrays, categories=parts[0]["categories"],
             feature_params=parts[0]["feature_params"])
    for split in ("validation", "testing"):
        link = out.features_file(split)
        if not link.exists():
            link.symlink_to(base.features_file(split).resolve())
    counts = np.bincount(arrays["labels"], minlength=len(cats))
    print("training rows: " + ", ".join(f"{c} {n}" for c, n in zip(cats, counts)), file=sys.stderr)
    return len(arrays["labels"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--unknown-weight", type=float, default=0.5,
                    help="loss weight of `_unknown_` (most of the rows are negatives)")
    ap.add_argument("--cfg", default="{}", help="TrainConfig fields to change, as JSON")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    base, out = RunDir(a.base), RunDir(a.out)
    if not (base.features / "negatives.npz").is_file():
        sys.exit(f"{base.features / 'negatives.npz'}: no such file (BASE_RUN must have finished its stream phase)")
    changes = json.loads(a.cfg)
    unknown = set(changes) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        sys.exit(f"--cfg: not TrainConfig fields: {', '.join(sorted(unknown))}")
    n = merged_training(base, out)
    recipe = dataclasses.replace(pipeline_recipe(n), unknown_weight=a.unknown_weight, threads=a.threads, **changes)
    print(f"recipe: {json.dumps(recipe.to_dict())}", file=sys.stderr)
    result = train(out.features, out.root, recipe)
    print(f"best validation {result.best_val_acc:.3f} -> {out.best}", file=sys.stderr)


if __name__ == "__main__":
    main()
