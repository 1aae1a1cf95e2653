"""The pipeline's clip phase alone on data folders, with a chosen `_unknown_` share.

    python bench/clip_phase.py OUT --data DIR [--data DIR ...] [--unknown-share 2]
        [--train-unknown-share 2] [--seed 0] [--recipe JSON]

Writes OUT/lists (`make_lists`, google12), OUT/features (`featurize_lists`, the first
folder's background noise) and OUT/train (`train` with `pipeline_recipe` for the training
set's size), then prints the clip model's accuracy and `_unknown_` recall on the testing
split (last frame of each testing clip's features). It also writes OUT/features/spare.npz
(the other-word clips the share left out), so the stream phase can follow with
`bench/stream_variant.py OUT OUT2 --negatives-npz NEGATIVES.npz` (docs/benchmarks.md,
"Issue 19, fourth round").
"""
import argparse
import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
from clip_scores import clip_scores  # noqa: E402  (bench/, beside this script)
from tinykws.data.speech_commands import make_lists  # noqa: E402
from tinykws.dataset import FeaturizeConfig, featurize_lists, featurize_spare  # noqa: E402
from tinykws.labels import UNKNOWN  # noqa: E402
from tinykws.run import RunDir, read_features  # noqa: E402
from tinykws.train import pipeline_recipe, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, action="append", required=True)
    ap.add_argument("--unknown-share", type=float, default=1.0)
    ap.add_argument("--train-unknown-share", type=float, default=None, help="the training split's alone")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="{}", help="TrainConfig fields to change, as JSON "
                    "(e.g. '{\"hidden_units\": 192, \"wrank\": 32}')")
    a = ap.parse_args()
    rd = RunDir(a.out)
    s = make_lists(a.data, "google12", rd.lists, unknown_share=a.unknown_share,
                   train_unknown_share=a.train_unknown_share, seed=a.seed)
    print("training clips:", s.counts["training"], "spare other-word clips:", s.spare_unknown)
    noise = a.data[0] / "_background_noise_"
    featurize_lists(a.data[0], rd.lists, rd.features,
                    FeaturizeConfig(noise_dir=noise if noise.is_dir() else None, seed=a.seed))
    training = read_features(rd.features_file("training"), features=False)
    featurize_spare(rd.lists, rd.spare_features, training.params)  # the stream phase's real negatives
    n = len(training.labels)
    recipe = dataclasses.replace(pipeline_recipe(n), seed=a.seed, **json.loads(a.recipe))
    train(rd.features, rd.root, recipe)
    acc, unk, n = clip_scores(rd.best, rd.features_file("testing"))
    print(f"testing accuracy {acc:.3f}, {UNKNOWN} recall {unk:.3f} ({n} clips)")


if __name__ == "__main__":
    main()
