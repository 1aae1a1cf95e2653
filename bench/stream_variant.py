"""Train one stream-phase variant from a run's clip model, into a run folder of its own.

    python bench/stream_variant.py BASE_RUN OUT_RUN --cfg '{"mine_top": 0.1}' [--no-spare] [--snapshots]

OUT_RUN gets links to BASE_RUN's lists and features and a copy of its clip model
(`train/clip.pt`, else `train/best.pt`); the stream phase then runs with BASE_RUN's own stream
config (`train/stream_done.json`: a pipeline run's, e.g. 4500 steps and the later decision on
the embedded default) changed by the JSON of `--cfg`; with `--from-defaults`, or when BASE_RUN
has no finished stream phase, `StreamTrainConfig()` instead (1500 steps, no delay: until the
eighteenth round this was the only start, docs/benchmarks.md). The config used is printed. With BASE_RUN's negatives
(`features/negatives.npz`, or the files of `--negatives-npz`, end to end) and spare other-word clips (`features/spare.npz`, unless
`--no-spare`). With `--snapshots`, each `train/stream_last.pt` the stream phase writes (every
`mine_every` steps; looked for every 2 s, so one rewritten sooner is missed) is also kept as
`OUT_RUN/snaps/it<step>.pt`, for `bench/stream_select.py`.
Score the variant with `bench/stream_diagnose.py OUT_RUN ...`
(docs/benchmarks.md, "Issue 19").
"""
import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402
from tinykws.run import RunDir, read_features  # noqa: E402
from tinykws.stream_training import StreamTrainConfig, train_stream  # noqa: E402


def start_config(base: RunDir, from_defaults: bool) -> dict:
    """The config a variant changes: BASE's finished stream phase's, else the defaults."""
    done = base.stream_done
    if not from_defaults and done.is_file():
        print(f"starting from {done}'s stream config", file=sys.stderr)
        return json.loads(done.read_text())["config"]
    print("starting from StreamTrainConfig()" + ("" if from_defaults else f" ({done} not found)"), file=sys.stderr)
    return StreamTrainConfig().to_dict()


def keep_snapshots(run: RunDir, stop: threading.Event) -> None:
    """Copy `train/stream_last.pt` to `snaps/it<step>.pt` whenever it changes, until `stop`
    (it is written atomically, so a copy is never half a file)."""
    import torch

    (run.root / "snaps").mkdir(exist_ok=True)
    seen = None
    while True:
        done = stop.wait(2.0)
        if run.stream_last.is_file() and (mtime := run.stream_last.stat().st_mtime_ns) != seen:
            seen = mtime
            ckpt = torch.load(run.stream_last, map_location="cpu", weights_only=False)
            torch.save({"state_dict": ckpt["state_dict"], "iteration": ckpt["iteration"]},
                       run.root / "snaps" / f"it{ckpt['iteration']}.pt")
        if done:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--cfg", default="{}", help="StreamTrainConfig fields to change, as JSON")
    ap.add_argument("--no-spare", action="store_true", help="without the spare other-word clips")
    ap.add_argument("--negatives-npz", type=Path, nargs="+", default=None,
                    help="other negatives feature files (all of them, in order) instead of "
                         "BASE_RUN's features/negatives.npz")
    ap.add_argument("--from-defaults", action="store_true",
                    help="start from StreamTrainConfig() instead of BASE_RUN's stream config")
    ap.add_argument("--snapshots", action="store_true",
                    help="keep each stream_last.pt the phase writes as snaps/it<step>.pt")
    a = ap.parse_args()
    for path in a.negatives_npz or []:
        if not path.is_file():
            sys.exit(f"--negatives-npz {path}: no such file")  # else it trained without negatives
    base, out = RunDir(a.base), RunDir(a.out)
    out.root.mkdir(parents=True, exist_ok=True)
    for name in ("lists", "features"):
        if not (out.root / name).exists():
            (out.root / name).symlink_to((base.root / name).resolve())
    out.train.mkdir(exist_ok=True)
    if not out.clip.is_file():
        shutil.copyfile(base.clip if base.clip.is_file() else base.best, out.clip)
    cfg = StreamTrainConfig.from_dict({**start_config(base, a.from_defaults), **json.loads(a.cfg)})
    print(f"stream config: {json.dumps(cfg.to_dict())}", file=sys.stderr)
    negs = a.negatives_npz or [base.negative_features]
    found = [read_features(n) for n in negs if n.is_file()]
    extra = np.concatenate([f.features for f in found]) if found else None  # [N, 98, 32]
    extra_paths = [p for f in found for p in f.paths] if found else None
    real = words = real_paths = None
    if not a.no_spare and base.spare_features.is_file():
        spare = read_features(base.spare_features)
        real, words, real_paths = spare.features, spare.words, list(spare.paths)
    t, stop = time.time(), threading.Event()
    watcher = threading.Thread(target=keep_snapshots, args=(out, stop), daemon=True) if a.snapshots else None
    if watcher:
        watcher.start()
    try:
        train_stream(base.features, out.root, cfg, extra_negatives=extra, real_negatives=real,
                     real_negative_words=words, real_negative_paths=real_paths, extra_negative_paths=extra_paths)
    finally:
        stop.set()
        if watcher:
            watcher.join()
    print(f"stream phase {time.time() - t:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
