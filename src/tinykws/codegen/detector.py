"""The detector's C (module ``detector``), float and integer: a `DetectorConfig` ->
``detector.{h,c}``, `tinykws.triggers.Trigger` (float) or `IntTrigger` (integer builds) in C
for one score vector per featurizer frame (mode `rolling`: one never-reset model state).

Both variants share one plan (`DetectorPlan`: names, keyword classes, whole-step smoothing
and refractory counts, the header's #defines, the state view and the default-state calls)
and one API: explicit state (`<m>_state`, `<m>_Init`, `<m>_Step`), plus `<m>_Reset` /
`<m>_Process` on a static default state like the model's ELL API. The integer one adds
`<m>_StepQ` / `<m>_ProcessQ` on Q15 scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from tinykws.codegen.cgen import c_array, c_comment, c_float, c_ident, c_struct
from tinykws.codegen.glue import state_view
from tinykws.triggers import threshold_sums
from tinykws.errors import TinyKWSError

DETECTOR_MODULE = "detector"


@dataclass(frozen=True)
class DetectorPlan:
    """What the float and the integer detector C share: names, keyword classes and the
    whole-step smoothing and refractory counts of a `DetectorConfig`."""

    config: Any
    m: str  # C identifier prefix
    cats: list[str]
    kw: list[int]  # indices of the classes that may fire
    smooth: int  # steps averaged
    refractory: int  # steps without a detection after one
    frame_ms: float

    @property
    def M(self) -> str:  # noqa: N802 (the macro prefix)
        return self.m.upper()

    @property
    def guard(self) -> str:
        return f"TINYKWS_{self.M}_DETECTOR_H"

    @property
    def cfg_json(self) -> str:
        return json.dumps(self.config.to_dict(), sort_keys=True)

    @property
    def note(self) -> str:
        """A header comment line when the run's Python detector runs another mode."""
        if self.config.mode in ("rolling", "auto"):
            return ""
        return (f"\n * The run's Python detector uses mode `{self.config.mode}`; this one runs "
                "one score\n * vector per frame from one never-reset state (`tinykws detect --mode "
                "rolling`).")

    def header_start(self) -> str:
        """The header from its include guard to the shared #defines."""
        M, c = self.M, self.config
        return f"""#ifndef {self.guard}
#define {self.guard}

#include <stdint.h>

#if defined(__cplusplus)
extern "C" {{
#endif

#define {M}_NUM_CLASSES {len(self.cats)}  /* scores per step (the model's outputs) */
#define {M}_NUM_KEYWORDS {len(self.kw)}  /* classes that may fire */
#define {M}_FRAME_MS {c_float(self.frame_ms)}  /* one score vector per featurizer frame */
#define {M}_SMOOTH_STEPS {self.smooth}  /* moving average: {c.smoothing_ms:g} ms */
#define {M}_REFRACTORY_STEPS {self.refractory}  /* no detection for {c.refractory_ms:g} ms after one */"""

    def state_glue(self, runtime: str, arrays: Sequence[str]) -> str:
        """C: `<m>__view` (the runtime's `<runtime>_state` over a `<m>_state`: its `arrays`
        and counters), `<m>__store` (the counters back) and `<m>_Init` (`<runtime>_reset`)."""
        m, rt = self.m, runtime
        return state_view(m, rt, (*arrays, "pos", "filled", "since")) + f"""
static void {m}__store({m}_state *state, const {rt}_state *st)
{{
    state->pos = st->pos;
    state->filled = st->filled;
    state->since = st->since;
}}

void {m}_Init({m}_state *state)
{{
    {rt}_state st = {m}__view(state);
    {rt}_reset(&{m}_config, &st);
    {m}__store(state, &st);
}}
"""

    def header_end(self, arrays: str, protos: str) -> str:
        """The header from the state type on: its variant's `arrays` (member lines) and the
        shared counters, `<m>_Init`, the variant's step prototypes (`protos`), the
        default-state calls and the include guard's end."""
        m = self.m
        q15 = f"int32_t {m}_ProcessQ(const int16_t *scores, int16_t *confidence);\n" if "_StepQ" in protos else ""
        return f"""
/* Everything the detector keeps for one stream. All zeros is NOT a valid start: call
 * {m}_Init first. */
typedef struct {{
{arrays}    int32_t pos;  /* history row written next */
    int32_t filled;  /* rows in use */
    int32_t since;  /* steps since the last detection (saturating) */
}} {m}_state;

/* Start a stream: no history, no detection yet. */
void {m}_Init({m}_state *state);
{protos}
/* The same on one static default state. */
void {m}_Reset(void);
int32_t {m}_Process(const float *scores, float *confidence);
{q15}
#if defined(__cplusplus)
}} /* extern "C" */
#endif

#endif /* {self.guard} */
"""

    def source_start(self, kind: str, runtime: str, logic: str, tables: str,
                     config: dict[str, Any]) -> str:
        """detector.c up to the state glue: the intro (`kind`: "Keyword" or "Integer
        keyword"; `runtime`: the runtime file that holds the logic, `logic`: what it
        equals), the keyword table, the variant's `tables` and `<m>_config` (a
        `<runtime>_config`; `config`: its fields after the shared ones)."""
        m, M = self.m, self.M
        names = c_comment(", ".join(self.cats[i] for i in self.kw))
        fields = {"n_keywords": f"{M}_NUM_KEYWORDS", "keyword": f"{m}_keywords",
                  "smooth": f"{M}_SMOOTH_STEPS", "refractory": f"{M}_REFRACTORY_STEPS", **config}
        return f"""\
/*
 * {kind} detector "{m}", generated by tinykws from the run's DetectorConfig
 *   {c_comment(self.cfg_json)}
 * Constants + glue; the logic is the runtime's {runtime}.c{logic}.
 */
#define TKWS_STATIC_RUNTIME 1
#include "{runtime}.c"
#include "detector.h"

{c_array("uint16_t", f"{m}_keywords", self.kw, comment="classes that may fire: " + names)}
{tables}{c_struct(f"{runtime}_config", f"{m}_config", fields)}
"""

    def default_state_glue(self, q15: bool = False) -> str:
        """C: the static default state and `<m>_Reset` / `<m>_Process` on it (`q15`: also
        `<m>_ProcessQ`, the integer detector's Q15 call)."""
        m = self.m
        c = f"""static {m}_state {m}_default_state;

void {m}_Reset(void)
{{
    {m}_Init(&{m}_default_state);
}}

int32_t {m}_Process(const float *scores, float *confidence)
{{
    return {m}_Step(&{m}_default_state, scores, confidence);
}}
"""
        if q15:
            c += f"""
int32_t {m}_ProcessQ(const int16_t *scores, int16_t *confidence)
{{
    return {m}_StepQ(&{m}_default_state, scores, confidence);
}}
"""
        return c


def detector_plan(config: Any, categories: Sequence[str], frame_ms: float,
                  module: str = DETECTOR_MODULE) -> DetectorPlan:
    """A `DetectorConfig` in whole steps of `frame_ms`, for the C emitters."""
    cats = list(categories)
    kw = [i for i, k in enumerate(config.keyword_mask(cats)) if k]
    if not kw:
        raise TinyKWSError("the detector has no keyword classes to fire on")
    return DetectorPlan(config, c_ident(module), cats, kw, config.smooth_steps(frame_ms),
                        config.refractory_steps(frame_ms), frame_ms)


def emit_detector(config: Any, categories: Sequence[str], frame_ms: float,
                  module: str = DETECTOR_MODULE) -> dict[str, str]:
    """DetectorConfig -> {"detector.h": ..., "detector.c": ...}: `tinykws.triggers.Trigger`
    in C for one score vector per `frame_ms` (mode `rolling`: one never-reset model state).

    Explicit state (`<m>_state`, `<m>_Init`, `<m>_Step`), plus `<m>_Reset` / `<m>_Process`
    on a static default state like the model's ELL API. Smoothing and refractory time
    become whole steps exactly as the Python detector counts them."""
    p = detector_plan(config, categories, frame_ms, module)
    m, M, cats, kw, smooth = p.m, p.M, p.cats, p.kw, p.smooth
    h = f"""\
/*
 * Keyword detector "{m}" (tinykws): smoothing, threshold and refractory time from the run's
 * detector ({c_comment(p.cfg_json)}).{p.note}
 * Generated by tinykws: do not edit; regenerate with `tinykws compile`.
 */
{p.header_start()}
#define {M}_THRESHOLD {c_float(config.threshold)}  /* smoothed score a keyword must reach */
"""
    h += p.header_end(f"    float history[{smooth * len(kw)}];  /* keyword scores of the last {smooth} steps */\n",
                      f"""\
/* One score vector [{len(cats)}] in (softmax probabilities, as completemodel_Step writes
 * them). Returns the class index that fired, with its smoothed score in *confidence, or -1. */
int32_t {m}_Step({m}_state *state, const float *scores, float *confidence);
""")
    c = p.source_start("Keyword", "tkws_detect", "", "", {"threshold": f"{M}_THRESHOLD"})
    c += p.state_glue("tkws_detect", ["history"]) + f"""
int32_t {m}_Step({m}_state *state, const float *scores, float *confidence)
{{
    tkws_detect_state st = {m}__view(state);
    const int32_t fired = tkws_detect_step(&{m}_config, &st, scores, confidence);
    {m}__store(state, &st);
    return fired;
}}

{p.default_state_glue()}"""
    return {"detector.h": h, "detector.c": c}


# ---------------------------------------------------------------------- integer

MAX_INT_SMOOTH_STEPS = 65535  # sums of Q15 scores and (m << 15) stay within int32


def emit_int_detector(config: Any, categories: Sequence[str], frame_ms: float,
                      module: str = DETECTOR_MODULE) -> dict[str, str]:
    """DetectorConfig -> {"detector.h": ..., "detector.c": ...} for integer builds:
    `tinykws.triggers.IntTrigger` in C (runtime `tkws_qdetect.c`), one Q15 score vector per
    `frame_ms`.

    The API of the float detector (`emit_detector`: `<m>_state`, `<m>_Init`,
    `<m>_Step`, `<m>_Reset`, `<m>_Process` with float probabilities in and a float
    confidence out), so firmware and the device harness call both alike; the float scores
    are turned into Q15 with bit operations (exact for the integer model's outputs), and
    the confidence is the one float division a frame. `<m>_StepQ` / `<m>_ProcessQ` take
    `completemodel_PredictQ`'s Q15 scores directly and use no floating point at all. The
    threshold becomes the table `<m>_min_sums` (`tinykws.triggers.threshold_sums`)."""
    p = detector_plan(config, categories, frame_ms, module)
    m, M, cats, kw, smooth = p.m, p.M, p.cats, p.kw, p.smooth
    if smooth > MAX_INT_SMOOTH_STEPS:
        raise TinyKWSError(f"detector smoothing of {smooth} frames is too long for the integer "
                           f"detector (at most {MAX_INT_SMOOTH_STEPS} frames)")
    min_sums = threshold_sums(config.threshold, smooth)
    sums_doc = (f"a keyword fires when the sum of its last m Q15 scores reaches entry m - 1:\n"
                f" * ceil({config.threshold!r} * 32768 * m), m = 1 .. {smooth}, exact "
                "(tinykws.detect.threshold_sums)")
    h = f"""\
/*
 * Integer keyword detector "{m}" (tinykws): smoothing, threshold and refractory time from
 * the run's detector ({c_comment(p.cfg_json)}).{p.note}
 * Q15 scores, int32 running sums, the threshold as exact integer sums: no floating point
 * except the float interface's conversions (tkws_qdetect.h).
 * Generated by tinykws: do not edit; regenerate with `tinykws compile`.
 */
{p.header_start()}
#define {M}_THRESHOLD {c_float(config.threshold)}  /* for information: the decision uses {m}_min_sums */
#define {M}_SCORE_FRAC_BITS 15  /* {m}_StepQ: scores and confidence in Q15 (32768 = 1.0) */
"""
    h += p.header_end(f"""\
    int16_t history[{smooth * len(kw)}];  /* keyword scores of the last {smooth} steps, Q15 */
    int32_t sum[{len(kw)}];  /* each keyword's sum over the rows in use */
""", f"""\
/* One score vector [{len(cats)}] in (softmax probabilities, as completemodel_Predict writes
 * them; each rounded to Q15). Returns the class index that fired, with its smoothed score
 * in *confidence, or -1 (then *confidence is the best keyword's smoothed score). */
int32_t {m}_Step({m}_state *state, const float *scores, float *confidence);
/* The same with Q15 scores (completemodel_PredictQ's output); *confidence is the smoothed
 * score in Q15, rounded down. No floating point. */
int32_t {m}_StepQ({m}_state *state, const int16_t *scores, int16_t *confidence);
""")
    c = p.source_start("Integer keyword", "tkws_qdetect", " (= tinykws.detect.IntTrigger)",
                       c_array("int32_t", f"{m}_min_sums", min_sums, comment=sums_doc) + "\n",
                       {"min_sum": f"{m}_min_sums"})
    c += p.state_glue("tkws_qdetect", ["history", "sum"]) + f"""
/* One step on Q15 scores: the class that fired or -1, the best keyword's sum in *sum. */
static int32_t {m}__step({m}_state *state, const int16_t *scores, int32_t *sum)
{{
    tkws_qdetect_state st = {m}__view(state);
    const int32_t fired = tkws_qdetect_step(&{m}_config, &st, scores, sum);
    {m}__store(state, &st);
    return fired;
}}

int32_t {m}_StepQ({m}_state *state, const int16_t *scores, int16_t *confidence)
{{
    int32_t sum;
    const int32_t fired = {m}__step(state, scores, &sum);
    *confidence = (int16_t)(sum / state->filled);  /* mean, rounded down: <= 32767 */
    return fired;
}}

int32_t {m}_Step({m}_state *state, const float *scores, float *confidence)
{{
    int16_t q[{M}_NUM_CLASSES];
    int32_t sum;
    int32_t i;
    for (i = 0; i < {M}_NUM_CLASSES; ++i) {{
        q[i] = tkws_q15_from_float(scores[i]);
    }}
    const int32_t fired = {m}__step(state, q, &sum);
    /* sum / (32768 m) in float32, as IntTrigger computes it (both conversions are exact
     * while sum < 2^24, i.e. up to 512 steps of smoothing; beyond, both round alike) */
    *confidence = (float)sum / (float)(state->filled << 15);
    return fired;
}}

{p.default_state_glue(q15=True)}"""
    return {"detector.h": h, "detector.c": c}
