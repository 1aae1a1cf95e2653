"""Is the stream model's loss a matter of fit or of generalisation? (docs/benchmarks.md,
"Issue 19, twentieth round").

    python bench/stream_fit.py RUN [RUN ...] --tag NAME --negatives NEGATIVES_DIR \
        [--cache runs/streams] [--ensemble] [--soup OUT]
    python bench/stream_fit.py RUN --own-streams FEATURES_DIR [--cfg JSON]

For each run, the acceptance points (recall where the keyword stream has <= 1 and the
negative hour <= 2 false alarms an hour; and <= 6 / <= 6) on two pairs of streams built the
same way:
- training: a 30-minute keyword stream of RUN's *training* clips and an hour of the
  negatives' *training* part (the speech the stream phase learnt from), cached as
  `kw_train_NAME.wav` / `neg_train_NAME.wav`;
- testing: the cached `kw_NAME.wav` / `neg_NAME.wav` of `bench/stream_diagnose.py` (the
  testing voices and the held-apart hour).
A model that reaches the target on training streams and not on testing ones generalises
badly; one that misses it on both does not fit.

With several runs trained from one clip model:
- `--ensemble` also scores the mean of their per-step probabilities (an output ensemble,
  the best a distilled single model could hope to copy);
- `--soup OUT` averages their weights into OUT/train/best.pt (a "model soup": one model,
  the device's cost) and scores it.

`--own-streams FEATURES_DIR` instead scores RUN on the stream phase's own streams
(`StreamMaker` in log-mel space, from FEATURES_DIR's training clips and negatives, the run's
stream config with `--cfg` fields changed): 32 rows of 90 s, each word's peak as the
detector's 300-ms mean (a keyword's own class over its span and 200 ms after, a negative's
best keyword), so the task it trained on can be set beside the streams it is measured on.
"""
import argparse
import json
import math
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np
import torch

from tinykws.checkpoint import load_model
from tinykws.detect import Detector
from tinykws.keyword_streams import (
    StreamSpec, build_negative_stream, build_stream, load_stream, run_stream_clips, save_stream,
)
from tinykws.labels import NON_KEYWORDS
from tinykws.run import read_features, split_file
from tinykws.stream_clips import clip_pool
from tinykws.stream_eval import clip_recall, det_curve
from tinykws.stream_losses import causal_mean
from tinykws.stream_maker import StreamMaker
from tinykws.stream_training import StreamTrainConfig
from tinykws.triggers import moving_average

SNRS_DB = (40.0, 30.0, 20.0, 10.0)  # as bench/stream_diagnose.py
LIMITS = {"kw<=1,neg<=2": (1.0, 2.0), "kw<=6,neg<=6": (6.0, 6.0)}


def training_streams(run: Path, negatives: Path, cache: Path, tag: str):
    """The training pair, built once (the same seeds and SNRs as stream_diagnose's testing pair)."""
    kp, npath = cache / f"kw_train_{tag}.wav", cache / f"neg_train_{tag}.wav"
    if not kp.is_file():
        kws, others, noise, data_dir = run_stream_clips(run, "training")
        save_stream(build_stream(kws, others, noise, StreamSpec(minutes=30, snrs_db=SNRS_DB, seed=0), root=data_dir), kp)
    if not npath.is_file():
        save_stream(build_negative_stream(negatives, minutes=60, snrs_db=SNRS_DB, seed=2, split="training"), npath)
    return load_stream(kp), load_stream(npath)


def acceptance(det: Detector, kw, neg, tk: np.ndarray, sk: np.ndarray, tn: np.ndarray, sn: np.ndarray) -> dict:
    """Best recall (and its threshold) under each of LIMITS, from step times [T] and
    per-step scores [T, C] of the keyword stream (tk, sk) and the negative hour (tn, sn)."""
    best = {}
    for c, nc in zip(det_curve(det, tk, sk, kw), det_curve(det, tn, sn, neg)):  # the pipeline's sweep
        for name, (a, b) in LIMITS.items():
            if c.fa_per_hour <= a and nc.fa_per_hour <= b and c.recall > best.get(name, (0.0, 0.0))[0]:
                best[name] = (c.recall, c.threshold)
    n = max(1, round(det.config.smoothing_ms / (1000 * det.score_period_s)))
    smk, smn = moving_average(sk, n), moving_average(sn, n)  # the detector's smoothing, for the peaks
    own = []
    for e in kw.events:
        if e.is_keyword:
            w = (tk >= e.start_s) & (tk <= e.start_s + 1.75)
            own.append(smk[w, det.categories.index(e.label)].max())
    kws = [c for c, k in zip(det.categories, det.keywords) if k]
    peaks, top = [], []
    for e in neg.events:
        sm = smn[(tn >= e.start_s) & (tn <= e.start_s + 1.75)][:, det.keywords]
        peaks.append(sm.max())
        top.append((float(sm.max()), e.word, kws[int(sm.max(0).argmax())]))
    return {"best": best, "kw_q": np.quantile(own, [0.1, 0.25, 0.5]), "neg_q": np.quantile(peaks, [0.99, 0.999]),
            "top": sorted(top, reverse=True)[:8]}


def report(name: str, split: str, res: dict, clip: float | None) -> None:
    pts = " | ".join(f"{k}: {v[0]:.3f} (thr {v[1]:.4f})" if v else f"{k}: -"
                     for k, v in ((k, res["best"].get(k)) for k in LIMITS))
    cr = f"clip recall {clip:.3f} " if clip is not None else ""
    print(f"{name} [{split}] {cr}keyword peak q10/q25/q50 {np.round(res['kw_q'], 3)} "
          f"neg peak q99/q99.9 {np.round(res['neg_q'], 3)} | {pts}", flush=True)
    print("  the negative hour's highest items: " + ", ".join(f"{w!r} as {k} {p:.3f}" for p, w, k in res["top"]), flush=True)


def soup(runs: list[Path], out: Path) -> Path:
    """OUT/train/best.pt: the first run's checkpoint with every float tensor averaged over runs."""
    cks = [torch.load(r / "train" / "best.pt", weights_only=False, map_location="cpu") for r in runs]
    sd = {k: (sum(c["state_dict"][k] for c in cks) / len(cks)) if v.is_floating_point() else v
          for k, v in cks[0]["state_dict"].items()}
    (out / "train").mkdir(parents=True, exist_ok=True)
    for name in ("features", "lists"):  # what load_model and run_stream_clips read
        if not (out / name).exists():
            (out / name).symlink_to((runs[0] / name).resolve())
    torch.save({**cks[0], "state_dict": sd}, out / "train" / "best.pt")
    return out


def own_streams(run: Path, features: Path, overrides: dict, chunks: int = 45) -> None:
    """Word peaks on the stream phase's own training streams (see the module's docstring)."""
    model, ck = load_model(run)
    model.eval()
    # rows laid in log-mel space, as this measure has always been made (a wave_share of the
    # run's own is dropped: the twentieth round compared these streams with waveform ones)
    cfg = StreamTrainConfig.from_dict({**ck.stream_config, "wave_share": 0.0, **overrides})
    split = read_features(split_file(features, "training"))
    pool, n_real = clip_pool(split, None, np.load(features / "negatives.npz")["features"], math.log(10) / 10)
    maker = StreamMaker(pool, cfg, np.random.default_rng(123), n_real=n_real)
    kw = torch.tensor([c not in NON_KEYWORDS for c in split.categories])
    state, parts = model.init_state(cfg.batch), []
    with torch.no_grad():
        for _ in range(chunks):  # 45 chunks of 2 s: 90 s a row
            x, target, _, region, rclass = maker.next_chunk()
            logits, state = model.forward_sequence(x, state)
            parts.append((torch.softmax(logits, -1), region, rclass, target))
    p, region, rclass, target = (torch.cat(t, 1) for t in zip(*parts))  # whole rows [B, T, ...]
    smooth = causal_mean(p, 30)  # the detector's 300 ms
    peaks: dict[str, list] = {"kw": [], "kw_whole": [], "neg": []}
    for b in range(p.shape[0]):
        r = region[b].numpy()
        ids = np.unique(r)
        for k in ids[ids % 2 == 1][1:-1]:  # whole words: not a row's first or last
            idx = np.flatnonzero(r == k)
            lo, hi = idx[0], idx[-1] + 1
            later = np.flatnonzero(r[hi:] > k + 1)
            hi = min(hi + 20, hi + later[0] if len(later) else len(r))  # the mean's lag, not into the next word
            c = int(rclass[b, lo])
            if kw[c]:
                peaks["kw"].append(float(smooth[b, lo:hi, c].max()))
                peaks["kw_whole"].append(int((target[b, lo:hi] == c).sum()) >= cfg.target_frames)
            else:
                peaks["neg"].append(float(smooth[b, lo:hi][:, kw].max()))
    k, whole, n = np.array(peaks["kw"]), np.array(peaks["kw_whole"]), np.array(peaks["neg"])
    print(f"{run} on its own streams ({json.dumps(overrides) if overrides else 'its stream config'}): "
          f"{len(k)} keywords, {len(n)} negatives")
    print(f"  keyword peak q10/q25/q50 {np.round(np.quantile(k, [0.1, 0.25, 0.5]), 3)}; "
          f"{whole.mean():.2f} with their whole target window, q50 {np.quantile(k[whole], 0.5):.3f}")
    print(f"  negative peak q50/q90/q99/q99.9 {np.round(np.quantile(n, [0.5, 0.9, 0.99, 0.999]), 3)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--tag")
    ap.add_argument("--negatives", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    ap.add_argument("--ensemble", action="store_true")
    ap.add_argument("--soup", type=Path)
    ap.add_argument("--own-streams", type=Path, metavar="FEATURES_DIR")
    ap.add_argument("--cfg", type=json.loads, default={}, help="stream config fields for --own-streams")
    a = ap.parse_args()
    if a.own_streams:
        for run in a.runs:
            own_streams(run, a.own_streams, a.cfg)
        return
    if not (a.tag and a.negatives):
        ap.error("--tag and --negatives are needed (unless --own-streams)")
    pairs = {"training": training_streams(a.runs[0], a.negatives, a.cache, a.tag),
             "testing": (load_stream(a.cache / f"kw_{a.tag}.wav"), load_stream(a.cache / f"neg_{a.tag}.wav"))}
    runs = list(a.runs) + ([soup(a.runs, a.soup)] if a.soup else [])
    traces = {split: [] for split in pairs}
    for run in runs:
        model, ck = load_model(run)
        det = Detector(model=model, checkpoint=ck)
        for split, (kw, neg) in pairs.items():
            tk, sk = det.score_trace(kw.audio)
            tn, sn = det.score_trace(neg.audio)
            if run in a.runs:
                traces[split].append((tk, sk, tn, sn))
            report(str(run) + (" (soup)" if run not in a.runs else ""), split,
                   acceptance(det, kw, neg, tk, sk, tn, sn), clip_recall(det, kw)["recall"])
    if a.ensemble and len(a.runs) > 1:
        for split, (kw, neg) in pairs.items():
            # runs from one clip model share its detector config and step: the last det, the
            # first run's times
            tk, _, tn, _ = traces[split][0]
            sk = np.mean([t[1] for t in traces[split]], axis=0)
            sn = np.mean([t[3] for t in traces[split]], axis=0)
            report(f"mean of {len(a.runs)} runs' probabilities", split, acceptance(det, kw, neg, tk, sk, tn, sn), None)


if __name__ == "__main__":
    main()
