"""The stream efficiency (issue 19): what the stream keeps of what the classifier knows, and
where the missed keywords go (`clip_recall`, `stream_efficiency`, `miss_reasons`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tinykws.triggers import moving_average, pick_detections
from tinykws.features import FeatureParams
from tinykws.detector_config import Detection
from tinykws.keyword_streams import Event, Stream
from tinykws.stream_eval import (
    StreamScore, clip_recall, false_alarm_causes, miss_reasons, stream_efficiency,
)

CATS = ["yes", "no", "_unknown_", "_silence_"]
KW = np.array([True, True, False, False])


class FakeDetector:
    """What the three functions use of a `Detector`: smoothing, trigger rule, model, params."""

    def __init__(self, smooth: int = 1, refractory_s: float = 1.0, model=None):
        self.categories, self.keywords = CATS, KW
        self.trigger = SimpleNamespace(buf=SimpleNamespace(maxlen=smooth))
        self.refractory_s, self.model, self.params = refractory_s, model, FeatureParams()

    def detections_from_trace(self, times, scores, threshold):
        return pick_detections(times, moving_average(scores, self.trigger.buf.maxlen), CATS,
                               threshold, self.refractory_s, KW)


def _trace(seconds: float, bumps: list[tuple[float, float, int]]):
    """Scores every 10 ms: `_silence_` everywhere but (start_s, end_s, class) bumps at 0.95."""
    times = np.arange(0, seconds, 0.01)
    scores = np.zeros((len(times), len(CATS)))
    scores[:, 3] = 1.0
    for a, b, c in bumps:
        on = (times >= a) & (times < b)
        scores[on] = 0.05 / 3
        scores[on, c] = 0.95
    return times, scores


def test_miss_reasons_sort_each_keyword_into_one_kind():
    ev = [Event(10.0, "yes", "yes", 20, "a"), Event(20.0, "no", "no", 20, "b"),
          Event(30.0, "yes", "yes", 20, "c"), Event(40.0, "no", "no", 20, "d"),
          Event(50.0, "yes", "yes", 20, "e")]
    times, scores = _trace(60.0, [
        (10.8, 11.0, 0),   # hit
        (20.5, 20.7, 0),   # "no" heard as "yes" inside its window
        (39.5, 39.6, 1),   # a false alarm just before event d ...
        (40.1, 40.3, 1),   # ... whose refractory time swallows d's own crossing
        (51.9, 52.1, 0),   # e's own keyword, after its window closed (start + 1.75 s)
    ])
    stream = Stream(np.zeros(16000 * 60, np.int16), ev)
    got = miss_reasons(FakeDetector(), times, scores, stream, threshold=0.9)
    assert got == {"hit": 1, "as another keyword": 1, "never above threshold": 1,
                   "suppressed": 1, "too late": 1}
    # below every bump's score nothing changes; above them every keyword is "never"
    assert miss_reasons(FakeDetector(), times, scores, stream, threshold=0.96)["never above threshold"] == 5


def test_false_alarm_causes_name_the_word_each_false_alarm_fired_on():
    ev = [Event(10.0, "zero", "_unknown_", 20, "a"), Event(20.0, "off", "off", 20, "b"),
          Event(30.0, "stop", "stop", 20, "c")]
    dets = [Detection(10.9, "no", 0.9),   # a near-miss word
            Detection(20.8, "up", 0.9),   # a keyword heard as another ...
            Detection(21.0, "off", 0.9),  # ... and then as itself: a hit, not counted
            Detection(30.9, "stop", 0.9),  # a hit
            Detection(31.6, "stop", 0.9),  # the same keyword fired twice
            Detection(45.0, "no", 0.9),   # background alone
            Detection(11.5, "no", 0.9)]   # the near-miss again, within its window
    got = false_alarm_causes(sorted(dets, key=lambda d: d.time_s), ev)
    assert got == {("no", "zero"): 2, ("up", "off"): 1, ("stop", "stop"): 1, ("no", "-"): 1}
    assert list(got)[0] == ("no", "zero")  # most frequent first
    assert false_alarm_causes([], ev) == {}


class Always(torch.nn.Module):
    """A 'classifier' that names class `c` for every clip."""

    def __init__(self, c: int):
        super().__init__()
        self.c = c

    def forward(self, x):  # [N, T, F] -> [N, C]
        out = torch.zeros(x.shape[0], len(CATS))
        out[:, self.c] = 1.0
        return out


def test_clip_recall_classifies_each_keyword_segment_alone():
    ev = [Event(1.0, "yes", "yes", 20, "a"), Event(3.0, "no", "no", 20, "b"),
          Event(5.0, "yes", "yes", 20, "c"), Event(7.0, "cat", "_unknown_", 20, "d")]
    stream = Stream(np.zeros(16000 * 9, np.int16), ev)
    got = clip_recall(FakeDetector(model=Always(0)), stream)
    assert got == {"n": 3, "correct": 2, "recall": pytest.approx(2 / 3)}  # other words not counted
    assert clip_recall(FakeDetector(model=Always(1)), stream)["correct"] == 1
    # a (short) stream without keywords: no denominator, so no efficiency, and no error
    none = clip_recall(FakeDetector(model=Always(0)), Stream(stream.audio, ev[3:]))
    assert none == {"n": 0, "correct": 0, "recall": 0.0}
    assert stream_efficiency([StreamScore(0.5, 0, 0, 0, 0.0, 0.0)], none) == {"1": None, "6": None, "ceiling": None}


def test_efficiency_divides_the_best_recall_under_each_limit_by_the_clip_recall():
    curve = [StreamScore(0.5, 8, 2, 10, 0.8, 20.0), StreamScore(0.9, 6, 4, 2, 0.6, 4.0),
             StreamScore(0.99, 3, 7, 0, 0.3, 0.0)]
    eff = stream_efficiency(curve, {"recall": 0.75})
    assert eff == {"1": pytest.approx(0.4), "6": pytest.approx(0.8), "ceiling": pytest.approx(0.8 / 0.75)}
    assert stream_efficiency(curve[:2], {"recall": 0.75})["1"] is None  # no point at <= 1 FA/h


def test_report_states_the_efficiency_and_where_keywords_went():
    from tinykws.records import StreamResult
    from tinykws.report import _efficiency

    at = {"threshold": 0.9, "hits": 3, "misses": 7, "false_alarms": 0, "recall": 0.3, "fa_per_hour": 0.0}
    old = {"mode": "rolling", "at_threshold": at, "miss_reasons_at_threshold": {},
           "recall_by_snr_at_threshold": {}, "false_alarms_at_threshold": [],
           "best_at_1_fa_per_hour": at, "curve": [at]}  # a stream.json from before the efficiency
    st = StreamResult.from_dict({
        **old, "clip_recall": {"n": 10, "correct": 8, "recall": 0.8},
        "efficiency": {"1": 0.5, "6": None, "ceiling": 1.0},
        "miss_reasons_at_threshold": {"hit": 3, "never above threshold": 6, "suppressed": 1,
                                      "too late": 0}})
    text = _efficiency(st)
    assert "80.0%" in text and "0.50" in text and "– at ≤ 6" in text and "1.00" in text
    assert "of 10 keywords 3 were hit; the others: 6 never above threshold, 1 suppressed." in text
    assert _efficiency(StreamResult.from_dict(old)) == ""  # nothing claimed
