"""Diagnose a streaming run (docs/benchmarks.md, "Issue 19"): efficiency, where the keywords
go, score peaks of keywords and negatives, and detector variants on the same traces.

    python bench/stream_diagnose.py RUN --tag NAME --negatives NEGATIVES_DIR \
        [--smooth 300 150] [--holdoff 0 15] [--cache runs/streams]

Builds (once, cached under --cache as NAME) a 30-min keyword stream of RUN's testing split at
10-40 dB and a 60-min stream of the negatives' held-apart part, scores RUN on both and
prints: the clip recall of the stream's keyword clips, per smoothing/hold-off the efficiency
at <= 1 / <= 6 FA/h, the ceiling, the negatives' FA/h there and the recall where the keyword
stream has <= 1 and the negatives <= 2 FA/h (and where both have <= 6); the miss reasons and what the false alarms
fired on (`stream.false_alarm_causes`); then the peak quantiles (smoothed, and each keyword's
raw peak and how many of its score steps in its window are >= 0.9, against the smoothing's length);
last, the stream phase's mining at its end (RUN/train/stream_last.pt, when kept): the share of
the negatives boosted and of their last scores >= 0.3 / 0.5 / 0.9.
A hold-off of D frames fires at the highest smoothed score within D frames of the first
crossing instead of at the crossing.
"""
import argparse, json, os, time
from pathlib import Path
os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np
from tinykws.detector_config import Detection, TIME_EPS_S
from tinykws.triggers import moving_average, pick_detections
from tinykws.detect import Detector
from tinykws.checkpoint import load_model
from tinykws.stream_eval import _EventLookup, det_thresholds
from tinykws.keyword_streams import (
    StreamSpec, build_stream, run_stream_clips, build_negative_stream, save_stream, load_stream,
)
from tinykws.stream_eval import (
    operating_point, score_detections, clip_recall, stream_efficiency, miss_reasons,
    false_alarm_causes,
)

def holdoff(times, smoothed, cats, thr, refr, kw, D):
    """Fire at the max within D frames after the first crossing."""
    masked = np.where(kw[None, :], smoothed, -np.inf)
    best = masked.argmax(1); bs = masked[np.arange(len(best)), best]
    out, last, i, n = [], -np.inf, 0, len(times)
    cross = np.flatnonzero(bs >= thr)
    ci = 0
    while ci < len(cross):
        i = cross[ci]
        if times[i] - last < refr - TIME_EPS_S:
            ci += 1; continue
        j = min(n, i + D + 1)
        k = i + int(np.argmax(bs[i:j]))
        fire = j - 1
        out.append(Detection(float(times[fire]), cats[best[k]], float(bs[k])))
        last = times[fire]
        ci = np.searchsorted(cross, fire + 1)
    return out


def mining_state(path: Path) -> None:
    """The share of negatives the stream phase's last mining round boosted, and their scores."""
    if not path.is_file():
        return
    import torch
    ck = torch.load(path, map_location="cpu", weights_only=False)
    s, w = np.asarray(ck.get("negative_scores", []), float), np.asarray(ck.get("negative_weights", []), float)
    if len(s) and len(w):
        print(f"mining at the end: {len(s)} negatives, boosted {(w > 1).mean():.3f}; last scores >= 0.3 / 0.5 / 0.9: "
              + " / ".join(f"{(s >= t).mean():.3f}" for t in (0.3, 0.5, 0.9)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("run"); ap.add_argument("--tag", required=True)
    ap.add_argument("--negatives", required=True)
    ap.add_argument("--minutes", type=float, default=30); ap.add_argument("--neg-minutes", type=float, default=60)
    ap.add_argument("--mode", default=None); ap.add_argument("--smooth", type=float, nargs="*", default=[300])
    ap.add_argument("--holdoff", type=int, nargs="*", default=[0])
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    a = ap.parse_args()
    cache = a.cache; cache.mkdir(exist_ok=True, parents=True)
    kp, np_ = cache / f"kw_{a.tag}.wav", cache / f"neg_{a.tag}.wav"
    if not kp.is_file():
        kws, others, noise, data_dir = run_stream_clips(Path(a.run), "testing")
        save_stream(build_stream(kws, others, noise, StreamSpec(minutes=a.minutes, snrs_db=(40.0, 30.0, 20.0, 10.0), seed=0), root=data_dir), kp)
    if not np_.is_file():
        save_stream(build_negative_stream(a.negatives, minutes=a.neg_minutes, snrs_db=(40.0, 30.0, 20.0, 10.0), seed=2), np_)
    kw, neg = load_stream(kp), load_stream(np_)
    model, ck = load_model(Path(a.run))
    t = time.time()
    det = Detector(model=model, checkpoint=ck, mode=a.mode)
    tk, sk = det.score_trace(kw.audio); tn, sn = det.score_trace(neg.audio)
    print(f"# {a.run} mode {det.mode}: kw {kw.duration_s/60:.0f} min {kw.n_keywords} keywords; neg {neg.duration_s/60:.0f} min; traces {time.time()-t:.0f} s")
    clip = clip_recall(det, kw)
    print(f"clip recall {clip['recall']:.3f} ({clip['correct']}/{clip['n']})")
    for sm in a.smooth:
        for D in a.holdoff:
            n = max(1, round(sm / (1000 * det.score_period_s)))
            smk, smn = moving_average(sk, n), moving_average(sn, n)
            refr = det.config.refractory_ms / 1000
            def dets(times, sm_, thr):
                if D == 0:
                    return pick_detections(times, sm_, det.categories, thr, refr, det.keywords)
                return holdoff(times, sm_, det.categories, thr, refr, det.keywords, D)
            curve, ncurve = [], []
            for thr in det_thresholds():
                curve.append(score_detections(dets(tk, smk, thr), kw.events, kw.duration_s, threshold=thr))
                ncurve.append(score_detections(dets(tn, smn, thr), neg.events, neg.duration_s, threshold=thr))
            eff = stream_efficiency(curve, clip)
            line = f"smooth {sm:g} hold {D}: eff@1 {eff['1']:.3f} eff@6 {eff['6']:.3f} ceil {eff['ceiling']:.3f}"
            for lim in (1.0, 6.0):
                op = operating_point(curve, lim)
                if op:
                    nfa = ncurve[[c.threshold for c in curve].index(op.threshold)].fa_per_hour
                    line += f" | kw<={lim:g}: {op.recall:.3f} thr {op.threshold:.4f} negFA/h {nfa:.1f}"
            # pooled: kw recall at threshold where both kw FA and neg FA <= 1/h
            both = [c for c, nc in zip(curve, ncurve) if c.fa_per_hour <= 1 and nc.fa_per_hour <= 2]
            if both:
                b = max(both, key=lambda c: c.recall); line += f" | both(kw<=1,neg<=2): {b.recall:.3f} thr {b.threshold:.4f}"
            # the scarce regime's acceptance point: <= 6 false alarms an hour on both streams
            both6 = [c for c, nc in zip(curve, ncurve) if c.fa_per_hour <= 6 and nc.fa_per_hour <= 6]
            if both6:
                b = max(both6, key=lambda c: c.recall); line += f" | both(kw<=6,neg<=6): {b.recall:.3f} thr {b.threshold:.4f}"
            print(line)
            if D == 0 and sm == a.smooth[0]:
                for lim in (1.0, 6.0):
                    op = operating_point(curve, lim)
                    if op: print(f"  miss reasons at <= {lim:g} FA/h (thr {op.threshold:.4f}):", miss_reasons(det, tk, sk, kw, op.threshold))
                print("  miss reasons at 0.5:", miss_reasons(det, tk, sk, kw, 0.5))
                print("  miss reasons at 0.9:", miss_reasons(det, tk, sk, kw, 0.9))
                # the negative hour's false alarms per kind of item (common word, near-miss,
                # phrase), when the negatives folder says which item is which
                manifest = Path(a.negatives) / "negatives.json"
                if manifest.is_file():
                    kind = {i["folder"]: i["kind"] for i in json.loads(manifest.read_text())["items"]}
                    n_kind = {}
                    for e in neg.events:
                        n_kind[kind.get(e.word, "background")] = n_kind.get(kind.get(e.word, "background"), 0) + 1
                    print("  negative hour items by kind:", n_kind)
                    for thr in (0.9, 0.95, 0.98):
                        by = {}
                        for (k, w), c in false_alarm_causes(dets(tn, smn, thr), neg.events).items():
                            by[kind.get(w, "background")] = by.get(kind.get(w, "background"), 0) + c
                        print(f"  negative hour FA/h by kind at {thr:g}:",
                              {k: round(v / (neg.duration_s / 3600), 1) for k, v in by.items()})
                # what the false alarms fired on: (keyword fired, word under it) -> count
                for thr in (0.5, 0.8):
                    for name, st, tt, ss in (("kw stream", kw, tk, smk), ("neg hour", neg, tn, smn)):
                        fa = false_alarm_causes(dets(tt, ss, thr), st.events)
                        print(f"  false alarms at {thr:g} on the {name} ({sum(fa.values())}):",
                              ", ".join(f"{k} on {w!r} x{n}" for (k, w), n in list(fa.items())[:10]))
    smooth = det.trigger.buf.maxlen or 1
    cats, mask = det.categories, det.keywords
    def peaks(stream, times, scores):
        sm = moving_average(scores, smooth)
        out = []
        for e in stream.events:
            w = (times >= e.start_s) & (times <= e.start_s + 1.75)
            m = np.where(mask[None], sm[w], -1)
            if e.is_keyword:
                c = cats.index(e.label)
                own = sm[w, c].max()
                other = np.delete(m, c, axis=1).max()
                out.append(("kw", e.word, own, other, e.snr_db))
            else:
                out.append(("neg", e.word, m.max(), 0, e.snr_db))
        return out
    pk = peaks(kw, tk, sk)
    own = np.array([p[2] for p in pk if p[0] == "kw"]); oth = np.array([p[3] for p in pk if p[0] == "kw"])
    negk = np.array([p[2] for p in pk if p[0] == "neg"])
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    print("kw stream: keyword own-class peak quantiles", np.round(np.quantile(own, q), 3), "n", len(own))
    print("kw stream: keyword other-kw peak quantiles", np.round(np.quantile(oth, q), 3))
    print("kw stream: other-word peak quantiles", np.round(np.quantile(negk, q), 3), "max", negk.max().round(3), "n", len(negk))
    print("frac keywords own peak >= .9/.95/.98:", [(own >= t).mean().round(3) for t in (0.9, 0.95, 0.98)])
    print("top other-word peaks:", sorted([(round(p[2], 3), p[1]) for p in pk if p[0] == "neg"])[-8:])
    print("top other-kw peaks in keywords:", sorted([(round(p[3], 3), p[1]) for p in pk if p[0] == "kw"])[-8:])
    # does the smoothing keep what the raw scores know? each keyword's own class, raw and
    # smoothed, and how many of its score steps in its window are >= 0.9 (the smoothing averages `smooth`)
    raw_pk, steps = [], []
    for e in kw.events:
        if e.is_keyword:
            w = (tk >= e.start_s) & (tk <= e.start_s + 1.75)
            r = sk[w, cats.index(e.label)]
            raw_pk.append(r.max()); steps.append(int((r >= 0.9).sum()))
    raw_pk, steps = np.array(raw_pk), np.array(steps)
    print(f"kw stream: own-class raw peak quantiles {np.round(np.quantile(raw_pk, q), 3)}; steps >= 0.9 "
          f"quantiles {np.quantile(steps, q)} (smoothing {smooth} steps)")
    low = own < 0.97
    print(f"kw stream: smoothed peak < 0.97: {int(low.sum())} of {len(own)}, of which raw peak >= 0.98: "
          f"{int((low & (raw_pk >= 0.98)).sum())}")
    pn = peaks(neg, tn, sn)
    nn = np.array([p[2] for p in pn])
    print("neg hour: peak quantiles", np.round(np.quantile(nn, [0.5, 0.9, 0.99, 0.999]), 3), "n", len(nn))
    print("neg hour top:", sorted([(round(p[2], 3), p[1]) for p in pn])[-10:])
    # does the noise decide? each stream's words by their SNR, in 10-dB bins
    for name, ps in (("kw stream keywords' own peak", [p for p in pk if p[0] == "kw"]), ("neg hour peak", pn)):
        bins = np.round(np.array([p[4] for p in ps]) / 10) * 10
        print(f"by SNR, {name} (dB: n, median, share >= 0.9 / 0.95):", "; ".join(
            f"{b:g}: {int((bins == b).sum())}, {np.median(v):.3f}, {(v >= 0.9).mean():.3f} / {(v >= 0.95).mean():.3f}"
            for b in np.unique(bins) for v in [np.array([p[2] for p, bb in zip(ps, bins) if bb == b])]))
    # background-only peaks (between events)
    sm = moving_average(sk, smooth); m = np.where(mask[None], sm, -1).max(1)
    under = _EventLookup(kw.events, 0.75)
    bg = np.array([m[i] for i in range(0, len(tk), 5) if under(tk[i]) is None])
    print("kw stream background max", bg.max().round(3))
    mining_state(Path(a.run) / "train" / "stream_last.pt")

