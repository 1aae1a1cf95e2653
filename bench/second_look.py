"""What the second look gives where the pipeline puts it: t1 chosen on validation audio, scored
on the testing streams (docs/benchmarks.md, "Issue 19, twenty-fifth round").

    python bench/second_look.py RUN [RUN ...] --tag NAME --negatives NEGATIVES_DIR --verifier CKPT
        [--cache runs/streams] [--t2 0.5,0.8,0.9,0.95] [--delay-ms 200]

For each RUN (a finished stream phase) and each verifier threshold t2 (and without a second
look), the detector is the product's (`tinykws.detect.Detector` with
`DetectorConfig.second_look` = t2 and the verifier CKPT, e.g. `tinykws train-verifier`'s
RUN/train/verifier.pt). Its first-stage threshold is chosen the way the pipeline's operating
point stage chooses it (`choose_operating_point`: <= 1 false alarm an hour on a 10-minute
stream of the validation split, <= 2 on an hour of the negatives' validation speech), and the
script prints that threshold's recall and false alarms on the testing streams (the 30-minute
keyword stream and the negative hour `bench/stream_diagnose.py` caches as NAME), beside the
testing acceptance point (the best recall with <= 1 and <= 2 there; `--kw-max 6 --neg-max 6`
for the scarce regime's). It also picks t2 itself on validation (the setting whose stored point
has the best validation recall within the limits) and prints what that gives on testing. Streams are built and cached as `bench/stream_select.py` builds them
(`sel_val_*` for validation).
"""
import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.checkpoint import load_model  # noqa: E402
from tinykws.detect import Detector  # noqa: E402
from tinykws.detector_config import choose_operating_point  # noqa: E402
from tinykws.stream_eval import det_curve, trace  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cached_streams import testing_streams, validation_streams  # noqa: E402  (bench/cached_streams.py)


def streams(a, run: Path) -> dict:
    """The testing and validation streams ("kw", "neg", "val_kw", "val_neg")."""
    (kw, neg), (val_kw, val_neg) = (testing_streams(run, a.negatives, a.cache, a.tag),
                                    validation_streams(run, a.negatives, a.cache, a.tag))
    return {"kw": kw, "neg": neg, "val_kw": val_kw, "val_neg": val_neg}


def rows_of(a, run: Path, verifier, t2s: list) -> list[tuple]:
    """(t2, stored threshold, testing recall / kw FA/h / neg FA/h there, acceptance recall)."""
    model, ck = load_model(run)
    base = Detector(run)
    st = streams(a, run)
    probe = Detector(model=model, checkpoint=ck, verifier=verifier,
                     config=replace(base.config, second_look=0.0, second_look_delay_ms=a.delay_ms))
    traces = {k: trace(probe, s.audio) for k, s in st.items()}  # first stage once, with features
    out = []
    for t2 in t2s:
        det = Detector(model=model, checkpoint=ck, verifier=verifier,
                       config=replace(base.config, second_look=t2, second_look_delay_ms=a.delay_ms))
        c = {k: det_curve(det, *traces[k][:2], st[k], frames=traces[k][2]) for k in st}
        op = choose_operating_point(c["val_kw"], 1.0, negative_curve=c["val_neg"],
                                    negative_target_fa_per_hour=2.0)
        i = [p.threshold for p in c["kw"]].index(op.threshold)
        ok = [p.recall for p, n in zip(c["kw"], c["neg"])
              if p.fa_per_hour <= a.kw_max and n.fa_per_hour <= a.neg_max]
        out.append((t2, op.threshold, c["kw"][i].recall, c["kw"][i].fa_per_hour, c["neg"][i].fa_per_hour,
                    max(ok, default=0.0), op.recall if op.met else -1.0))
    return out


def chosen_on_validation(rows: list[tuple]) -> tuple:
    """The row whose stored point has the best validation recall within the limits (t2
    chosen on validation as t1 is); on a tie the first, i.e. the lower t2 (None first)."""
    return max(rows, key=lambda r: r[6])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--negatives", required=True, type=Path)
    ap.add_argument("--verifier", required=True, type=Path)
    ap.add_argument("--cache", type=Path, default=Path("runs/streams"))
    ap.add_argument("--t2", default="0.5,0.8,0.9,0.95", help="verifier thresholds, comma-separated")
    ap.add_argument("--delay-ms", type=float, default=200.0)
    ap.add_argument("--kw-max", type=float, default=1.0, help="the acceptance point's FA/h on the keyword stream")
    ap.add_argument("--neg-max", type=float, default=2.0, help="... and on the negative hour (scarce regime: 6 and 6)")
    a = ap.parse_args()
    a.cache.mkdir(parents=True, exist_ok=True)
    verifier, _ = load_model(a.verifier)
    t2s = [None] + [float(x) for x in a.t2.split(",")]
    table = []
    print("run t2 | stored t1 -> testing recall (kw FA/h, neg FA/h) | testing acceptance point")
    for run in a.runs:
        rows = rows_of(a, run, verifier, t2s)
        table.append(rows)
        for t2, thr, r, kfa, nfa, acc, _ in rows:
            print(f"{run.name} {'off' if t2 is None else t2} | {thr:.4f} -> {r:.3f} ({kfa:.1f}, {nfa:.1f}) | {acc:.3f}",
                  flush=True)
    picked = [chosen_on_validation(rows) for rows in table]
    print("t2 chosen on validation too: " + " | ".join(
        f"{run.name} {'off' if p[0] is None else p[0]} -> {p[2]:.3f} ({p[3]:.1f}, {p[4]:.1f})"
        for run, p in zip(a.runs, picked)))
    print(f"  mean testing recall {np.mean([p[2] for p in picked]):.3f}, neg FA/h {np.mean([p[4] for p in picked]):.1f}")
    print(f"mean over {len(a.runs)} runs:")
    for j, t2 in enumerate(t2s):
        r = np.array([rows[j][2] for rows in table])
        acc = np.array([rows[j][5] for rows in table])
        kfa = np.array([rows[j][3] for rows in table])
        nfa = np.array([rows[j][4] for rows in table])
        print(f"t2 {'off' if t2 is None else t2}: stored point's testing recall {r.mean():.3f} "
              f"(kw {kfa.mean():.1f}, neg {nfa.mean():.1f} FA/h) | acceptance point {acc.mean():.3f}")


if __name__ == "__main__":
    main()
