"""Featurize a negatives set's training speech for a stream-phase variant, minus every item
that holds a word another set holds apart (docs/benchmarks.md, "Issue 19, sixth round").

    python bench/negatives_unseen.py NEW_NEGATIVES BASE_NEGATIVES RUN/features OUT.npz

A larger `tinykws data negatives` set (more words, near-misses, voices) plans its own
splits, so its training part may say words the base set keeps for its validation and
testing parts, the negative hour `bench/stream_diagnose.py` measures on. This drops every
training clip whose item (a word, or a phrase's words) is among those
(`featurize_negatives(..., exclude_words=...)`) and featurizes the rest like
RUN/features/training.npz, all `_unknown_`, for `bench/stream_variant.py --negatives-npz
OUT.npz`. Voices need no filter: the same seed holds out the same espeak variants whatever
the number of voices.
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
from tinykws.data.negatives import read_negatives  # noqa: E402
from tinykws.dataset import featurize_negatives  # noqa: E402
from tinykws.run import read_features, split_file  # noqa: E402


def held_apart_words(base: Path) -> set[str]:
    """Every word of the base set's validation and testing items."""
    items = read_negatives(base).items
    return {w for it in items if it["split"] != "training" for w in it["folder"].split("_")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", type=Path)
    ap.add_argument("base", type=Path)
    ap.add_argument("features", type=Path, help="the run's features folder (categories, parameters)")
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    training = read_features(split_file(a.features, "training"), features=False)
    out = featurize_negatives(a.new, a.out, training.categories, training.params,
                              exclude_words=held_apart_words(a.base))
    kept, total = len(read_features(out, features=False).labels), len(read_negatives(a.new).speech["training"])
    print(f"{total} training clips, {kept} kept (the others say a word {a.base} holds apart)")


if __name__ == "__main__":
    main()
