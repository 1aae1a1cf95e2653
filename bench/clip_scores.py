"""Testing accuracy and `_unknown_` recall of checkpoints on one feature file, as
`bench/clip_phase.py` prints them for its own clip model (docs/benchmarks.md, "Issue 19,
thirteenth round").

    python bench/clip_scores.py RUN/features/testing.npz CKPT [CKPT ...]

Each clip is scored by the model's clip forward (`model(features)`: every step from a zero
state, the scores at the last frame), argmax against its label. `tinykws evaluate` scores a
run's `best.pt` from the audio instead; this reads any checkpoint (a run's `train/clip.pt`
too) on features already made.
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.labels import UNKNOWN  # noqa: E402
from tinykws.run import read_features  # noqa: E402


def clip_scores(checkpoint: Path, features: Path) -> tuple[float, float, int]:
    """(accuracy, `_unknown_` recall, clips) of `checkpoint` on the clips of `features`."""
    model, _ = load_model(checkpoint)
    model.eval()
    split = read_features(features)
    with torch.no_grad():
        pred = model(torch.from_numpy(split.features)).argmax(1).numpy()
    unk = split.categories.index(UNKNOWN)
    return float(np.mean(pred == split.labels)), float(np.mean(pred[split.labels == unk] == unk)), len(pred)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", type=Path)
    ap.add_argument("checkpoints", type=Path, nargs="+")
    a = ap.parse_args()
    for ckpt in a.checkpoints:
        acc, unk, n = clip_scores(ckpt, a.features)
        print(f"{ckpt}: testing accuracy {acc:.3f}, {UNKNOWN} recall {unk:.3f} ({n} clips)")


if __name__ == "__main__":
    main()
