"""The integer detector of int8 builds: `IntTrigger` (Python) and its generated C
(`emit_int_detector`, runtime `tkws_qdetect.c`).

- golden: `IntTrigger` against an independent numpy computation of the rule (window sums
  by cumulative sums, the threshold compared in integers without `threshold_sums`) and
  against the float definition `Trigger` fed the same Q15 scores / 32768;
- the threshold rounding the docs state: ceil(T * 32768 * m) with T the decimal in
  detector.json, so a mean exactly equal to the threshold fires;
- parity: the C detector (host build, pedantic warnings) vs `IntTrigger`, through the
  float API (`detector_Step`: identical detections, confidences bit for bit) and the Q15
  API (`detector_StepQ`), and `tkws_q15_from_float` against numpy;
- the C compiles for the Cortex-M4 with both toolchains under -Wall -Wextra -Werror.
"""

from __future__ import annotations

import ctypes
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from codegen_host import PEDANTIC, STRICT, build_shared, digest, toolchain_params
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.detector import MAX_INT_SMOOTH_STEPS, emit_int_detector
from tinykws.detector_config import DetectorConfig
from tinykws.triggers import IntTrigger, Trigger, threshold_sums
from tinykws.errors import TinyKWSError

CATS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
        "_unknown_", "_silence_"]
FRAME_MS = 10.0
CONFIGS = {
    "defaults": DetectorConfig(),
    "pipeline": DetectorConfig(threshold=0.96),
    "no-smoothing": DetectorConfig(threshold=0.6, smoothing_ms=0, refractory_ms=0),
    "keywords-yes-no": DetectorConfig(threshold=0.4, smoothing_ms=150, refractory_ms=500,
                                      keywords=("yes", "no")),
    "long": DetectorConfig(threshold=0.35, smoothing_ms=750, refractory_ms=1234),
}


def _trace_q15(seed: int, n: int = 1500) -> np.ndarray:
    """int64 [n, C] Q15 softmax-like scores (each row sums to about 32768) with keyword
    bursts of varying length and height, as the integer model's softmax gives them."""
    rng = np.random.default_rng(seed)
    s = rng.dirichlet(np.full(len(CATS), 0.5), size=n) * 0.3
    s[:, CATS.index("_silence_")] += 0.7
    for start in rng.integers(0, n - 80, size=n // 60):
        k = rng.integers(0, len(CATS))
        length = rng.integers(3, 80)
        s[start : start + length] *= 0.2
        s[start : start + length, k] += rng.uniform(0.3, 0.8) * rng.choice([1.0, 10.0])
    s /= s.sum(1, keepdims=True)
    return np.minimum(np.rint(s * 32768), 32767).astype(np.int64)


def _times(n: int) -> np.ndarray:
    return (np.arange(n) + 3) * 160 / 16000  # as Detector reports them


def _run(trigger, scores, scale: float | None = None) -> list[tuple[int, str, float]]:
    out = []
    for i, (t, row) in enumerate(zip(_times(len(scores)), scores)):
        d = trigger(t, row if scale is None else row / scale)
        if d:
            out.append((i, d.label, d.confidence))
    return out


def _numpy_rule(q: np.ndarray, cfg: DetectorConfig) -> list[tuple[int, str, float]]:
    """The integer rule computed independently: window sums from cumulative sums, the
    threshold as the decimal fraction N / 10^k compared as sum * 10^k >= N * 32768 * m
    (Python ints: exact), the refractory time counted in frames."""
    kw = np.flatnonzero(cfg.keyword_mask(CATS))
    n, r = cfg.smooth_steps(FRAME_MS), cfg.refractory_steps(FRAME_MS)
    c = np.vstack([np.zeros((1, len(kw)), np.int64), np.cumsum(q[:, kw], axis=0)])
    idx = np.arange(1, len(q) + 1)
    m = np.minimum(idx, n)  # rows in the window
    sums = c[idx] - c[idx - m]  # [T, K]
    best = sums.argmax(1)
    frac = Fraction(str(cfg.threshold))
    out, last = [], None
    for i in range(len(q)):
        s = int(sums[i, best[i]])
        if s * frac.denominator >= frac.numerator * 32768 * int(m[i]):
            if last is None or i - last >= r:
                out.append((i, CATS[kw[best[i]]], float(np.float32(s) / np.float32(32768 * m[i]))))
                last = i
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_int_trigger_equals_numpy_and_the_float_rule(name):
    """IntTrigger = the independent numpy rule (frames, labels, confidences exactly), and
    the same frames and labels as the float `Trigger` on the same scores: on Q15 inputs the
    integer rule is the float rule without its rounding."""
    cfg = CONFIGS[name]
    fired = 0
    for seed in range(3):
        q = _trace_q15(seed)
        got = _run(IntTrigger.from_config(cfg, CATS, FRAME_MS), q)
        assert got == _numpy_rule(q, cfg)
        flt = _run(Trigger.from_config(cfg, CATS, FRAME_MS), q.astype(np.float64), 32768.0)
        assert [(i, lab) for i, lab, _ in got] == [(i, lab) for i, lab, _ in flt]
        np.testing.assert_allclose([x for *_, x in got], [x for *_, x in flt], rtol=1e-7)
        fired += len(got)
    assert fired >= 3, "the traces should fire"


TIES = [(0.8, 30), (0.96, 25), (0.1, 5), (0.9, 10)]  # thresholds T and m with T * 32768 * m whole


def _tie_config(thr: float, m: int) -> DetectorConfig:
    return DetectorConfig(threshold=thr, smoothing_ms=m * FRAME_MS, refractory_ms=0,
                          keywords=("yes",))


def _tie_trace(thr: float, m: int, delta: int) -> np.ndarray:
    """m frames whose "yes" scores sum to T * 32768 * m + delta (exactly the threshold's
    sum for delta 0)."""
    total = int(threshold_sums(thr, m)[m - 1])
    q = np.zeros((m, len(CATS)), np.int64)
    q[:, 0] = total // m
    q[: total % m, 0] += 1
    q[-1, 0] += delta
    return q


def test_threshold_rounding_is_the_documented_one():
    """threshold_sums[m - 1] = ceil(T * 32768 * m) with T the decimal written in
    detector.json; a mean exactly at the threshold fires, one Q15 unit of sum below not."""
    assert threshold_sums(0.7, 3).tolist() == [22938, 45876, 68813]  # 22937.6, 45875.2, 68812.8
    # 0.8 is 4/5 (its binary64 value is a little above): 0.8 * 32768 * 30 = 786432 exactly
    assert threshold_sums(0.8, 30)[29] == 786432
    assert threshold_sums(0.96, 25)[24] == 786432  # 0.96 * 32768 * 25, exact
    assert threshold_sums(0.0, 4).tolist() == [0, 0, 0, 0]
    assert threshold_sums(1.0, 2).tolist() == [32768, 65536]  # Q15 scores stop at 32767
    for thr, m in TIES:
        total = threshold_sums(thr, m)[m - 1]
        assert Fraction(int(total), 32768 * m) == Fraction(str(thr))  # an exact tie
        cfg = _tie_config(thr, m)
        for delta, fires in [(0, True), (-1, False)]:
            q = _tie_trace(thr, m, delta)
            got = _run(IntTrigger.from_config(cfg, CATS, FRAME_MS), q)
            assert (len(got) > 0 and got[-1][0] == m - 1) == fires, (thr, m, delta)
            # the float rule agrees, also on the exact tie
            flt = _run(Trigger.from_config(cfg, CATS, FRAME_MS), q.astype(np.float64), 32768.0)
            assert [i for i, *_ in flt] == [i for i, *_ in got]


# ---------------------------------------------------------------------- the generated C


def _build(tmp: Path, cfg: DetectorConfig) -> ctypes.CDLL:
    files = emit_int_detector(cfg, CATS, FRAME_MS)
    d = tmp / digest(*files.values())
    d.mkdir(parents=True, exist_ok=True)
    copy_runtime(d)
    for name, text in files.items():
        (d / name).write_text(text)
    q = tmp / "q15"  # the runtime's conversion alone, as an extern function
    q.mkdir(exist_ok=True)
    (q / "q15.c").write_text('#include "tkws_qdetect.c"\n'
                             "float q15_probe(float x);\n"
                             "float q15_probe(float x) { return (float)tkws_q15_from_float(x); }\n")
    lib = build_shared([d / "detector.c", q / "q15.c"], d / "libdetector.so", include_dirs=[d],
                       extra=PEDANTIC)
    vp = ctypes.c_void_p
    lib.detector_Step.argtypes = [vp, vp, vp]
    lib.detector_StepQ.argtypes = [vp, vp, vp]
    lib.detector_Init.argtypes = [vp]
    lib.detector_Process.argtypes = [vp, vp]
    lib.q15_probe.argtypes = [ctypes.c_float]
    lib.q15_probe.restype = ctypes.c_float
    return lib


def _c_run(lib, q: np.ndarray, api: str) -> list[tuple[int, str, float]]:
    """detector_Step on float probabilities q / 32768 (as completemodel_Predict gives
    them), or detector_StepQ on the int16 Q15 scores."""
    st = np.zeros(1 << 16, np.int32)  # larger than any detector_state here
    lib.detector_Init(st.ctypes.data)
    out = []
    if api == "float":
        rows, conf, step = (q / np.float32(32768)).astype(np.float32), ctypes.c_float(), lib.detector_Step
    else:
        rows, conf, step = q.astype(np.int16), ctypes.c_int16(), lib.detector_StepQ
    for i, row in enumerate(np.ascontiguousarray(rows)):
        k = step(st.ctypes.data, row.ctypes.data, ctypes.byref(conf))
        if k >= 0:
            out.append((i, CATS[k], conf.value))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_c_int_detector_equals_int_trigger(tmp_path_factory, name):
    """Float API: the same detections as IntTrigger, confidences equal bit for bit. Q15 API:
    the same frames and labels, confidence = floor(mean in Q15)."""
    cfg = CONFIGS[name]
    lib = _build(tmp_path_factory.getbasetemp() / "int_detectors", cfg)
    n = cfg.smooth_steps(FRAME_MS)
    for seed in range(3):
        q = _trace_q15(seed)
        py = _run(IntTrigger.from_config(cfg, CATS, FRAME_MS), q)
        assert _c_run(lib, q, "float") == py  # float == float32 value: bit for bit
        cq = _c_run(lib, q, "q15")
        assert [(i, lab) for i, lab, _ in cq] == [(i, lab) for i, lab, _ in py]
        kw = cfg.keyword_mask(CATS)
        for i, lab, conf in cq:  # floor of the window mean of that keyword, in Q15
            rows = q[max(0, i + 1 - n) : i + 1, CATS.index(lab)]
            assert conf == int(rows.sum()) // len(rows)
            assert kw[CATS.index(lab)]


@pytest.mark.parametrize("thr,m", TIES)
def test_c_fires_on_an_exact_tie_and_not_one_below(tmp_path_factory, thr, m):
    """The C's comparison and table: a window sum exactly at the threshold fires at the
    last frame, one Q15 unit below does not (as IntTrigger, test above)."""
    lib = _build(tmp_path_factory.getbasetemp() / "int_detectors", _tie_config(thr, m))
    for api in ("float", "q15"):
        assert [i for i, *_ in _c_run(lib, _tie_trace(thr, m, 0), api)][-1:] == [m - 1]
        assert m - 1 not in [i for i, *_ in _c_run(lib, _tie_trace(thr, m, -1), api)]


def test_c_wrappers_and_constants(tmp_path_factory):
    """detector_Process (static state) = detector_Step; the generated table is
    threshold_sums and the settings are the config's; too long a smoothing is refused."""
    cfg = DetectorConfig(threshold=0.83, smoothing_ms=200, refractory_ms=995,
                         keywords=("on", "off", "go"))
    files = emit_int_detector(cfg, CATS, FRAME_MS)
    for line in ("#define DETECTOR_SMOOTH_STEPS 20", "#define DETECTOR_REFRACTORY_STEPS 100",
                 "#define DETECTOR_NUM_KEYWORDS 3", "int16_t history[60];", "int32_t sum[3];"):
        assert line in files["detector.h"]
    c = files["detector.c"]
    table = c[c.index("detector_min_sums[20] = {") :].split("}")[0].split("{")[1]
    assert [int(v) for v in table.replace("\n", " ").split(",")] == threshold_sums(0.83, 20).tolist()
    assert "6, 7, 9" in c  # the keyword class indices

    lib = _build(tmp_path_factory.getbasetemp() / "int_detectors", CONFIGS["keywords-yes-no"])
    q = _trace_q15(7)
    alone = _c_run(lib, q, "float")
    lib.detector_Reset()
    conf = ctypes.c_float()
    rows = np.ascontiguousarray((q / np.float32(32768)).astype(np.float32))
    wrapped = [(i, CATS[k], conf.value) for i, row in enumerate(rows)
               if (k := lib.detector_Process(row.ctypes.data, ctypes.byref(conf))) >= 0]
    assert wrapped == alone and alone

    too_long = DetectorConfig(smoothing_ms=(MAX_INT_SMOOTH_STEPS + 1) * FRAME_MS)
    with pytest.raises(TinyKWSError, match="too long for the integer detector"):
        emit_int_detector(too_long, CATS, FRAME_MS)


def test_q15_from_float_matches_numpy(tmp_path_factory):
    """tkws_q15_from_float = round-half-even(x * 32768) clamped to 0 .. 32767, NaN -> 0:
    exact multiples of 2^-15, halfway points, tiny, huge, negative and non-finite values."""
    lib = _build(tmp_path_factory.getbasetemp() / "int_detectors", CONFIGS["defaults"])
    rng = np.random.default_rng(0)
    k = np.arange(0, 32768, 7)
    x = np.concatenate([
        k / 32768.0, (k + 0.5) / 32768.0, rng.uniform(0, 1.2, 4000), rng.uniform(-1, 0, 50),
        [0.0, -0.0, 1.0, 32767.5 / 32768, 0.5 / 32768, 1.5 / 32768, 1e-30, 1e-45, 3e38,
         np.inf, -np.inf, np.nan],
    ]).astype(np.float32)
    got = np.array([lib.q15_probe(float(v)) for v in x])
    want = np.clip(np.rint(x.astype(np.float64) * 32768), 0, 32767)
    want[np.isnan(x)] = 0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("tc_name", toolchain_params())
def test_int_detector_compiles_for_cortex_m4_without_warnings(tmp_path, tc_name):
    """The generated detector.c under -Wall -Wextra -Werror (and the pedantic set) for the
    soft-float ABI, the FPU-less target of int8 builds."""
    from tinykws.toolchain import find_toolchain

    copy_runtime(tmp_path)
    for name, text in emit_int_detector(CONFIGS["pipeline"], CATS, FRAME_MS).items():
        (tmp_path / name).write_text(text)
    tc = find_toolchain(tc_name)
    obj = tc.compile_object(tmp_path / "detector.c", tmp_path / "detector.o", "soft",
                            include_dirs=[tmp_path], extra_flags=[*STRICT, *PEDANTIC])
    assert obj.stat().st_size > 0
