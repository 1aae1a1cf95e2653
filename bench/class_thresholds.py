"""Per-keyword thresholds calibrated on validation audio, against one threshold, on the testing
streams (issue 19: "per-keyword thresholds"; docs/benchmarks.md, "Issue 19, thirtieth round").

    python bench/class_thresholds.py RUN [RUN ...] --tag NAME [--cache runs/streams] [--lam 0,0.5,1]
    python bench/class_thresholds.py RUN --tag NAME --fa-at 0.97

The streams are the ones `bench/stream_diagnose.py` and `bench/operating_point.py` cache as
NAME under --cache (testing: the 30-minute keyword stream and the held-apart negative hour;
validation: `sel_val_kw_NAME` and `sel_val_neg_NAME`, the audio the pipeline's operating point
is chosen on); this script only reads them.

Calibration, on validation audio only: for each keyword k, its *impostor* scores are its
smoothed score wherever k is not being said (both validation streams, each k event's window
masked), as 1-second block maxima that are local maxima among the blocks; q_k is the third
highest (about 2 an hour). The thresholds
form one family per `lam`:

    logit t_k = delta + lam * (logit q_k - mean over k of logit q_k)

lam 0 is the detector's one threshold; lam 1 moves each keyword's threshold as far as its
impostors' tail lies from the others'. A keyword k fires where its smoothed score over t_k is
the highest of all keywords' and >= 1 (`bench/stream_thresholds.py`'s rule).

For each lam the script prints, on the testing streams: the acceptance point (the best recall
over delta with <= 1 false alarm an hour on the keyword stream and <= 2 on the negative hour;
`--kw-max`/`--neg-max` for other limits), and what the delta chosen on validation (the same
rule on the validation streams, as `choose_operating_point` chooses) gets there.

`--fa-at T` prints instead what fires at the one threshold T on each of the four streams:
every false alarm's word, and when the detections come (seconds after their clip's start,
quantiles) for the keywords' own hits and for the rest.
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.detect import Detector  # noqa: E402
from tinykws.keyword_streams import load_stream  # noqa: E402
from tinykws.stream_eval import false_alarm_sources, score_detections  # noqa: E402
from tinykws.triggers import moving_average, pick_detections  # noqa: E402

DELTAS = np.round(np.arange(-4.0, 9.0001, 0.05), 4)  # logit offsets swept
EVENT_S = 1.75  # an event's window: its 1-s clip and the 0.75-s match tolerance


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Scored:
    """One stream's smoothed trace `[S, C]` and its events."""

    def __init__(self, det: Detector, path: Path) -> None:
        self.stream = load_stream(path)
        self.times, s = det.score_trace(self.stream.audio)
        self.smoothed = moving_average(s, det.trigger.buf.maxlen or 1)

    def impostor_blocks(self, k: int, label: str) -> np.ndarray:
        """Keyword k's impostor peaks: the 1-second block maxima of its smoothed score outside
        k's own events that are local maxima among the blocks (a bump across a block edge
        counts once)."""
        own = np.zeros(len(self.times), bool)
        for e in self.stream.events:
            if e.label == label:
                own |= (self.times >= e.start_s) & (self.times < e.start_s + EVENT_S)
        sc = np.where(own, 0.0, self.smoothed[:, k])
        blocks = np.floor(self.times).astype(np.int64)
        b = np.zeros(blocks.max() + 1)
        np.maximum.at(b, blocks, sc)
        padded = np.concatenate([[-1.0], b, [-1.0]])
        return b[(b >= padded[:-2]) & (b > padded[2:])]

    def score(self, t_k: np.ndarray, cats: list, kwm: np.ndarray, refractory_s: float):
        scale = np.where(kwm, 1.0 / np.maximum(t_k, 1e-9), 1.0)
        dets = pick_detections(self.times, self.smoothed * scale[None], cats, 1.0, refractory_s, kwm)
        return score_detections(dets, self.stream.events, self.stream.duration_s)


def sweep(kw: Scored, neg: Scored, offsets: np.ndarray, cats, kwm, refr) -> list[tuple]:
    """(delta, recall, kw FA/h, neg FA/h) for every delta of DELTAS."""
    out = []
    for d in DELTAS:
        t_k = 1 / (1 + np.exp(-(d + offsets)))
        k, g = kw.score(t_k, cats, kwm, refr), neg.score(t_k, cats, kwm, refr)
        out.append((float(d), k.recall, k.fa_per_hour, g.fa_per_hour))
    return out


def best_within(rows: list[tuple], kw_max: float, neg_max: float) -> tuple | None:
    """The row with the best recall within both limits; on a tie the fewest false alarms,
    then the lowest delta (`choose_operating_point`'s order)."""
    ok = [r for r in rows if r[2] <= kw_max and r[3] <= neg_max]
    return max(ok, key=lambda r: (r[1], -(r[2] + r[3]), -r[0])) if ok else None


def firing(det: Detector, streams: dict, t: float) -> None:
    """The false alarms at threshold t on each stream, and the detections' times in their clips."""
    cats, kwm = list(det.categories), np.asarray(det.keywords, bool)
    refr = det.config.refractory_ms / 1000
    for name, s in streams.items():
        dets = pick_detections(s.times, s.smoothed, cats, t, refr, kwm)
        fa = false_alarm_sources(dets, s.stream.events)
        words = sorted(f"{f['fired']} on {f['word']!r}" for f in fa)
        ev = sorted(s.stream.events, key=lambda e: e.start_s)
        starts = np.array([e.start_s for e in ev])
        own, other = [], []
        for d in dets:
            i = int(np.searchsorted(starts, d.time_s, side="right")) - 1
            if i >= 0 and d.time_s - ev[i].start_s <= EVENT_S:
                (own if ev[i].label == d.label else other).append(d.time_s - ev[i].start_s)
        q = lambda a: np.round(np.percentile(a, [10, 50, 90]), 2).tolist() if a else "-"  # noqa: E731
        print(f"{name} ({s.stream.duration_s / 60:.0f} min) at {t}: {len(fa)} false alarms: {', '.join(words)}")
        print(f"  s after the clip's start, 10/50/90 %: own keyword's hits ({len(own)}) {q(own)}; "
              f"other detections in a clip ({len(other)}) {q(other)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    ap.add_argument("--lam", default="0,0.5,1")
    ap.add_argument("--kw-max", type=float, default=1.0)
    ap.add_argument("--neg-max", type=float, default=2.0)
    ap.add_argument("--fa-at", type=float, default=None)
    a = ap.parse_args()
    lams = [float(x) for x in a.lam.split(",")]
    if a.fa_at is not None:
        for run in a.runs:
            det = Detector(run)
            print(f"# {run}")
            firing(det, {n: Scored(det, a.cache / f"{n}_{a.tag}.wav")
                         for n in ("sel_val_kw", "sel_val_neg", "kw", "neg")}, a.fa_at)
        return
    print("| run | lam | testing acceptance point: recall (delta) | delta chosen on validation: "
          "testing recall / kw FA/h / neg FA/h | thresholds at that delta |")
    print("| --- | ---: | ---: | ---: | --- |")
    for run in a.runs:
        det = Detector(run)
        cats, kwm = list(det.categories), np.asarray(det.keywords, bool)
        refr = det.config.refractory_ms / 1000
        c = a.cache
        val_kw, val_neg = Scored(det, c / f"sel_val_kw_{a.tag}.wav"), Scored(det, c / f"sel_val_neg_{a.tag}.wav")
        kw, neg = Scored(det, c / f"kw_{a.tag}.wav"), Scored(det, c / f"neg_{a.tag}.wav")
        q = np.ones(len(cats))
        for k in np.flatnonzero(kwm):
            imp = np.concatenate([s.impostor_blocks(k, cats[k]) for s in (val_kw, val_neg)])
            q[k] = np.sort(imp)[-3]
        lq = logit(q)
        centred = np.where(kwm, lq - lq[kwm].mean(), 0.0)
        for lam in lams:
            off = lam * centred
            test = sweep(kw, neg, off, cats, kwm, refr)
            val = sweep(val_kw, val_neg, off, cats, kwm, refr)
            acc, pick = best_within(test, a.kw_max, a.neg_max), best_within(val, a.kw_max, a.neg_max)
            at = next(r for r in test if pick is not None and r[0] == pick[0]) if pick else None
            t_k = 1 / (1 + np.exp(-((pick[0] if pick else 0.0) + off)))
            acc_s = f"{acc[1]:.3f} ({acc[0]:+.2f})" if acc else "none"
            at_s = f"{at[1]:.3f} / {at[2]:.0f} / {at[3]:.0f} ({at[0]:+.2f})" if at else "none within the limits"
            ts = " ".join(f"{cats[k]} {t_k[k]:.4f}" for k in np.flatnonzero(kwm))
            print(f"| {Path(run).name} | {lam:g} | {acc_s} | {at_s} | {ts} |", flush=True)


if __name__ == "__main__":
    main()
