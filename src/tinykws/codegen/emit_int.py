"""Generate C for the integer model (`tinykws.quant.model.IntModel`): ``model.{h,c}``.

The same module name and API as the float model: explicit state (``completemodel_state``,
``completemodel_Init``, ``completemodel_Step``: float features in, float probabilities
out) and ELL's ``completemodel_Predict`` / ``completemodel_Reset`` on a static default
state; plus ``completemodel_StepQ`` / ``completemodel_PredictQ`` for firmware with int16
Q7.8 features (the integer featurizer's output), which return Q15 probabilities. The loops are the runtime's ``tkws_qrnn.c``;
this file writes int8 weight tables in its blocked SMLAD layout, multipliers, biases, the
tanh and 2^-f tables, and the glue. No floating-point arithmetic except the float-to-Q15
output conversion of the float entry point.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import numpy as np

from tinykws.codegen.cgen import (
    c_array,
    c_comment,
    c_enum,
    c_float,
    c_ident,
    c_string_table,
    c_struct,
)
from tinykws.codegen.emit import (
    FEATURIZER_MODULE,
    MODEL_MODULE,
    _common_getters,
    _common_protos,
    _header_close,
    _header_open,
    detector_plan,
    sparse_rows_cheaper,
)
from tinykws.errors import TinyKWSError

# byte order of the 4 weights of one row inside a group of 4 columns (see tkws_qrnn.h)
_PERM = (0, 2, 1, 3)


def qblocked(mat: np.ndarray) -> tuple[int, int, int, int, np.ndarray]:
    """int8 [rows, cols] -> (rows, cols, rows_p, cols_p, data int8) in tkws_qrnn.h's layout."""
    mat = np.asarray(mat)
    if mat.dtype != np.int8:
        raise TinyKWSError(f"qblocked: expected int8 weights, got {mat.dtype}")
    rows, cols = mat.shape
    rows_p, cols_p = -(-rows // 4) * 4, max(4, -(-cols // 4) * 4)
    p = np.zeros((rows_p, cols_p), np.int8)
    p[:rows, :cols] = mat
    # [row block, row in block, col group, col in group] -> [row block, col group, row, byte]
    b = p.reshape(rows_p // 4, 4, cols_p // 4, 4)[..., list(_PERM)]
    # byte k of a row holds column _PERM[k]: bytes (w0, w2, w1, w3)
    return rows, cols, rows_p, cols_p, b.transpose(0, 2, 1, 3).ravel()


def qunblocked(rows: int, cols: int, data: np.ndarray) -> np.ndarray:
    """Inverse of `qblocked` (for tests)."""
    rows_p, cols_p = -(-rows // 4) * 4, max(4, -(-cols // 4) * 4)
    b = np.asarray(data, np.int8).reshape(rows_p // 4, cols_p // 4, 4, 4).transpose(0, 2, 1, 3)
    out = np.empty_like(b)
    out[..., list(_PERM)] = b
    return out.reshape(rows_p, cols_p)[:rows, :cols]


def _int32(v: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(v, np.int64)
    if v.size and (v.max() > 2**31 - 1 or v.min() < -(2**31)):
        raise TinyKWSError(f"{what} does not fit int32")
    return v


# Instructions of the int8 kernels on the Cortex-M4 (gcc; `bench/frontier.py --kernels`,
# docs/benchmarks.md, "Kilobyte models"): the dense SMLAD kernel ~1.22 a multiply-accumulate
# whatever the weights; the sparse rows (`tkws_qspmv`) ~5.5 a nonzero plus ~20 a row.
DENSE_PER_MAC = 1.22
SPARSE_PER_NONZERO = 5.5
SPARSE_PER_ROW = 20.0
FORCE_STORAGE: Optional[str] = None  # "dense" | "sparse": override the choice (benchmarks)


def use_sparse(mat: np.ndarray) -> bool:
    """Whether an int8 matrix is stored as sparse rows (`tkws_qsparse`): when that costs
    fewer instructions than the dense kernel (then it is also at most ~1/3 of the dense
    flash: 2 bytes a nonzero), and it has at most 256 columns (one byte a column index)."""
    return sparse_rows_cheaper(np.asarray(mat), FORCE_STORAGE, 4, DENSE_PER_MAC,
                               SPARSE_PER_NONZERO, SPARSE_PER_ROW)


def plain_layer(layer: Any) -> bool:
    """A full-rank layer with dense W and U: one `tkws_q*_step` call does it all."""
    return not layer.factored and not use_sparse(layer.w) and not use_sparse(layer.u)


class _QWriter:
    def __init__(self, prefix: str) -> None:
        self.p = prefix
        self.defs: list[str] = []

    def matrix(self, name: str, mat: np.ndarray) -> tuple[str, int, int]:
        rows, cols, rows_p, cols_p, data = qblocked(mat)
        cname = f"{self.p}_{name}"
        self.defs.append(
            f"/* {name} [{rows}, {cols}] int8, blocked 4 x 4 for SMLAD (tkws_qrnn.h) */\n"
            + c_array("int8_t", f"{cname}_data", data, per_line=16).replace("] = {", "] TKWS_ALIGN4 = {", 1)
        )
        self.defs.append(
            f"static const tkws_qmatrix {cname} = {{ {rows}, {cols}, {rows_p}, {cols_p}, {cname}_data }};\n"
        )
        return cname, rows_p, cols_p

    def sparse(self, name: str, mat: np.ndarray) -> str:
        """Define the `tkws_qsparse` rows of int8 `mat` (nonzeros only)."""
        rows, cols = mat.shape
        cname = f"{self.p}_{name}"
        r, c = np.nonzero(mat)  # row-major: row by row, columns ascending
        count = np.bincount(r, minlength=rows)
        self.defs.append(
            f"/* {name} [{rows}, {cols}] int8, {len(r)} nonzeros ({len(r) / mat.size:.1%}): "
            "sparse rows (tkws_qrnn.h) */\n"
            + c_array("uint16_t", f"{cname}_count", count, per_line=16)
            + c_array("uint8_t", f"{cname}_col", c if len(c) else np.zeros(1, np.int64), per_line=16)
            + c_array("int8_t", f"{cname}_val", mat[r, c] if len(r) else np.zeros(1, np.int8), per_line=16)
        )
        self.defs.append(
            f"static const tkws_qsparse {cname} = {{ {rows}, {cols}, {cname}_count, {cname}_col, "
            f"{cname}_val }};\n"
        )
        return cname

    def product(self, name: str, mat: np.ndarray, x: str, acc: str) -> tuple[str, int]:
        """Store `mat` dense or sparse (whichever `use_sparse` says is cheaper); returns the
        C statement acc = mat x and the rows of acc it writes (padded when dense)."""
        if use_sparse(mat):
            return f"tkws_qspmv(&{self.sparse(name, mat)}, {x}, {acc});", mat.shape[0]
        cname, rows_p, _ = self.matrix(name, mat)
        return f"tkws_qmatvec_call(&{cname}, {x}, {acc});", rows_p

    def ints(self, name: str, v: np.ndarray, comment: str) -> str:
        cname = f"{self.p}_{name}"
        self.defs.append(c_array("int32_t", cname, _int32(v, name), comment=comment))
        return cname


def qtables_c() -> str:
    """The tanh and 2^-f tables as C (how runtime/tkws_qrnn.c's were written; a test checks
    that they still equal the Python reference's)."""
    from tinykws.quant.model import exp2_table, tanh_table

    return (
        c_array("uint16_t", "tkws_tanh_table", tanh_table(),
                comment="round(tanh(k / 64) * 2^15), k = 0 .. 512") + "\n"
        + c_array("uint32_t", "tkws_exp2_table", exp2_table(),
                  comment="round(2^(-k / 256) * 2^16), k = 0 .. 256")
    )


def emit_int_model(im: Any, module: str = MODEL_MODULE,
                   extra_meta: Optional[dict[str, str]] = None) -> dict[str, str]:
    """IntModel -> {"model.h": ..., "model.c": ...}."""
    from tinykws.quant.formats import FEATURE_FRAC_BITS
    from tinykws.quant.model import LOGIT_FRAC, PRE_FRAC

    m = c_ident(module)
    M = m.upper()
    categories: Sequence[str] = im.categories
    F, C, L = im.input_size, im.num_classes, len(im.layers)
    H = im.layers[0].hidden
    if len(categories) != C:
        raise TinyKWSError(f"integer model has {C} classes but {len(categories)} category names")
    if C > 64:
        raise TinyKWSError("the integer softmax handles at most 64 classes")
    w = _QWriter(m)
    steps, members = [], []
    f_p = max(4, -(-F // 4) * 4)
    members.append(f"    int16_t x[{f_p}];  /* this step's Q7.8 features (padding stays 0) */")
    zero = [f"    for (i = 0; i < {f_p}; ++i) {{\n        state->x[i] = 0;\n    }}"]
    inp = "state->x"
    acc_rows = 4
    inner = 0  # int16 entries of the low-rank inner vector (shared by all layers)
    for i, layer in enumerate(im.layers):
        uc = max(4, -(-layer.hidden // 4) * 4)  # the state h: cols_p of U
        if plain_layer(layer):
            wn, wr, _ = w.matrix(f"l{i}_W", layer.w)
            un, ur, uc = w.matrix(f"l{i}_U", layer.u)
            wn, un = "&" + wn, "&" + un
            acc_rows = max(acc_rows, wr, ur)
            step = (f"    tkws_q{im.arch}_step(&{m}_cell{i}, {inp}, state->h{i}, "
                    "state->acc_w, state->acc_u);")
        else:
            wn = un = "0"  # the products are written out below
            lines = []
            for nm, m1, m1_mult, mat, x, acc in (
                    ("W", layer.w1, layer.w1_mult, layer.w, inp, "state->acc_w"),
                    ("U", layer.u1, layer.u1_mult, layer.u, f"state->h{i}", "state->acc_u")):
                if m1 is not None:
                    call, rows = w.product(f"l{i}_{nm}1", m1, x, acc)
                    frac = layer.w1_frac if nm == "W" else layer.u1_frac
                    src = layer.in_frac if nm == "W" else layer.h_frac
                    mult = w.ints(f"l{i}_{nm.lower()}1_mult", m1_mult,
                                  f"{nm}1 row scales * 2^{frac - src + 32}: inner vector Q.{frac} "
                                  "(tkws_qnarrow)")
                    lines += [f"    {call}",
                              f"    tkws_qnarrow({acc}, {mult}, {m1.shape[0]}, state->t);"]
                    acc_rows, inner = max(acc_rows, rows), max(inner, -(-m1.shape[0] // 4) * 4)
                    x = "state->t"
                call, rows = w.product(f"l{i}_{nm}" + ("2" if m1 is not None else ""), mat, x, acc)
                lines.append(f"    {call}")
                acc_rows = max(acc_rows, -(-rows // 4) * 4)
            step = "\n".join(lines + [f"    tkws_q{im.arch}_update(&{m}_cell{i}, state->h{i}, "
                                       "state->acc_w, state->acc_u);"])
        w_in = layer.in_frac if layer.w1 is None else layer.w1_frac
        u_in = layer.h_frac if layer.u1 is None else layer.u1_frac
        wn2 = "W" if layer.w1 is None else "W2"
        un2 = "U" if layer.u1 is None else "U2"
        wm = w.ints(f"l{i}_w_mult", layer.w_mult, f"{wn2} row scales * 2^{PRE_FRAC - w_in + layer.shift}")
        um = w.ints(f"l{i}_u_mult", layer.u_mult, f"{un2} row scales * 2^{PRE_FRAC - u_in + layer.shift}")
        bu = w.ints(f"l{i}_bias_update", layer.bias_update, f"bias_update, Q.{PRE_FRAC}")
        bg = "0"
        if im.arch == "fastgrnn":
            bg = w.ints(f"l{i}_bias_gate", layer.bias_gate, f"bias_gate, Q.{PRE_FRAC}")
        w.defs.append(
            f"static const tkws_qfast_cell {m}_cell{i} = {{ {layer.hidden}, {layer.h_frac}, {layer.shift}, "
            f"{wn}, {un}, {wm}, {um}, {bg}, {bu}, {layer.k1}, {layer.k2} }};\n"
        )
        members.append(f"    int16_t h{i}[{uc}];      /* layer {i} hidden state, Q.{layer.h_frac} */")
        zero.append(f"    for (i = 0; i < {uc}; ++i) {{\n        state->h{i}[i] = 0;\n    }}")
        steps.append(step)
        inp = f"state->h{i}"
    fc, fr, _ = w.matrix("fc", im.fc_w)
    acc_rows = max(acc_rows, fr)
    fm = w.ints("fc_mult", im.fc_mult, f"classifier row scales * 2^{LOGIT_FRAC - im.layers[-1].h_frac + im.fc_shift}")
    fb = w.ints("fc_bias", im.fc_bias, f"classifier bias, Q.{LOGIT_FRAC}")
    # the int32 scratch first: it keeps the int16 vectors 4-byte aligned for ldrd (tkws_qrnn.c)
    members = [f"    int32_t acc_w[{acc_rows}];  /* scratch: W x */",
               f"    int32_t acc_u[{acc_rows}];  /* scratch: U h */",
               f"    int32_t logits[{-(-C // 4) * 4}];  /* scratch: Q.{LOGIT_FRAC} */", *members]
    if inner:
        members.insert(3, f"    int16_t t[{inner}];  /* scratch: low-rank inner vector */")

    meta = {
        "categories": ",".join(categories),
        "model_config": json.dumps(im.info.get("model_config", {}), sort_keys=True),
        "precision": "int8",
        "generator": "tinykws",
        **(extra_meta or {}),
    }
    guard = f"TINYKWS_{M}_MODEL_H"
    h = _header_open(guard, f"Keyword-spotting model, ELL-compatible module \"{m}\" (tinykws): "
                            f"integer {im.arch}, {L} x {H}, {C} classes, int8 weights.")
    h += f"""\
#define {M}_INPUT_SIZE {F}    /* log-mel features per call */
#define {M}_OUTPUT_SIZE {C}   /* class scores (softmax probabilities) per call */
#define {M}_INPUT_FRAC_BITS {FEATURE_FRAC_BITS}   /* {m}_StepQ: features in Q7.8 */
#define {M}_OUTPUT_FRAC_BITS 15  /* {m}_StepQ: probabilities in Q15 */

/* The classes, in output order (one list: the enum and the names below agree). */
{c_enum(f"{m}_category", M, list(categories))}
/* Category names indexed by {m}_category. */
extern const char *const {m}_categories[{C}];

/* Everything the model keeps for one audio stream: the recurrent state h*, and one step's
 * work buffers (kept here, not on the stack; the int32 ones first keep the int16 vectors
 * 4-byte aligned). Keep one per stream; all zeros (static storage, or {m}_Init) is the
 * start of a stream. */
typedef struct {{
{chr(10).join(members)}
}} {m}_state;

/* Start a stream: zero `state`'s recurrent state. */
void {m}_Init({m}_state *state);
/* One frame of {F} float log-mel features in, {C} class probabilities out (multiples of
 * 2^-15); advances `state`. The features are rounded to Q7.8 first; the rest is integer
 * arithmetic. */
void {m}_Step({m}_state *state, const float *input, float *output);
/* The same for int16 Q7.8 features (value * 256, {FEATURIZER_MODULE}_StepInt16's output);
 * probabilities as Q15 (32767 = 1.0). No floating point. */
void {m}_StepQ({m}_state *state, const int16_t *input, int16_t *output);

/* ELL's API on one static default state: {m}_Step / {m}_StepQ / {m}_Init on it.
 * `context` is unused (ELL passes it to callbacks). */
void {m}_Predict(void *context, const float *input, float *output);
void {m}_PredictQ(void *context, const int16_t *input, int16_t *output);
/* Zero the default state (start of a new stream). */
void {m}_Reset(void);
/* ELL: outputs of sink nodes; this model has none. */
int32_t {m}_GetSinkOutputSize(int32_t index);
"""
    h += _common_protos(m, F, C)
    h += _header_close(guard)

    body = "\n".join(steps)
    call_define = ("#define TKWS_QMATVEC_CALL 1  /* one shared copy of the dense kernel */\n"
                   if "tkws_qmatvec_call(" in body else "")
    c = f"""\
/*
 * Integer keyword-spotting model "{m}", generated by tinykws:
 *   {c_comment(json.dumps(im.info.get("model_config", {}), sort_keys=True))}
 * Q7.8 features -> {L} x integer {im.arch} (int8 weights, int16 state) -> int8 Linear ->
 * integer softmax. Bit-exact with tinykws.quant.model.IntModel; formats in tkws_qrnn.h.
 */
#define TKWS_STATIC_RUNTIME 1
{call_define}#include "tkws_common.h"
#include "model.h"

#if defined(__GNUC__) || defined(__clang__)
#define TKWS_ALIGN4 __attribute__((aligned(4)))
#else
#define TKWS_ALIGN4
#endif

#include "tkws_qrnn.c"

{c_string_table(f"{m}_categories", list(categories))}
"""
    c += "\n".join(w.defs)
    c += f"""
/* The model on the Q7.8 features in state->x: probabilities Q15 into out. */
static void {m}__run({m}_state *state, int16_t *out)
{{
{body}
    tkws_qlinear(&{fc}, {fm}, {im.fc_shift}, {fb}, {inp}, state->acc_w, state->logits);
    tkws_softmax_q15(state->logits, out, {C});
}}

void {m}_Init({m}_state *state)
{{
    int32_t i;
{chr(10).join(zero)}
}}

void {m}_StepQ({m}_state *state, const int16_t *input, int16_t *output)
{{
    int32_t i;
    for (i = 0; i < {F}; ++i) {{
        state->x[i] = input[i];
    }}
    {m}__run(state, output);
}}

void {m}_Step({m}_state *state, const float *input, float *output)
{{
    int16_t p[{C}];
    int32_t i;
    for (i = 0; i < {F}; ++i) {{
        state->x[i] = tkws_q78_from_float(input[i]);
    }}
    {m}__run(state, p);
    for (i = 0; i < {C}; ++i) {{
        output[i] = (float)p[i] * 3.0517578125e-05f; /* 2^-15: exact */
    }}
}}

/* The state behind ELL's API (zero at start-up: static storage). */
static {m}_state {m}_default_state;

void {m}_PredictQ(void *context, const int16_t *input, int16_t *output)
{{
    (void)context;
    {m}_StepQ(&{m}_default_state, input, output);
}}

void {m}_Predict(void *context, const float *input, float *output)
{{
    (void)context;
    {m}_Step(&{m}_default_state, input, output);
}}

void {m}_Reset(void)
{{
    {m}_Init(&{m}_default_state);
}}

int32_t {m}_GetSinkOutputSize(int32_t index)
{{
    (void)index;
    return 0;
}}
"""
    c += _common_getters(m, F, C, 3 + L, meta)
    return {"model.h": h, "model.c": c}


# ---------------------------------------------------------------------- integer detector

MAX_INT_SMOOTH_STEPS = 65535  # sums of Q15 scores and (m << 15) stay within int32


def emit_int_detector(config: Any, categories: Sequence[str], frame_ms: float,
                      module: str = "detector") -> dict[str, str]:
    """DetectorConfig -> {"detector.h": ..., "detector.c": ...} for integer builds:
    `tinykws.detect.IntTrigger` in C (runtime `tkws_qdetect.c`), one Q15 score vector per
    `frame_ms`.

    The API of the float detector (`emit.emit_detector`: `<m>_state`, `<m>_Init`,
    `<m>_Step`, `<m>_Reset`, `<m>_Process` with float probabilities in and a float
    confidence out), so firmware and the device harness call both alike; the float scores
    are turned into Q15 with bit operations (exact for the integer model's outputs), and
    the confidence is the one float division a frame. `<m>_StepQ` / `<m>_ProcessQ` take
    `completemodel_PredictQ`'s Q15 scores directly and use no floating point at all. The
    threshold becomes the table `<m>_min_sums` (`tinykws.detect.threshold_sums`)."""
    from tinykws.detect import threshold_sums

    p = detector_plan(config, categories, frame_ms, module)
    m, M, cats, kw, smooth, cfg_json, guard = p.m, p.M, p.cats, p.kw, p.smooth, p.cfg_json, p.guard
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
 * the run's detector ({c_comment(cfg_json)}).{p.note}
 * Q15 scores, int32 running sums, the threshold as exact integer sums: no floating point
 * except the float interface's conversions (tkws_qdetect.h).
 * Generated by tinykws: do not edit; regenerate with `tinykws compile`.
 */
{p.header_start()}
#define {M}_THRESHOLD {c_float(config.threshold)}  /* for information: the decision uses {m}_min_sums */
#define {M}_SCORE_FRAC_BITS 15  /* {m}_StepQ: scores and confidence in Q15 (32768 = 1.0) */

/* Everything the detector keeps for one stream. All zeros is NOT a valid start: call
 * {m}_Init first. */
typedef struct {{
    int16_t history[{smooth * len(kw)}];  /* keyword scores of the last {smooth} steps, Q15 */
    int32_t sum[{len(kw)}];  /* each keyword's sum over the rows in use */
    int32_t pos;  /* history row written next */
    int32_t filled;  /* rows in use */
    int32_t since;  /* steps since the last detection (saturating) */
}} {m}_state;

/* Start a stream: no history, no detection yet. */
void {m}_Init({m}_state *state);
/* One score vector [{len(cats)}] in (softmax probabilities, as completemodel_Predict writes
 * them; each rounded to Q15). Returns the class index that fired, with its smoothed score
 * in *confidence, or -1 (then *confidence is the best keyword's smoothed score). */
int32_t {m}_Step({m}_state *state, const float *scores, float *confidence);
/* The same with Q15 scores (completemodel_PredictQ's output); *confidence is the smoothed
 * score in Q15, rounded down. No floating point. */
int32_t {m}_StepQ({m}_state *state, const int16_t *scores, int16_t *confidence);

/* The same on one static default state. */
void {m}_Reset(void);
int32_t {m}_Process(const float *scores, float *confidence);
int32_t {m}_ProcessQ(const int16_t *scores, int16_t *confidence);

#if defined(__cplusplus)
}} /* extern "C" */
#endif

#endif /* {guard} */
"""
    c = f"""\
/*
 * Integer keyword detector "{m}", generated by tinykws from the run's DetectorConfig
 *   {c_comment(cfg_json)}
 * Constants + glue; the logic is the runtime's tkws_qdetect.c (= tinykws.detect.IntTrigger).
 */
#define TKWS_STATIC_RUNTIME 1
#include "tkws_qdetect.c"
#include "detector.h"

{c_array("uint16_t", f"{m}_keywords", kw, comment="classes that may fire: " + c_comment(", ".join(cats[i] for i in kw)))}
{c_array("int32_t", f"{m}_min_sums", min_sums, comment=sums_doc)}
{c_struct("tkws_qdetect_config", f"{m}_config", {
    "n_keywords": f"{M}_NUM_KEYWORDS", "keyword": f"{m}_keywords",
    "smooth": f"{M}_SMOOTH_STEPS", "refractory": f"{M}_REFRACTORY_STEPS",
    "min_sum": f"{m}_min_sums"})}
{p.state_glue("tkws_qdetect", ["history", "sum"])}
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
