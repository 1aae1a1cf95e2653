"""Other detector statistics on the same score traces (docs/benchmarks.md, "Issue 19,
fourteenth round"): does any rank the keywords above the negative hour's peaks better than
the detector's 300-ms moving average of the probabilities?

    python bench/stream_statistics.py RUN --cache runs/streams --tag syn

Scores RUN once on the keyword stream and the negative hour that `bench/stream_diagnose.py`
cached under --cache (NAME = --tag), then for each statistic (a transform of the per-step
probabilities, fed to the detector's own `pick_detections`) sweeps thresholds and prints
the best recall where the keyword stream has <= 1 false alarm an hour and the negative hour
<= 2 (issue 19's acceptance point), and at <= 1 and <= 6 on the keyword stream alone, each
as (threshold, recall, keyword-stream FA/h, negative-hour FA/h).
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.detect import Detector  # noqa: E402
from tinykws.keyword_streams import load_stream  # noqa: E402
from tinykws.stream_eval import det_thresholds, score_detections  # noqa: E402
from tinykws.triggers import moving_average, pick_detections  # noqa: E402


def rolling_min(s: np.ndarray, n: int) -> np.ndarray:
    """Causal minimum over the last n rows of [S, C] (ones before the start)."""
    return sliding_window_view(np.vstack([np.ones((n - 1, s.shape[1])), s]), n, axis=0).min(-1)


def statistics(s: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Each statistic of the probabilities s [S, C] over n steps (= 300 ms), in [0, 1]."""
    log_p = np.log(np.clip(s, 1e-6, 1))
    log_odds = log_p - np.log(np.clip(1 - s, 1e-6, 1))
    return {
        "mean p (the detector)": moving_average(s, n),
        "mean p over 200 ms": moving_average(s, max(1, round(n * 2 / 3))),
        "geometric mean p": np.exp(moving_average(log_p, n)),
        "mean log-odds": 1 / (1 + np.exp(-moving_average(log_odds, n))),
        "min p over 150 ms": rolling_min(s, max(1, n // 2)),
        "min p over 300 ms": rolling_min(s, n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--tag", required=True)
    a = ap.parse_args()
    kw, neg = load_stream(a.cache / f"kw_{a.tag}.wav"), load_stream(a.cache / f"neg_{a.tag}.wav")
    model, ck = load_model(a.run)
    det = Detector(model=model, checkpoint=ck)
    tk, sk = det.score_trace(kw.audio)
    tn, sn = det.score_trace(neg.audio)
    n = max(1, round(0.3 / det.score_period_s))
    refr, cats, mask = det.config.refractory_ms / 1000, det.categories, det.keywords
    stats_k, stats_n = statistics(sk, n), statistics(sn, n)
    for name in stats_k:
        a_k, a_n = stats_k[name], stats_n[name]
        best = lambda x: np.where(mask[None], x, -1).max(1)  # noqa: E731
        grid = np.unique(np.concatenate([  # the DET sweep's thresholds and the traces' own upper half
            det_thresholds(), np.quantile(np.concatenate([best(a_k), best(a_n)]), np.linspace(0.5, 1, 600))]))
        rows = []
        for thr in grid:
            k = score_detections(pick_detections(tk, a_k, cats, thr, refr, mask), kw.events, kw.duration_s)
            if k.fa_per_hour > 6:
                continue
            g = score_detections(pick_detections(tn, a_n, cats, thr, refr, mask), neg.events, neg.duration_s)
            rows.append((round(float(thr), 4), round(k.recall, 3), k.fa_per_hour, g.fa_per_hour))
        pick = lambda ok: max((r for r in rows if ok(r)), key=lambda r: r[1], default=None)  # noqa: E731
        print(f"{name:22s} kw<=1 & neg<=2: {pick(lambda r: r[2] <= 1 and r[3] <= 2)}  "
              f"kw<=1: {pick(lambda r: r[2] <= 1)}  kw<=6: {pick(lambda r: r[2] <= 6)}", flush=True)


if __name__ == "__main__":
    main()
