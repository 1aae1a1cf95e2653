"""Streaming benchmark (docs/benchmarks.md, "Streaming"): recall and false alarms per hour.

Scores trained runs (e.g. the `tinykws pipeline` default before and after a change) on
three long recordings made from held-out material only:

- a keyword stream at 10-40 dB SNR (the acceptance stream) and one at 5 dB, both from the
  run's *testing* split (speakers never seen in training): keywords at known times among
  other words, over the dataset's background-noise recordings;
- a negative stream (default 60 min) of non-keyword speech only, from `--negatives` (a
  folder of WAV files, or a text file listing them, e.g. the held-apart
  `testing_list.txt` of `tinykws data negatives`: words and voices never trained on;
  `_silence_/` lines are left out);
  without it, the testing split's other words, replayed.

Each model runs in its detector's default mode (`rolling` = one state, never reset, for
stream-trained models; `window` otherwise), or the modes given (`NAME=RUN:mode`). For
each: the DET curve (threshold swept), the best recall at <= 1 and <= 6 false alarms per
hour on the keyword stream (with a 90 % interval from resampling the stream's source clips,
`tinykws.stream_eval.bootstrap_recall`: how much of a difference the test material alone can
make), and at that threshold the false alarms per hour on the negative stream; the
largest |state| and the longest run of one keyword as top class over
the negative stream (a locked-in state shows as minutes).

    python bench/stream.py --runs before=runs/before after=runs/after --out runs/bench_stream \
        --negatives DIR

Prints a table and writes `OUT/stream_bench.json`, `OUT/stream_det.png` (the keyword
stream's DET curves) and `OUT/stream_det_negatives.png` (keyword-stream recall against the
false alarms per hour on the negative stream, threshold by threshold).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

from tinykws.detect import Detector  # noqa: E402
from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.keyword_streams import StreamSpec, build_stream, run_stream_clips  # noqa: E402
from tinykws.stream_eval import (  # noqa: E402
    StreamScore,
    bootstrap_recall,
    clip_recall,
    det_curve,
    miss_reasons,
    operating_point,
    plot_det,
    score_detections,
    stream_efficiency,
)


def negative_clips(src: Path | None, fallback: list) -> list:
    """(path, word, '_unknown_') of every WAV under a folder or listed in a text file."""
    if src is None:
        return fallback
    if src.is_dir() and (src / "testing_list.txt").is_file():  # a `data negatives` folder
        src = src / "testing_list.txt"  # its held-apart part only
    if src.is_dir():
        paths = sorted(src.rglob("*.wav"))
    else:
        lines = [ln.strip() for ln in src.read_text().splitlines()]
        paths = [Path(ln) for ln in lines if ln and not ln.startswith("_silence_")]
        paths = [p if p.is_absolute() else src.parent / p for p in paths]
    if not paths:
        sys.exit(f"error: no WAV files in {src}")
    return [(p, p.parent.name, "_unknown_") for p in paths]


def lock_in(det: Detector, audio: np.ndarray) -> dict:
    """Largest |state| and longest one-keyword run over a recording on one state."""
    import torch

    from tinykws.features import frames_from_stream
    from tinykws.stream_state import longest_keyword_run, stream_through

    frames = torch.from_numpy(np.asarray(frames_from_stream(audio, det.params), np.float32))
    scores, peaks = stream_through(det.model, frames)
    run, label = longest_keyword_run(scores, det.categories)
    return {"state_max": float(peaks.max()), "state_max_first_minute": float(peaks[0]),
            "longest_keyword_run_s": run / 100.0, "longest_keyword_run_label": label}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True,
                    help="NAME=RUN_DIR or NAME=RUN_DIR:MODE (rolling, window, reset)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_stream"))
    ap.add_argument("--negatives", type=Path, default=None,
                    help="folder of (or list file of) held-apart non-keyword WAVs")
    ap.add_argument("--minutes", type=float, default=30.0, help="keyword stream at 10-40 dB")
    ap.add_argument("--minutes-5db", type=float, default=10.0, help="keyword stream at 5 dB (0: none)")
    ap.add_argument("--no-lock-in", action="store_true", help="skip the lock-in pass over the negatives")
    ap.add_argument("--negative-minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    runs = {}
    for r in args.runs:
        name, _, rest = r.partition("=")
        path, _, mode = rest.partition(":")
        runs[name] = (Path(path), mode or "auto")

    first = next(iter(runs.values()))[0]
    kws, others, noise, data_dir = run_stream_clips(first, "testing")
    negs = negative_clips(args.negatives, others)
    t = time.time()
    streams = {
        "10-40 dB": build_stream(kws, others, noise, StreamSpec(
            minutes=args.minutes, snrs_db=(40.0, 30.0, 20.0, 10.0), seed=args.seed), root=data_dir),
        **({} if args.minutes_5db <= 0 else {"5 dB": build_stream(kws, others, noise, StreamSpec(
            minutes=args.minutes_5db, snrs_db=(5.0,), seed=args.seed + 1), root=data_dir)}),
        "negatives": build_stream(negs, negs, noise, StreamSpec(
            minutes=args.negative_minutes, snrs_db=(40.0, 30.0, 20.0, 10.0), keyword_fraction=0.0,
            gap_s=(0.2, 1.5), seed=args.seed + 2)),
    }
    for k, s in streams.items():
        print(f"stream {k}: {s.duration_s / 60:.1f} min, {s.n_keywords} keywords among "
              f"{len(s.events)} words", file=sys.stderr)
    print(f"(negatives from {args.negatives or 'the testing split other words'}: {len(negs)} clips; "
          f"{len(kws)} keyword, {len(others)} other testing clips; built in {time.time() - t:.0f} s)",
          file=sys.stderr)

    results, curves, neg_curves = {}, {}, {}
    eff_lines: list[str] = []
    print("| model | mode | recall at <= 1 FA/h (threshold) [90 % bootstrap over clips] | "
          "negative FA/h there | recall at <= 6 FA/h [90 %] | negative FA/h there | "
          "5 dB recall at that threshold | "
          "lock-in: max abs state, longest keyword run |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, (run, mode) in runs.items():
        model, ck = load_model(run)
        det = Detector(model=model, checkpoint=ck, mode=mode)
        t = time.time()
        traces = {k: det.score_trace(s.audio) for k, s in streams.items()}
        kw = streams["10-40 dB"]
        curve = det_curve(det, *traces["10-40 dB"], kw)

        def at(thr: float, key: str) -> StreamScore:
            s = streams[key]
            return score_detections(det.detections_from_trace(*traces[key], thr), s.events,
                                    s.duration_s, threshold=thr)

        res = {"mode": det.mode, "curve": [asdict(s) for s in curve]}
        # the spread from the test clips alone (resampled; a replayed clip is one unit)
        spread = bootstrap_recall(det, *traces["10-40 dB"], kw, limits=(1.0, 6.0))
        res["bootstrap_90"] = {f"{k:g}": v for k, v in spread.items()}
        cells = []
        for limit in (1.0, 6.0):
            op = operating_point(curve, limit)
            if op is None:
                res[f"at_{limit:g}_fa_per_hour"] = None
                cells += ["–", "–"]
                continue
            neg = at(op.threshold, "negatives")
            res[f"at_{limit:g}_fa_per_hour"] = {"keywords": asdict(op), "negatives": asdict(neg)}
            if "5 dB" in streams:
                res[f"at_{limit:g}_fa_per_hour"]["5 dB"] = asdict(at(op.threshold, "5 dB"))
            lo, _, hi = spread[limit]
            cells += [f"{op.recall:.1%} ({op.threshold:.4f}) [{lo:.0%}-{hi:.0%}]",
                      f"{neg.fa_per_hour:.1f}"]
        hard6 = (res["at_6_fa_per_hour"] or {}).get("5 dB")
        res["negative_curve"] = [asdict(s) for s in det_curve(det, *traces["negatives"],
                                                              streams["negatives"])]
        if "5 dB" in streams:
            res["5db_curve"] = [asdict(s) for s in det_curve(det, *traces["5 dB"], streams["5 dB"])]
        if det.mode == "rolling" and not args.no_lock_in:
            res["lock_in"] = lock_in(det, streams["negatives"].audio)
            li = res["lock_in"]
            cells_li = f"{li['state_max']:.2f}, {li['longest_keyword_run_s']:.1f} s ({li['longest_keyword_run_label']})"
        else:
            cells_li = "(skipped)" if args.no_lock_in else "(window: state reset every second)"
        # the stream efficiency: what the stream keeps of what the classifier knows
        clip = clip_recall(det, kw)
        res["clip_recall"] = clip
        res["efficiency"] = stream_efficiency(curve, clip)
        res["miss_reasons"] = {}
        for limit in (1.0, 6.0):
            op = operating_point(curve, limit)
            if op is not None:
                res["miss_reasons"][f"{limit:g}"] = miss_reasons(det, *traces["10-40 dB"], kw, op.threshold)
        res["miss_reasons"]["0.5"] = miss_reasons(det, *traces["10-40 dB"], kw, 0.5)
        # the acceptance point: <= 1 FA/h on the keyword stream and <= 2 on the negative one
        both = [k for k, n in zip(curve, res["negative_curve"])
                if k.fa_per_hour <= 1.0 and n["fa_per_hour"] <= 2.0]
        b = max(both, key=lambda k: (k.recall, -k.threshold)) if both else None
        res["both_limits"] = asdict(b) if b else None
        eff_lines.append(
            f"| {name} | {clip['recall']:.1%} | "
            + (f"{b.recall:.1%} ({b.threshold:.4f}), eff {b.recall / clip['recall']:.2f} | " if b else "– | ")
            + " | ".join(
                "–" if res["efficiency"][k] is None else f"{res['efficiency'][k]:.2f}"
                for k in ("1", "6", "ceiling")) + " | " + "; ".join(
                f"{k}: " + ", ".join(f"{n} {v}" for n, v in m.items() if v)
                for k, m in res["miss_reasons"].items()) + " |")
        res["seconds"] = round(time.time() - t, 1)
        results[name] = res
        curves[f"{name} ({det.mode}), 10-40 dB"] = curve
        # recall on the keyword stream against false alarms on the negative hour, per threshold
        neg_curves[f"{name} ({det.mode})"] = [
            StreamScore(k.threshold, k.hits, k.misses, n["false_alarms"], k.recall, n["fa_per_hour"])
            for k, n in zip(curve, res["negative_curve"])]
        print(f"| {name} | {det.mode} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | "
              f"{hard6['recall']:.1%} |" if hard6 else f"| {name} | {det.mode} | {' | '.join(cells)} | – |",
              cells_li, "|")

    print("\n| model | clip recall (same keyword clips, cut out alone) | recall at <= 1 FA/h on the "
          "keyword stream and <= 2 on the negatives (threshold), efficiency | efficiency at <= 1 "
          "FA/h | at <= 6 FA/h | ceiling (any threshold) | where the keywords go (at the <= 1 / <= 6 "
          "FA/h thresholds and at 0.5) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(eff_lines))
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"streams": {k: {"minutes": s.duration_s / 60, "n_keywords": s.n_keywords,
                               "n_events": len(s.events)} for k, s in streams.items()},
               "negatives": str(args.negatives or "testing split other words"),
               "results": results}
    (args.out / "stream_bench.json").write_text(json.dumps(summary, indent=2))
    plot_det(curves, args.out / "stream_det.png",
             title=f"{streams['10-40 dB'].duration_s / 60:.0f} min, {kw.n_keywords} unseen-speaker "
                   "keywords at 10-40 dB")
    plot_det(neg_curves, args.out / "stream_det_negatives.png",
             title=f"keyword-stream recall vs false alarms on {streams['negatives'].duration_s / 60:.0f} "
                   "min of held-apart negatives")
    print(f"wrote {args.out / 'stream_bench.json'}, {args.out / 'stream_det.png'} and "
          f"{args.out / 'stream_det_negatives.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
