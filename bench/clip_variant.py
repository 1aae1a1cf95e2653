"""Train the pipeline's clip phase with some recipe fields changed, on a base run's features.

    python bench/clip_variant.py BASE_RUN OUT_RUN --cfg '{"hidden_units": 192}' [--recorded]

OUT_RUN gets links to BASE_RUN's lists and features (its negatives and spare clips too) and a
clip model trained with `pipeline_recipe` for BASE_RUN's training set (the full preset, as
`tinykws pipeline` trains it; `--recorded`: as a `--data` run trains it, the FastGRNN of
`config.RECORDED_FULL`) changed by the JSON of `--cfg`, on one torch thread as the
pipeline's clip phase runs beside the negatives maker. `train/clip.pt` is its best model,
the start of a stream phase: `bench/stream_variant.py OUT_RUN ...` (docs/benchmarks.md,
"Issue 19, eighteenth round").
"""
import argparse
import dataclasses
import json
import os
import shutil
import sys

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
from tinykws.config import TrainConfig  # noqa: E402
from tinykws.run import RunDir, read_features  # noqa: E402
from tinykws.train import pipeline_recipe, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--cfg", default="{}", help="TrainConfig fields to change, as JSON")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's clip phase: 1)")
    ap.add_argument("--recorded", action="store_true",
                    help="the recipe of a --data run (recorded speech), not of the embedded data")
    a = ap.parse_args()
    base, out = RunDir(a.base), RunDir(a.out)
    if not base.features_file("training").is_file():
        sys.exit(f"{base.features_file('training')}: no such file (BASE_RUN must be a featurized run)")
    changes = json.loads(a.cfg)
    unknown = set(changes) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        sys.exit(f"--cfg: not TrainConfig fields: {', '.join(sorted(unknown))}")
    out.root.mkdir(parents=True, exist_ok=True)
    for name in ("lists", "features"):
        if not (out.root / name).exists():
            (out.root / name).symlink_to((base.root / name).resolve())
    n_train = len(read_features(base.features_file("training"), features=False))  # rows: the recipe's epochs
    recipe = dataclasses.replace(pipeline_recipe(n_train, recorded=a.recorded), threads=a.threads, **changes)
    print(f"recipe: {json.dumps(recipe.to_dict())}", file=sys.stderr)
    result = train(out.features, out.root, recipe)
    shutil.copyfile(out.best, out.clip)
    print(f"best validation {result.best_val_acc:.3f} -> {out.clip}", file=sys.stderr)


if __name__ == "__main__":
    main()
