"""Does the stream's state cost the detector anything? (docs/benchmarks.md, "Issue 19, sixth round")

    python bench/stream_oracle.py RUN --tag syn --cache runs/streams [--pre 0.3 1 3]

On the two streams `bench/stream_diagnose.py` cached under --cache as TAG (the 30-minute
keyword stream and the negative hour), each word's peak score (300-ms smoothed, as the
detector sees it: a keyword's own class, a negative's best keyword) is measured twice:
- in the stream, the state carried from the start, as the device runs;
- from a zero state `pre` seconds before the word (an oracle: the device cannot know when a
  word comes), all words of a stream in one batch.
For each it prints the keyword peaks' quantiles and the recall at the threshold where the
negative hour has 2 false words (~2 an hour), and where the keyword stream's other words
have none too. If the oracle's recall is no better, the stream loses nothing to its state:
the limit is how well the classifier itself tells keywords from unseen words.
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.detect import Detector  # noqa: E402
from tinykws.features import frames_from_stream  # noqa: E402
from tinykws.keyword_streams import Stream, load_stream  # noqa: E402
from tinykws.triggers import moving_average  # noqa: E402

SMOOTH = 30  # frames: the detector's 300 ms
WINDOW_S = 1.75  # a word's peak is looked for this long from its start (as stream_diagnose)


def _peak(smoothed: np.ndarray, lo: int, hi: int, label: str, categories: list, mask: np.ndarray) -> float:
    """A keyword's best own score, or a negative's best keyword score, in frames [lo, hi)."""
    w = smoothed[max(lo, 0):hi]
    if label in categories and mask[categories.index(label)]:
        return float(w[:, categories.index(label)].max())
    return float(np.where(mask[None], w, -1).max())


def peaks(det: Detector, stream: Stream, feats: np.ndarray, pre_s: float | None) -> np.ndarray:
    """Every event's peak: in the stream (pre_s None) or from a zero state pre_s before it.
    `feats`: the stream's frames `[T, F]` (`frames_from_stream`)."""
    p, model = det.params, det.model
    cats, mask = list(det.categories), np.asarray(det.keywords)
    fps = p.sample_rate / p.hop
    first = [int(e.start_s * fps) - p.first_block + 1 for e in stream.events]  # frame at each start
    win = int(WINDOW_S * fps)
    with torch.no_grad():
        if pre_s is None:
            logits, _ = model.forward_sequence(torch.from_numpy(feats)[None])
            sm = moving_average(torch.softmax(logits[0], -1).double().numpy(), SMOOTH)
            return np.array([_peak(sm, f, f + win, e.label, cats, mask) for f, e in zip(first, stream.events)])
        pf = int(pre_s * fps)
        out = []
        for i in range(0, len(first), 256):
            segs = np.zeros((len(first[i:i + 256]), pf + win, feats.shape[1]), np.float32)  # [B, T, F]
            for j, f in enumerate(first[i:i + 256]):
                src = feats[max(f - pf, 0):f + win]
                off = max(0, pf - f)  # a word within `pre` of the stream's start: zeros first
                segs[j, off:off + len(src)] = src
            logits, _ = model.forward_sequence(torch.from_numpy(segs))
            prob = torch.softmax(logits, -1).double().numpy()
            for j, e in enumerate(stream.events[i:i + 256]):
                out.append(_peak(moving_average(prob[j], SMOOTH), pf, pf + win, e.label, cats, mask))
        return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--tag", required=True, help="the streams' name in --cache (stream_diagnose --tag)")
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    ap.add_argument("--pre", type=float, nargs="*", default=[0.3, 1.0, 3.0], help="seconds of context before a word")
    a = ap.parse_args()
    torch.set_num_threads(1)
    kw, neg = load_stream(a.cache / f"kw_{a.tag}.wav"), load_stream(a.cache / f"neg_{a.tag}.wav")
    model, ck = load_model(a.run)
    det = Detector(model=model, checkpoint=ck)
    is_kw = np.array([e.is_keyword for e in kw.events])
    print(f"# {a.run}: {is_kw.sum()} keywords, {len(kw.events) - is_kw.sum()} other words; "
          f"negative hour {len(neg.events)} items")
    print("state                 | keyword peak q10 / q25 / q50 | >= 0.9 | neg-hour peak q99 | 3rd neg peak: recall"
          " | + kw-stream others: recall")
    fk, fn = (np.asarray(frames_from_stream(s.audio, det.params), np.float32) for s in (kw, neg))
    for pre in [None, *a.pre]:
        kp, npk = peaks(det, kw, fk, pre), peaks(det, neg, fn, pre)
        own, others = kp[is_kw], kp[~is_kw]
        thr = np.sort(npk)[-3]  # 2 negatives above it in the hour
        both = max(thr, others.max())
        q = np.quantile(own, [0.1, 0.25, 0.5])
        name = "in the stream" if pre is None else f"zero {pre:g} s before"
        print(f"{name:21s} | {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f} | {np.mean(own >= 0.9):.3f}"
              f" | {np.quantile(npk, 0.99):.3f} | {thr:.3f}: {np.mean(own > thr):.3f}"
              f" | {both:.3f}: {np.mean(own > both):.3f}", flush=True)


if __name__ == "__main__":
    main()
