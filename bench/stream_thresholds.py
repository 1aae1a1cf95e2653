"""Per-keyword thresholds against one threshold, on a run's cached diagnostic streams.

    python bench/stream_thresholds.py RUN --tag NAME [--cache runs/streams]

Scores RUN on the two streams `bench/stream_diagnose.py` cached as NAME (30-min keyword
stream, 60-min negative hour), then chooses thresholds on the first half of both streams
(<= 1 false alarm an hour on the keyword stream and <= 2 on the negatives, recall as high
as possible): one threshold for all keywords, and one per keyword (coordinate ascent, two
sweeps, from the single one). Prints recall and false alarms on the second half, the part
not used for choosing. A keyword k fires where its smoothed score over its threshold t_k
is the highest of all keywords' and >= 1 (the detector's rule with scores scaled by 1/t_k).
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.detect import Detector  # noqa: E402
from tinykws.keyword_streams import load_stream  # noqa: E402
from tinykws.stream_eval import score_detections  # noqa: E402
from tinykws.triggers import moving_average, pick_detections  # noqa: E402

GRID = np.unique(np.concatenate([np.linspace(0.3, 0.98, 69), 1 - np.geomspace(0.02, 1e-4, 24)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    a = ap.parse_args()
    kw, neg = load_stream(a.cache / f"kw_{a.tag}.wav"), load_stream(a.cache / f"neg_{a.tag}.wav")
    model, ck = load_model(Path(a.run))
    det = Detector(model=model, checkpoint=ck)
    cats, kwm = list(det.categories), np.asarray(det.keywords, bool)
    n = det.trigger.buf.maxlen or 1
    traces = []
    for st in (kw, neg):
        t, s = det.score_trace(st.audio)
        traces.append((st, t, moving_average(s, n)))
    refr = det.config.refractory_ms / 1000

    def score(t_k: np.ndarray, half: int):
        out = []
        for st, times, sm in traces:
            lo, hi = half * st.duration_s / 2, (half + 1) * st.duration_s / 2
            sel = (times >= lo) & (times < hi)
            scale = np.where(kwm, 1.0 / np.maximum(t_k, 1e-9), 1.0)
            dets = pick_detections(times[sel], sm[sel] * scale[None], cats, 1.0, refr, kwm)
            out.append(score_detections(dets, [e for e in st.events if lo <= e.start_s < hi], hi - lo))
        return out

    def recall_if_ok(t_k: np.ndarray) -> float:
        k, g = score(t_k, 0)
        return k.recall if k.fa_per_hour <= 1.0 and g.fa_per_hour <= 2.0 else -1.0

    single = max(GRID, key=lambda g: (recall_if_ok(np.full(len(cats), g)), g))
    t_k = np.full(len(cats), single)
    rows = [("one threshold", t_k.copy())]
    for _ in range(2):
        for k in np.flatnonzero(kwm):
            best, best_r = t_k[k], recall_if_ok(t_k)
            for g in GRID:
                trial = t_k.copy()
                trial[k] = g
                r = recall_if_ok(trial)
                if r > best_r + 1e-9:
                    best, best_r = g, r
            t_k[k] = best
    rows.append(("per keyword", t_k))
    print("| thresholds | calibration half: recall | test half: recall | test half: kw / neg FA/h |")
    for name, t in rows:
        (c, _), (k, g) = score(t, 0), score(t, 1)
        print(f"| {name} | {c.recall:.3f} | {k.recall:.3f} | {k.fa_per_hour:.0f} / {g.fa_per_hour:.0f} |")
    print("per-keyword thresholds:", {cats[k]: round(float(t_k[k]), 4) for k in np.flatnonzero(kwm)})


if __name__ == "__main__":
    main()
