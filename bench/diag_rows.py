"""docs/benchmarks.md's stream-variant table rows and paired differences, from the outputs of
`bench/stream_diagnose.py` (saved as text) and `tinykws evaluate RUN --json`.

    python bench/diag_rows.py row "NAME" DIAG.txt EVAL.json [...]   # one table row per triple
    python bench/diag_rows.py pair --new DIAG.txt ... --base DIAG.txt ...

`row` prints: testing accuracy / `_unknown_` recall | clip recall | recall at kw <= 1 FA/h (the
negative hour's FA/h there) | efficiency <= 1 / <= 6 / ceiling | recall at kw <= 1 and neg <= 2
(threshold) | at kw <= 6 and neg <= 6 | keyword own peak median / share >= 0.98 | the negative
hour's peak at 99 % / 99.9 % (the smoothing of the diagnostic's first line).
`pair` takes the new and base diagnostics in the same seed order and prints, for the two
acceptance points, the per-seed differences (points), their mean, standard error and how
many are up.
"""
import argparse
import json
import re

import numpy as np


def parse(diag: str) -> dict:
    """The figures of one `stream_diagnose.py` output."""
    text = open(diag).read()
    lines = text.splitlines()
    m = lines[2]
    g = lambda pat: re.search(pat, m).groups()  # noqa: E731
    floats = lambda pat: [float(x) for x in re.search(pat, text).group(1).split()]  # noqa: E731
    share = re.findall(r"np.float64\(([0-9.]+)\)", re.search(r"frac keywords.*", text).group(0))
    return {"clip": float(re.search(r"clip recall ([0-9.]+)", lines[1]).group(1)),
            "eff": g(r"eff@1 ([0-9.]+) eff@6 ([0-9.]+) ceil ([0-9.]+)"),
            "kw1": g(r"kw<=1: ([0-9.]+) thr [0-9.]+ negFA/h ([0-9.]+)"),
            "both1": g(r"both\(kw<=1,neg<=2\): ([0-9.]+) thr ([0-9.]+)"),
            "both6": float(g(r"both\(kw<=6,neg<=6\): ([0-9.]+)")[0]),
            "kw_q": floats(r"keyword own-class peak quantiles \[([^\]]+)\]"),
            "share98": float(share[2]),
            "neg_q": floats(r"neg hour: peak quantiles \[([^\]]+)\]")}


def row(name: str, diag: str, ev: str) -> str:
    d, e = parse(diag), json.load(open(ev))
    acc, unk = e["accuracy"], e["per_class"]["_unknown_"]["recall"]
    eff, k1, b1 = d["eff"], d["kw1"], d["both1"]
    return (f"| {name} | {acc:.3f} / {unk:.2f} | {d['clip']:.3f} | {100 * float(k1[0]):.1f} % ({float(k1[1]):.0f}) "
            f"| {eff[0]} / {eff[1]} / {eff[2]} | **{100 * float(b1[0]):.1f} %** ({b1[1]}) | {100 * d['both6']:.1f} % "
            f"| {d['kw_q'][2]:.3f} / {d['share98']:.3f} | {d['neg_q'][2]:.3f} / {d['neg_q'][3]:.3f} |")


def paired(new: list, base: list) -> None:
    if len(new) != len(base) or len(new) < 2:
        raise SystemExit("pair: as many --new as --base diagnostics, at least two")
    for label, key in (("kw <= 1 and neg <= 2", lambda d: float(d["both1"][0])),
                       ("kw <= 6 and neg <= 6", lambda d: d["both6"])):
        a = np.array([100 * key(parse(f)) for f in new])
        b = np.array([100 * key(parse(f)) for f in base])
        d = a - b
        print(f"{label}: new {a.round(1).tolist()} mean {a.mean():.1f}; base mean {b.mean():.1f}; "
              f"differences {d.round(1).tolist()}: mean {d.mean():+.2f}, standard error "
              f"{d.std(ddof=1) / np.sqrt(len(d)):.2f}, {(d > 0).sum()} of {len(d)} up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("row")
    r.add_argument("triples", nargs="+", help="NAME DIAG EVAL, repeated")
    p = sub.add_parser("pair")
    p.add_argument("--new", nargs="+", required=True)
    p.add_argument("--base", nargs="+", required=True)
    a = ap.parse_args()
    if a.cmd == "row":
        if len(a.triples) % 3:
            raise SystemExit("row: NAME DIAG EVAL triples")
        for i in range(0, len(a.triples), 3):
            print(row(*a.triples[i:i + 3]))
    else:
        paired(a.new, a.base)


if __name__ == "__main__":
    main()
