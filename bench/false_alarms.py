"""Every detection of a run on a cached negative stream, traced to the clip that made it.

    python bench/false_alarms.py RUN STREAM.wav --threshold 0.99

STREAM.wav is a stream the other scripts cache (e.g. `bench/operating_point.py`'s
`val_neg_<tag>_60.wav` or `bench/stream_diagnose.py`'s `neg_<tag>.wav`), with its events
beside it. Prints how many distinct clips the stream plays and how often, then each
detection at the threshold with the word and clip it fell in and how often the stream plays
that clip: a clip played three times can fire three times, so a stream that replays its
clips counts one near miss as several false alarms (docs/benchmarks.md, "Issue 19,
seventeenth round").
"""
import argparse
import collections
import os

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

from tinykws.detect import Detector  # noqa: E402
from tinykws.keyword_streams import load_stream  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("stream")
    ap.add_argument("--threshold", type=float, default=0.99)
    a = ap.parse_args()
    det = Detector(a.run)
    stream = load_stream(a.stream)
    plays = collections.Counter(e.source for e in stream.events)
    print(f"{len(stream.events)} words from {len(plays)} clips, each played "
          f"{len(stream.events) / max(1, len(plays)):.2f} times on average (at most {max(plays.values(), default=0)})")
    starts = np.array([e.start_s for e in stream.events])
    dets = det.detections_from_trace(*det.score_trace(stream.audio), threshold=a.threshold)
    print(f"{len(dets)} detections at {a.threshold}")
    for d in dets:
        e = stream.events[max(0, int(np.searchsorted(starts, d.time_s)) - 1)]  # the word it fell in
        print(f"{d.time_s:8.1f} s  {d.label:<8} {d.confidence:.4f}  {e.word:<16} {e.source}  played {plays[e.source]}x")


if __name__ == "__main__":
    main()
