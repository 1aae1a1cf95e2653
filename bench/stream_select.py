"""Would validation streams pick the better stream model? Seeds and snapshots, ranked both ways.

    python bench/stream_select.py RUN [RUN ...] --tag NAME --negatives NEGATIVES_DIR [--cache runs/streams]

Each RUN is a finished stream phase (`bench/stream_variant.py`); a RUN with a `snaps/` folder
(copies of `train/stream_last.pt`, `snaps/it<N>.pt`, taken while it trained) adds one model a
snapshot. Every model is scored at issue 19's acceptance point (<= 1 false alarm an hour on the
keyword stream and <= 2 on the negative hour) twice:

- on *validation* audio, the streams `stream_eval.choose_threshold` picks the stored threshold
  on (a 10-minute stream of the run's validation split, seed 17, and an hour of the negatives'
  validation speech, seed 19);
- on the *testing* streams `bench/stream_diagnose.py` caches as NAME (built here when missing).

If the two rank the models alike, training several and keeping the best on validation is a
lever; if not, the seed spread on the testing streams is beyond what validation can see. The
validation streams are cached beside the testing ones (`sel_val_*`).
"""
import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinykws.detect import Detector  # noqa: E402
from tinykws.stream_eval import det_curve  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cached_streams import testing_streams, validation_streams  # noqa: E402  (bench/cached_streams.py)


def acceptance(det: Detector, kw, neg) -> tuple[float, float]:
    """(recall, threshold) at <= 1 FA/h on `kw` and <= 2 on `neg`; (0, nan) where none holds."""
    kt, nt = det.score_traces([kw.audio, neg.audio])
    kc, nc = det_curve(det, *kt, kw), det_curve(det, *nt, neg)
    ok = [(c.recall, -c.threshold) for c, n in zip(kc, nc) if c.fa_per_hour <= 1.0 and n.fa_per_hour <= 2.0]
    if not ok:
        return 0.0, float("nan")
    r, t = max(ok)
    return r, -t


def models(run: Path) -> list[tuple[str, Path]]:
    """(name, checkpoint) of a run's snapshots, by step, then of its final stream model (the
    snapshot of the last step is that model and is left out)."""
    final = run / "train" / "best.pt"
    last = torch.load(final, map_location="cpu", weights_only=False)["stream_config"]["iterations"]
    snaps = sorted((p for p in (run / "snaps").glob("it*.pt") if int(p.stem[2:]) != last),
                   key=lambda p: int(p.stem[2:]))
    return [(f"{run.name}@{p.stem[2:]}", p) for p in snaps] + [(run.name, final)]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two score lists (ties broken as numpy's sort leaves them; nan for
    fewer than 3)."""
    if len(a) < 3:
        return float("nan")
    rank = lambda x: np.argsort(np.argsort(-x))  # noqa: E731
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def as_run(run: Path, ckpt: Path, tmp: Path) -> Path:
    """A run folder whose model is `ckpt` (a snapshot holds only the weights: the rest is the
    run's final checkpoint's), lists and features linked from `run`."""
    if ckpt == run / "train" / "best.pt":
        return run
    out = tmp / ckpt.stem
    (out / "train").mkdir(parents=True, exist_ok=True)
    for name in ("lists", "features"):
        if not (out / name).exists():
            (out / name).symlink_to((run / name).resolve())
    full = torch.load(run / "train" / "best.pt", map_location="cpu", weights_only=False)
    full["state_dict"] = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    torch.save(full, out / "train" / "best.pt")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--negatives", required=True, type=Path)
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    a = ap.parse_args()
    a.cache.mkdir(parents=True, exist_ok=True)
    first = a.runs[0]
    test = testing_streams(first, a.negatives, a.cache, a.tag)
    val = validation_streams(first, a.negatives, a.cache, a.tag)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in a.runs:
            for name, ckpt in models(run):
                det = Detector(as_run(run, ckpt, Path(tmp)))
                (vr, vt), (tr, tt) = acceptance(det, *val), acceptance(det, *test)
                rows.append((name, vr, vt, tr, tt))
                print(f"{name:24s} validation {vr:.3f} ({vt:.4f})   testing {tr:.3f} ({tt:.4f})", flush=True)
                shutil.rmtree(Path(tmp) / ckpt.stem, ignore_errors=True)
    v, t = np.array([r[1] for r in rows]), np.array([r[3] for r in rows])
    final = np.array(["@" not in r[0] for r in rows])
    for what, keep in (("the runs' final models", final), ("all models", np.ones_like(final))):
        pick = int(np.flatnonzero(keep)[np.argmax(v[keep])])
        print(f"{what} ({int(keep.sum())}): Spearman rank correlation, validation vs testing, "
              f"{spearman(v[keep], t[keep]):+.2f}; picked on validation: {rows[pick][0]} -> testing "
              f"{t[pick]:.3f}; testing mean {t[keep].mean():.3f}, best {t[keep].max():.3f}")


if __name__ == "__main__":
    main()
