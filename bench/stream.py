"""Streaming benchmark (docs/benchmarks.md, "Streaming"): recall and false alarms per hour.

Trains two models on the same lists/features of a Speech Commands folder (the pipeline's
training recipe, `--rolling` on and off), builds a long stream (default 10 min) from the
*testing* split only (keywords at known times among other words, over background noise
at several SNRs), runs the detector over it and sweeps the threshold:

    python bench/stream.py --data ../shared/data/speech_commands_dev --out runs/bench_stream

Prints one table row per (model, detector mode) and writes `OUT/stream_bench.json` and
the DET curves `OUT/stream_det.png`. Models already trained in OUT are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")

from tinykws.detect import Detector  # noqa: E402
from tinykws.evaluate import load_run_model  # noqa: E402
from tinykws.stream import (  # noqa: E402
    StreamScore,
    StreamSpec,
    build_stream,
    evaluate_stream,
    plot_det,
    run_stream_clips,
)


def prepare(data: Path, out: Path) -> Path:
    """Lists + features once, in OUT/base (shared by both models)."""
    from tinykws.data.speech_commands import make_lists
    from tinykws.dataset import featurize_lists

    base = out / "base"
    if not (base / "features" / "validation.npz").is_file():
        make_lists(data, "google12", base / "lists")
        featurize_lists(data, base / "lists", base / "features")
    return base


def train_model(base: Path, run: Path, rolling: bool, args) -> None:
    """The pipeline recipe with the benchmark's size overrides."""
    from tinykws.train import pipeline_recipe, train

    if (run / "train" / "best.pt").is_file():
        return
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "lists").exists():
        shutil.copytree(base / "lists", run / "lists")
    import numpy as np

    n_train = len(np.load(base / "features" / "training.npz")["labels"])
    cfg = replace(pipeline_recipe(n_train), rolling=rolling, seed=args.seed)
    if args.epochs:
        cfg = replace(cfg, epochs=args.epochs)
    if args.hidden:
        cfg = replace(cfg, hidden_units=args.hidden)
    if args.layers:
        cfg = replace(cfg, num_layers=args.layers)
    t = time.time()
    res = train(base / "features", run, cfg)
    print(f"trained {run.name}: best val acc {res.best_val_acc:.3f} (epoch {res.best_epoch}), "
          f"test acc {res.test_acc:.3f}, {time.time() - t:.0f} s; config {cfg.to_dict()}",
          file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/speech_commands_dev")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_stream"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--hidden", type=int, default=None, help="override the recipe's hidden units")
    ap.add_argument("--layers", type=int, default=None, help="override the recipe's layers")
    ap.add_argument("--snrs", type=float, nargs="+", default=[20.0, 10.0, 5.0], help="SNRs in dB")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--smoothing-ms", type=float, default=300.0)
    ap.add_argument("--refractory-ms", type=float, default=1000.0)
    ap.add_argument("--runs", nargs="*", default=None,
                    help="NAME=RUN_DIR pairs to benchmark instead of training plain/rolling")
    args = ap.parse_args()

    if args.runs:
        runs = {k: Path(v) for k, v in (r.split("=", 1) for r in args.runs)}
    else:
        base = prepare(args.data, args.out)
        runs = {"plain": args.out / "plain", "rolling": args.out / "rolling"}
        for name, run in runs.items():
            train_model(base, run, name == "rolling", args)

    first = next(iter(runs.values()))
    kws, others, noise, data_dir = run_stream_clips(first, "testing")
    spec = StreamSpec(minutes=args.minutes, seed=args.seed, snrs_db=tuple(args.snrs))
    t = time.time()
    stream = build_stream(kws, others, noise, spec, root=data_dir)
    print(f"stream: {stream.duration_s / 60:.1f} min, {stream.n_keywords} keywords among "
          f"{len(stream.events)} words from {len(kws)} keyword and {len(others)} other testing "
          f"clips, SNR {spec.snrs_db} dB ({time.time() - t:.0f} s to build)", file=sys.stderr)

    results, curves = {}, {}
    for name, run in runs.items():
        model, meta = load_run_model(run)
        rolling = bool((meta.get("train_config") or {}).get("rolling"))
        modes = ["rolling", "window"] if rolling else ["window", "reset"]
        for mode in modes:
            det = Detector(threshold=args.threshold, smoothing_ms=args.smoothing_ms,
                           refractory_ms=args.refractory_ms, mode=mode, model=model, meta=meta)
            t = time.time()
            res = evaluate_stream(det, stream)
            res["seconds"] = round(time.time() - t, 1)
            key = f"{name} model, {mode} mode"
            results[key] = res
            curves[key] = [StreamScore(**s) for s in res["curve"]]
            at, best = res["at_threshold"], res["best_at_1_fa_per_hour"]
            print(f"| {key} | {at['recall']:.1%} | {at['fa_per_hour']:.1f} | "
                  + (f"{best['recall']:.1%} (thr {best['threshold']:.4f}) |" if best else "– |")
                  + " " + ", ".join(f"{k}: {v:.0%}" for k, v in res["recall_by_snr_at_threshold"].items())
                  + f" | {res['seconds']} s |")

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"spec": asdict(spec), "minutes": stream.duration_s / 60,
               "n_keywords": stream.n_keywords, "n_events": len(stream.events),
               "threshold": args.threshold, "smoothing_ms": args.smoothing_ms,
               "refractory_ms": args.refractory_ms, "results": results}
    (args.out / "stream_bench.json").write_text(json.dumps(summary, indent=2))
    plot_det(curves, args.out / "stream_det.png",
             title=f"{stream.duration_s / 60:.0f} min stream, {stream.n_keywords} held-out keywords")
    print(f"wrote {args.out / 'stream_bench.json'} and {args.out / 'stream_det.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
