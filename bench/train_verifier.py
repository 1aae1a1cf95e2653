"""Train a second-look clip classifier that has heard the negatives (docs/benchmarks.md, "Issue 19").

    python bench/train_verifier.py BASE_RUN OUT_DIR [--unknown-weight 0.5] [--cfg JSON]
        [--negatives DIR --mine-minutes M [--mine-t1 0.5] [--mine-repeat K]]

The fifth and twelfth rounds' second look (`bench/stream_two_stage.py --verifier clip`) used the
run's clip model, which never heard a synthesized negative: it was as sure of "store" as the
stream model. This trains the pipeline's clip recipe (`pipeline_recipe` for the larger set) on
BASE_RUN's training clips, its spare other-word clips and its negatives' training part
(`features/negatives.npz`, all `_unknown_`), validated on BASE_RUN's validation clips.
OUT_DIR/train/best.pt is the verifier: `bench/stream_two_stage.py RUN --verifier
OUT_DIR/train/best.pt`. No held-apart word or voice is in its training set (the negatives'
training part says none of them).

`--mine-minutes` adds the windows the verifier will actually be asked about (`mined_rows`):
BASE_RUN's stream model fires at `--mine-t1` on M minutes of the negatives' *training* speech
and M/4 minutes of BASE_RUN's training keyword clips, and the 98 frames ending 200 ms after each
detection become a training row (the keyword for a hit, else `_unknown_`), `--mine-repeat`
times. Training audio only: the held-apart words and voices stay unseen.
"""
import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.config import TrainConfig, pipeline_recipe  # noqa: E402
from tinykws.run import RunDir  # noqa: E402
from tinykws.second_look import merged_training  # noqa: E402
from tinykws.train import train  # noqa: E402


def mined_rows(base: RunDir, negatives: Path, minutes: float, t1: float, delay_ms: float,
               categories: list[str], seed: int = 31) -> dict:
    """The windows the verifier will be asked about, from *training* audio: BASE's stream model
    fires (the detector's smoothing and refractory time, threshold `t1`) on a `minutes` stream
    of the negatives' training speech and on a `minutes / 4` stream of BASE's training keyword
    clips; each detection's window (the 98 frames ending `delay_ms` after it) becomes a row,
    `_unknown_` unless it is a hit on a keyword event, then that keyword."""
    from tinykws.detect import Detector
    from tinykws.features import frames_from_stream
    from tinykws.keyword_streams import StreamSpec, build_negative_stream, build_stream, run_stream_clips
    from tinykws.second_look import delay_frames, frame_index
    from tinykws.stream_eval import _match

    det = Detector(base.root)
    kws, others, noise, root = run_stream_clips(base.root, "training")
    streams = [build_negative_stream(negatives, minutes=minutes, split="training", seed=seed),
               build_stream(kws, others, noise, StreamSpec(minutes=minutes / 4, seed=seed + 1), root=root)]
    feats, labels = [], []
    unk = categories.index("_unknown_")
    for st in streams:
        frames = frames_from_stream(st.audio, det.params)
        dets = det.detections_from_trace(*det.score_frames(frames), threshold=t1)
        false = set(_match(dets, st.events, 0.75)[2])  # indices of the false alarms
        for i, d in enumerate(dets):
            hit = i not in false
            end = frame_index(d.time_s, det.params) + delay_frames(delay_ms, det.params)
            if 97 <= end < len(frames):
                feats.append(frames[end - 97 : end + 1])
                labels.append(categories.index(d.label) if hit else unk)
    labels = np.array(labels, np.int64)
    print(f"mined {len(labels)} windows at t1 {t1}: {int((labels != unk).sum())} keyword hits, "
          f"{int((labels == unk).sum())} false alarms", file=sys.stderr)
    return {"features": np.stack(feats).astype(np.float32), "labels": labels,
            "paths": np.array([f"mined{i}" for i in range(len(labels))])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--unknown-weight", type=float, default=0.5,
                    help="loss weight of `_unknown_` (most of the rows are negatives)")
    ap.add_argument("--cfg", default="{}", help="TrainConfig fields to change, as JSON")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--negatives", type=Path, default=None, help="the negatives folder (for --mine-minutes)")
    ap.add_argument("--mine-minutes", type=float, default=0.0,
                    help="also train on the windows BASE's stream model fires on in this many minutes of "
                         "the negatives' training speech (and a quarter of that of training keywords)")
    ap.add_argument("--mine-t1", type=float, default=0.5, help="the first-stage threshold the mining fires at")
    ap.add_argument("--mine-repeat", type=int, default=1, help="copies of each mined window")
    a = ap.parse_args()
    base, out = RunDir(a.base), RunDir(a.out)
    if not (base.features / "negatives.npz").is_file():
        sys.exit(f"{base.features / 'negatives.npz'}: no such file (BASE_RUN must have finished its stream phase)")
    changes = json.loads(a.cfg)
    unknown = set(changes) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        sys.exit(f"--cfg: not TrainConfig fields: {', '.join(sorted(unknown))}")
    n = merged_training(base, out)
    tr = np.load(out.features_file("training"))
    counts = np.bincount(tr["labels"], minlength=len(tr["categories"]))
    print("training rows: " + ", ".join(f"{c} {k}" for c, k in zip(tr["categories"], counts)), file=sys.stderr)
    if a.mine_minutes > 0:
        if a.negatives is None:
            sys.exit("--mine-minutes needs --negatives (the negatives folder BASE_RUN was trained with)")
        cats = [str(c) for c in tr["categories"]]
        m = mined_rows(base, a.negatives, a.mine_minutes, a.mine_t1, 200.0, cats)
        arrays = {k: np.concatenate([tr[k]] + [m[k]] * a.mine_repeat) for k in ("features", "labels", "paths")}
        np.savez(out.features_file("training"), **arrays, categories=tr["categories"],
                 feature_params=tr["feature_params"])
        n = len(arrays["labels"])
    recipe = dataclasses.replace(pipeline_recipe(n), unknown_weight=a.unknown_weight, threads=a.threads, **changes)
    print(f"recipe: {json.dumps(recipe.to_dict())}", file=sys.stderr)
    result = train(out.features, out.root, recipe)
    print(f"best validation {result.best_val_acc:.3f} -> {out.best}", file=sys.stderr)


if __name__ == "__main__":
    main()
