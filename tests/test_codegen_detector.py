"""Parity: the generated C detector (detector_Step) vs the Python one (`Trigger`).

Both get the same score vectors; the detections (step, label) must be identical and the
confidences equal to float precision. The score traces are made so that no smoothed
score sits within float rounding of the threshold (there the single-precision C and the
double-precision Python may legitimately disagree).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from codegen_host import PEDANTIC, build_shared, digest
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.detector import emit_detector
from tinykws.detector_config import DetectorConfig
from tinykws.triggers import Trigger, moving_average

CATS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
        "_unknown_", "_silence_"]
FRAME_MS = 10.0


def _build(tmp: Path, cfg: DetectorConfig) -> ctypes.CDLL:
    files = emit_detector(cfg, CATS, FRAME_MS)
    d = tmp / digest(*files.values())
    d.mkdir(parents=True, exist_ok=True)
    copy_runtime(d)
    for name, text in files.items():
        (d / name).write_text(text)
    lib = build_shared([d / "detector.c"], d / "libdetector.so", include_dirs=[d], extra=PEDANTIC)
    lib.detector_Step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.detector_Init.argtypes = [ctypes.c_void_p]
    lib.detector_Process.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.dir = d
    return lib


def _trace(seed: int, n: int = 1500) -> np.ndarray:
    """Softmax-like scores [n, C] with keyword bursts of varying length and height."""
    rng = np.random.default_rng(seed)
    s = rng.dirichlet(np.full(len(CATS), 0.5), size=n) * 0.3
    s[:, CATS.index("_silence_")] += 0.7
    for start in rng.integers(0, n - 80, size=n // 60):
        k = rng.integers(0, len(CATS))
        length = rng.integers(3, 80)
        s[start : start + length] *= 0.2
        s[start : start + length, k] += rng.uniform(0.5, 0.8)
    return (s / s.sum(1, keepdims=True)).astype(np.float32)


def _c_detections(lib, scores: np.ndarray, state: np.ndarray | None = None):
    out = []
    conf = ctypes.c_float()
    st = state if state is not None else np.zeros(1 << 14, np.float32)
    lib.detector_Init(st.ctypes.data)
    for i, row in enumerate(np.ascontiguousarray(scores, np.float32)):
        k = lib.detector_Step(st.ctypes.data, row.ctypes.data, ctypes.byref(conf))
        if k >= 0:
            out.append((i, CATS[k], conf.value))
    return out


def _py_detections(cfg: DetectorConfig, scores: np.ndarray):
    trig = Trigger(CATS, cfg.threshold, cfg.smooth_steps(FRAME_MS), cfg.refractory_ms / 1000.0,
                   cfg.keyword_mask(CATS))
    times = (np.arange(len(scores)) + 3) * 160 / 16000  # as Detector reports them
    out = []
    for i, (t, row) in enumerate(zip(times, scores)):
        d = trig(t, row)
        if d:
            out.append((i, d.label, d.confidence))
    return out


CONFIGS = {
    "defaults": DetectorConfig(),
    "no-smoothing": DetectorConfig(threshold=0.6, smoothing_ms=0, refractory_ms=0),
    "keywords-yes-no": DetectorConfig(threshold=0.4, smoothing_ms=150, refractory_ms=500,
                                      keywords=("yes", "no")),
    "long": DetectorConfig(threshold=0.35, smoothing_ms=750, refractory_ms=1234),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_c_detector_equals_python(tmp_path_factory, name):
    cfg = CONFIGS[name]
    lib = _build(tmp_path_factory.getbasetemp() / "detectors", cfg)
    n_checked = 0
    for seed in range(4):
        scores = _trace(seed)
        # no smoothed keyword score within 1e-5 of the threshold (see the module docstring)
        sm = moving_average(scores, cfg.smooth_steps(FRAME_MS))[:, cfg.keyword_mask(CATS)]
        if np.abs(sm - cfg.threshold).min() < 1e-5:
            continue
        n_checked += 1
        c, py = _c_detections(lib, scores), _py_detections(cfg, scores)
        assert py, "the trace should fire"
        assert [(i, lab) for i, lab, _ in c] == [(i, lab) for i, lab, _ in py]
        np.testing.assert_allclose([x for *_, x in c], [x for *_, x in py], rtol=0, atol=2e-6)
    assert n_checked >= 3


def test_generated_constants_follow_the_config(tmp_path_factory):
    cfg = DetectorConfig(threshold=0.83, smoothing_ms=200, refractory_ms=995,
                         keywords=("on", "off", "go"))
    h = emit_detector(cfg, CATS, FRAME_MS)["detector.h"]
    for line in ("#define DETECTOR_SMOOTH_STEPS 20", "#define DETECTOR_REFRACTORY_STEPS 100",
                 "#define DETECTOR_THRESHOLD 0.829999983f", "#define DETECTOR_NUM_KEYWORDS 3"):
        assert line in h
    c = emit_detector(cfg, CATS, FRAME_MS)["detector.c"]
    assert "6, 7, 9" in c  # the keyword class indices


def test_default_state_wrappers_and_two_states(tmp_path_factory):
    """detector_Process/_Reset (static state) equal detector_Step on an explicit state, and
    two explicit states interleaved equal each alone."""
    cfg = CONFIGS["keywords-yes-no"]
    lib = _build(tmp_path_factory.getbasetemp() / "detectors", cfg)
    a, b = _trace(10), _trace(11)
    alone_a, alone_b = _c_detections(lib, a), _c_detections(lib, b)
    lib.detector_Reset()
    conf = ctypes.c_float()
    wrapped = [(i, CATS[k], conf.value) for i, row in enumerate(np.ascontiguousarray(a))
               if (k := lib.detector_Process(row.ctypes.data, ctypes.byref(conf))) >= 0]
    assert wrapped == alone_a
    states = [np.zeros(1 << 14, np.float32) for _ in range(2)]
    for s in states:
        lib.detector_Init(s.ctypes.data)
    got: list[list] = [[], []]
    for i in range(len(a)):
        for j, sc in enumerate((a, b)):
            row = np.ascontiguousarray(sc[i])
            k = lib.detector_Step(states[j].ctypes.data, row.ctypes.data, ctypes.byref(conf))
            if k >= 0:
                got[j].append((i, CATS[k], conf.value))
    assert got == [alone_a, alone_b]
