"""The model's C (module ``completemodel``), float and integer: ``model.{h,c}``.

Both variants have the same API: explicit state (``completemodel_state``,
``completemodel_Init``, ``completemodel_Step``: float features in, float probabilities out)
and ELL's ``completemodel_Predict`` / ``completemodel_Reset`` on a static default state, so
firmware written for the seed links unchanged (`glue`).

- float (`emit_model`): a `KWSModel`'s tables in tkws_rnn.h's blocked layout, each layer
  written by its architecture's emitter (`cells.CELL_EMITTERS`), normalisation, classifier
  and softmax around them; the loops are the runtime's ``tkws_rnn.c``;
- integer (`emit_int_model`): an `IntModel`'s int8 weight tables in tkws_qrnn.h's SMLAD
  layout, multipliers, biases and the glue over ``tkws_qrnn.c``; plus
  ``completemodel_StepQ`` / ``completemodel_PredictQ`` for firmware with int16 Q7.8
  features (the integer featurizer's output), which return Q15 probabilities. No
  floating-point arithmetic except the float-to-Q15 output conversion of the float entry
  point. The runtime's fixed-point formats come from `tinykws.quant.model`
  (`qformats_h` writes ``tkws_qformats.h``; a test holds the shipped file to it).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from tinykws.codegen.cells import CELL_EMITTERS
from tinykws.codegen.cgen import c_array, c_comment, c_enum, c_ident, c_string_table
from tinykws.codegen.featurizer import FEATURIZER_MODULE
from tinykws.codegen.glue import common_getters, common_protos, ell_calls, header_close, header_open
from tinykws.codegen.writers import ModelWriter, QWriter, use_sparse
from tinykws.errors import TinyKWSError
from tinykws.quant.formats import FEATURE_FRAC_BITS
from tinykws.quant.model import ACT_CLAMP, LOGIT_FRAC, PRE_FRAC, exp2_table, tanh_table

MODEL_MODULE = "completemodel"


# ---------------------------------------------------------------------- shared frame


def _header(m: str, title: str, F: int, C: int, categories: Sequence[str], defines: str,
            state: str, ell: str) -> str:
    """model.h: sizes (`defines`: the variant's own #define lines), the class enum and
    names, the variant's `state` block (state type, init and step prototypes), its ELL
    entry points (`ell`), then `<m>_Reset`, the sink getter and ELL's getters."""
    M = m.upper()
    guard = f"TINYKWS_{M}_MODEL_H"
    h = header_open(guard, title)
    h += f"""\
#define {M}_INPUT_SIZE {F}    /* log-mel features per call */
#define {M}_OUTPUT_SIZE {C}   /* class scores (softmax probabilities) per call */
{defines}
/* The classes, in output order (one list: the enum and the names below agree). */
{c_enum(f"{m}_category", M, list(categories))}
/* Category names indexed by {m}_category. */
extern const char *const {m}_categories[{C}];

{state}
{ell}/* Zero the default state (start of a new stream). */
void {m}_Reset(void);
/* ELL: outputs of sink nodes; this model has none. */
int32_t {m}_GetSinkOutputSize(int32_t index);
"""
    h += common_protos(m, F, C)
    return h + header_close(guard)


def _tail(m: str, calls: Sequence[tuple[str, str, str, str, bool]], F: int, C: int,
          num_nodes: int, meta: dict[str, str]) -> str:
    """model.c after the step functions: ELL's entry points `calls` on the default state,
    `<m>_Reset`, the sink getter and ELL's getters."""
    c = "\n" + ell_calls(m, calls)
    c += f"""
int32_t {m}_GetSinkOutputSize(int32_t index)
{{
    (void)index;
    return 0;
}}
"""
    return c + common_getters(m, F, C, num_nodes, meta)


# ---------------------------------------------------------------------- float


def emit_model(model: Any, categories: Sequence[str], module: str = MODEL_MODULE,
               extra_meta: Optional[dict[str, str]] = None) -> dict[str, str]:
    """KWSModel -> {"model.h": ..., "model.c": ...}: scores = softmax probabilities.

    The state is explicit (`<m>_state`, `<m>_Init`, `<m>_Step`); ELL's `<m>_Predict` and
    `<m>_Reset` run on one static default state, so firmware written for the seed links
    unchanged. Each layer's C comes from its architecture's emitter (`CELL_EMITTERS`).
    """
    m = c_ident(module)
    cfg = model.config
    cfg.check_no_garbage("the C generator")
    F, L, C, S = cfg.input_size, cfg.num_layers, cfg.num_classes, cfg.frame_stride
    if len(categories) != C:
        raise TinyKWSError(f"model has {C} classes but {len(categories)} category names were given")
    emit_cell = CELL_EMITTERS.get(cfg.architecture)
    if emit_cell is None:
        raise TinyKWSError(f"cannot generate C for architecture {cfg.architecture!r}")
    w = ModelWriter(m, stride=S)
    mean = w.vector("mean", model.mean, pad=False)
    std = w.vector("std", model.std, pad=False)
    # frame stride S > 1: the S frames of a step gather in the state (padding stays 0)
    x = w.scratch_buffer("x", max(F, 4)) if S == 1 else w.state_buffer("x", S * F)
    inp = x
    for i, cell in enumerate(model.cells):
        inp = emit_cell(cell, w, i, inp)
    fc = w.matrix("fc", model.fc.weight)
    fcb = w.vector("fc_bias", model.fc.bias)
    scores = w.scratch_buffer("scores", fc.rows_p)
    x_pad = w.scratch.get("x", F) - F  # matvec reads padded columns: keep them zero
    zero_pad = (f"    for (i = {F}; i < {w.scratch['x']}; ++i) {{\n        {x}[i] = 0.0f;\n    }}\n"
                if x_pad else "")
    meta = {
        "categories": ",".join(categories),
        "model_config": json.dumps(cfg.to_dict(), sort_keys=True),
        "generator": "tinykws",
        **(extra_meta or {}),
    }
    h = _float_header(m, cfg, categories, w.state)
    top = inp  # the last layer's state: the classifier reads it every frame
    sparse_define = ("#define TKWS_SPARSE_ROWS 1  /* some matrices are sparse rows */\n"
                     if any("tkws_sparse_rows" in d for d in w.defs) else "")
    steps = "\n".join(f"    {s}" for s in w.steps)
    c = f"""\
/*
 * Keyword-spotting model "{m}", generated by tinykws:
 *   {c_comment(json.dumps(cfg.to_dict(), sort_keys=True))}
 * (x - mean) / std -> {L} x {cfg.architecture} -> Linear -> softmax. Data tables + glue; the
 * loops are the runtime's tkws_rnn.c. Matrices use its blocked layout (see tkws_rnn.h).
 */
#define TKWS_STATIC_RUNTIME 1
{sparse_define}#include "tkws_math.c"
#include "tkws_rnn.c"
#include "model.h"

{c_string_table(f"{m}_categories", list(categories))}
"""
    c += "\n".join(w.defs)
    work = "\n".join(f"        float {k}[{n}];" for k, n in w.scratch.items())
    init = "\n".join(
        f"    for (i = 0; i < {n}; ++i) {{\n        state->{k}[i] = 0.0f;\n    }}"
        for k, n in w.state.items()) + ("\n    state->phase = 0;" if S > 1 else "")
    normalize = f"tkws_normalize(input, {mean}, {std}, {x}, {F});"
    if S > 1:  # gather the frame; the layers step on the S-th (as KWSModel.step)
        normalize = (_phase_guard(S) +
                     f"    tkws_normalize(input, {mean}, {std}, {x} + state->phase * {F}, {F});")
        steps = _every_stride(S, steps, "\n".join(f"    {s}" for s in w.early))
    c += f"""
void {m}_Init({m}_state *state)
{{
    int32_t i;
{init}
}}

void {m}_Step({m}_state *state, const float *input, float *output)
{{
    struct {{  /* this step's work buffers (stack) */
{work}
    }} work;
    int32_t i;
{zero_pad}    {normalize}
{steps}
    tkws_matvec(&{fc.name}, {top}, {fcb}, {scores});
    tkws_softmax({scores}, {C});
    for (i = 0; i < {C}; ++i) {{
        output[i] = {scores}[i];
    }}
}}
"""
    c += _tail(m, [("Predict", "float", "float", "Step", False)], F, C, 3 + L, meta)
    return {"model.h": h, "model.c": c}


def _phase_guard(stride: int) -> str:
    """C that restarts the group when state->phase is out of range (a damaged or foreign
    state), before it indexes state->x."""
    return (f"if ((uint32_t)state->phase >= {stride}u) {{  /* a damaged state: start a new group */\n"
            "        state->phase = 0;\n    }\n")


def _every_stride(stride: int, steps: str, early: str = "") -> str:
    """The layers' statements `steps`, run on the frame that completes a group of `stride`
    (state->phase counts the frames since the last step), and `early` on its first frame."""
    def indent(text: str) -> str:
        return "\n".join("    " + line if line else line for line in text.split("\n"))

    inner = indent(steps)
    first = ""
    if early and stride == 2:
        first = f"        /* the group's first frame: the products of the last step's state */\n{indent(early)}\n"
    elif early:
        first = (f"        if (state->phase == 0) {{  /* the group's first frame: the products of the "
                 f"last step's state */\n{indent(indent(early))}\n        }}\n")
    return f"""\
    if (state->phase < {stride - 1}) {{  /* frame stride {stride}: gather the frame, keep the state */
{first}        state->phase += 1;
    }} else {{
        state->phase = 0;
{inner}
    }}"""


def _stride_note(stride: int) -> str:
    """The step prototypes' comment on a frame stride."""
    if stride == 1:
        return ""
    return (f"\n * The layers step on every {stride}th frame, on the {stride} frames gathered; every frame's"
            "\n * probabilities are the classifier's on the current state.")


def _float_header(m: str, cfg: Any, categories: Sequence[str], state: dict[str, int]) -> str:
    """model.h of the float model: sizes, the class enum and names, the state type, ELL's API."""
    F, H, L, C = cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.num_classes
    members = "\n".join(f"    float {k}[{n}];" for k, n in state.items())
    if cfg.frame_stride > 1:
        members += (f"\n    int32_t phase;  /* frames gathered in x since the last step, "
                    f"0 .. {cfg.frame_stride - 1} */")
    block = f"""\
/* The recurrent state of one audio stream (with a frame stride also the frames of the
 * current group and, uh* / gh*, the products its first frame made for its last). Keep one
 * per stream; all zeros (static storage, or {m}_Init) is the start of a stream. */
typedef struct {{
{members}
}} {m}_state;

/* Start a stream: zero `state`. */
void {m}_Init({m}_state *state);
/* One frame of {F} features in, {C} class probabilities out; advances `state`.{_stride_note(cfg.frame_stride)} */
void {m}_Step({m}_state *state, const float *input, float *output);
"""
    ell = f"""\
/* ELL's API on one static default state: {m}_Step / {m}_Init on it. `context` is unused
 * (ELL passes it to callbacks). */
void {m}_Predict(void *context, const float *input, float *output);
"""
    return _header(m, f"Keyword-spotting model, ELL-compatible module \"{m}\" (tinykws): "
                      f"{cfg.architecture}, {L} x {H}, {C} classes.", F, C, categories, "", block, ell)


# ---------------------------------------------------------------------- integer


def plain_layer(layer: Any) -> bool:
    """A full-rank layer with dense W and U: one `tkws_q*_step` call does it all."""
    return not layer.factored and not use_sparse(layer.w) and not use_sparse(layer.u)


EXP2_OFFSET = 1 << 15  # 2^(-k/256) * 2^16 lies in [2^15, 2^16]: stored less 2^15, in 16 bits


def qtables_c() -> str:
    """The tanh and 2^-f tables as C (how runtime/tkws_qrnn.c's were written; a test checks
    that they still equal the Python reference's). The 2^-f table is stored less
    `EXP2_OFFSET`, which the C adds back: uint16 instead of uint32, 514 B of flash."""
    return (
        c_array("uint16_t", "tkws_tanh_table", tanh_table(),
                comment="round(tanh(k / 64) * 2^15), k = 0 .. 512") + "\n"
        + c_array("uint16_t", "tkws_exp2_table", exp2_table() - EXP2_OFFSET,
                  comment="round(2^(-k / 256) * 2^16) - 2^15, k = 0 .. 256: 0 .. 32768, so 16 bits hold it")
    )


def qformats_h() -> str:
    """runtime/tkws_qformats.h: the integer model's fixed-point formats as `tinykws.quant.model`
    defines them (a test checks that the shipped file is still this text)."""
    shift = ACT_CLAMP.bit_length() - 1
    if ACT_CLAMP != 1 << shift:
        raise TinyKWSError(f"ACT_CLAMP {ACT_CLAMP} is not a power of two")
    return f"""\
/*
 * tkws_qformats.h - the fixed-point formats of the integer model, written from
 * tinykws.quant.model by tinykws.codegen.model.qformats_h (do not edit by hand:
 * tests/test_quant_model.py checks that this file is what that function writes).
 */
#ifndef TKWS_QFORMATS_H
#define TKWS_QFORMATS_H

#define TKWS_Q_PRE_FRAC {PRE_FRAC}      /* pre-activations: int32 Q.{PRE_FRAC} */
#define TKWS_Q_LOGIT_FRAC {LOGIT_FRAC}    /* logits: int32 Q.{LOGIT_FRAC} */
#define TKWS_Q_ACT_CLAMP (1L << {shift})  /* W x + U h, logits: [-2^{shift}, 2^{shift}) */

#endif /* TKWS_QFORMATS_H */
"""


class _IntLayers:
    """The integer model's layers as C: tables (in the writer), state members, zeroing
    loops and step statements, and the scratch sizes they need."""

    def __init__(self, im: Any, w: QWriter, m: str) -> None:
        self.im, self.w, self.m = im, w, m
        f_p = max(4, -(-im.input_size * im.frame_stride // 4) * 4)
        self.members = [f"    int16_t x[{f_p}];  /* this step's Q7.8 features (padding stays 0) */"]
        self.zero = [f"    for (i = 0; i < {f_p}; ++i) {{\n        state->x[i] = 0;\n    }}"]
        self.steps: list[str] = []
        # frame stride > 1: the U h products, which need only the last step's state, run on
        # the group's first frame and the rest on its last, so no frame carries a whole step
        # (the same integer sums: bit for bit what one frame would compute)
        self.early: list[str] = []
        self.acc_members: list[str] = []  # int32: they go first, with the other int32 ones
        self.split = im.frame_stride > 1
        self.inp = "state->x"
        self.acc_rows = 4
        self.inner = 0  # int16 entries of the low-rank inner vector (shared by all layers)
        for i, layer in enumerate(im.layers):
            self._layer(i, layer)

    def _layer(self, i: int, layer: Any) -> None:
        """Layer `i`: its products, multipliers, biases, `tkws_qfast_cell` and state."""
        w, m, im = self.w, self.m, self.im
        uc = max(4, -(-layer.hidden // 4) * 4)  # the state h: cols_p of U
        acc_u = f"state->acc_u{i}" if self.split else "state->acc_u"
        update = f"    tkws_q{im.arch}_update(&{m}_cell{i}, state->h{i}, state->acc_w, {acc_u});"
        if plain_layer(layer):
            wn, wr, _ = w.matrix(f"l{i}_W", layer.w)
            un, ur, uc = w.matrix(f"l{i}_U", layer.u)
            wn, un = "&" + wn, "&" + un
            self.acc_rows = max(self.acc_rows, wr, ur)
            w_lines = [f"    tkws_qmatvec({wn}, {self.inp}, state->acc_w);"]
            u_lines = [f"    tkws_qmatvec({un}, state->h{i}, {acc_u});"]
            u_rows = ur
        else:
            wn = un = "0"  # the products are written out below
            w_lines, u_lines, u_rows = self._products(i, layer, acc_u)
        if self.split:
            self.acc_members.append(f"    int32_t acc_u{i}[{u_rows}];  /* layer {i}'s U h, made on a group's first frame */")
            self.zero.append(f"    for (i = 0; i < {u_rows}; ++i) {{\n        state->acc_u{i}[i] = 0;\n    }}")
            self.early += u_lines
            step = "\n".join(w_lines + [update])
        elif plain_layer(layer):
            step = (f"    tkws_q{im.arch}_step(&{m}_cell{i}, {self.inp}, state->h{i}, "
                    "state->acc_w, state->acc_u);")
        else:
            step = "\n".join(w_lines + u_lines + [update])
        w_in = layer.in_frac if layer.w1 is None else layer.w1_frac
        u_in = layer.h_frac if layer.u1 is None else layer.u1_frac
        wn2 = "W" if layer.w1 is None else "W2"
        un2 = "U" if layer.u1 is None else "U2"
        wm = w.ints(f"l{i}_w_mult", layer.w_mult, f"{wn2} row scales * 2^{PRE_FRAC - w_in + layer.shift}")
        um = w.ints(f"l{i}_u_mult", layer.u_mult, f"{un2} row scales * 2^{PRE_FRAC - u_in + layer.shift}")
        bu = w.ints(f"l{i}_bias_update", layer.bias_update,
                    f"{'b_hn' if im.arch == 'gru' else 'bias_update'}, Q.{PRE_FRAC}")
        bg = "0"
        if im.arch == "fastgrnn":
            bg = w.ints(f"l{i}_bias_gate", layer.bias_gate, f"bias_gate, Q.{PRE_FRAC}")
        elif im.arch == "gru":
            bg = w.ints(f"l{i}_bias_gate", layer.bias_gate,
                        f"input-side biases of r, z, n (r, z: both sides), Q.{PRE_FRAC}")
        w.defs.append(
            f"static const tkws_qfast_cell {m}_cell{i} = {{ {layer.hidden}, {layer.h_frac}, {layer.shift}, "
            f"{wn}, {un}, {wm}, {um}, {bg}, {bu}, {layer.k1}, {layer.k2} }};\n"
        )
        self.members.append(f"    int16_t h{i}[{uc}];      /* layer {i} hidden state, Q.{layer.h_frac} */")
        self.zero.append(f"    for (i = 0; i < {uc}; ++i) {{\n        state->h{i}[i] = 0;\n    }}")
        self.steps.append(step)
        self.inp = f"state->h{i}"

    def _products(self, i: int, layer: Any, acc_u: str) -> tuple[list[str], list[str], int]:
        """The statements acc_w = W x and `acc_u` = U h of a low-rank or sparse layer (through
        the inner vector t for a factored matrix), and the rows U h fills (padded to 4)."""
        both: dict[str, list[str]] = {"W": [], "U": []}
        u_rows = 4  # the inner product writes `acc_u` too, before it narrows into t
        for nm, m1, m1_mult, mat, x, acc in (
                ("W", layer.w1, layer.w1_mult, layer.w, self.inp, "state->acc_w"),
                ("U", layer.u1, layer.u1_mult, layer.u, f"state->h{i}", acc_u)):
            lines = both[nm]
            if m1 is not None:
                call, rows = self.w.product(f"l{i}_{nm}1", m1, x, acc)
                frac = layer.w1_frac if nm == "W" else layer.u1_frac
                src = layer.in_frac if nm == "W" else layer.h_frac
                mult = self.w.ints(f"l{i}_{nm.lower()}1_mult", m1_mult,
                                   f"{nm}1 row scales * 2^{frac - src + 32}: inner vector Q.{frac} "
                                   "(tkws_qnarrow)")
                lines += [f"    {call}", f"    tkws_qnarrow({acc}, {mult}, {m1.shape[0]}, state->t);"]
                self.acc_rows = max(self.acc_rows, rows)
                u_rows = max(u_rows, rows) if nm == "U" else u_rows
                self.inner = max(self.inner, -(-m1.shape[0] // 4) * 4)
                x = "state->t"
            call, rows = self.w.product(f"l{i}_{nm}" + ("2" if m1 is not None else ""), mat, x, acc)
            lines.append(f"    {call}")
            self.acc_rows = max(self.acc_rows, -(-rows // 4) * 4)
            u_rows = max(u_rows, -(-rows // 4) * 4) if nm == "U" else u_rows
        return both["W"], both["U"], u_rows


def emit_int_model(im: Any, module: str = MODEL_MODULE,
                   extra_meta: Optional[dict[str, str]] = None) -> dict[str, str]:
    """IntModel -> {"model.h": ..., "model.c": ...}."""
    m = c_ident(module)
    categories: Sequence[str] = im.categories
    F, C = im.input_size, im.num_classes
    if len(categories) != C:
        raise TinyKWSError(f"integer model has {C} classes but {len(categories)} category names")
    if C > 64:
        raise TinyKWSError("the integer softmax handles at most 64 classes")
    w = QWriter(m)
    layers = _IntLayers(im, w, m)
    fc, fr, _ = w.matrix("fc", im.fc_w)
    layers.acc_rows = max(layers.acc_rows, fr)
    fm = w.ints("fc_mult", im.fc_mult, f"classifier row scales * 2^{LOGIT_FRAC - im.layers[-1].h_frac + im.fc_shift}")
    fb = w.ints("fc_bias", im.fc_bias, f"classifier bias, Q.{LOGIT_FRAC}")
    # the int32 scratch first: it keeps the int16 vectors 4-byte aligned for ldrd (tkws_qrnn.c)
    S = im.frame_stride
    members = [f"    int32_t acc_w[{layers.acc_rows}];  /* scratch: W x */",
               *(layers.acc_members or [f"    int32_t acc_u[{layers.acc_rows}];  /* scratch: U h */"]),
               f"    int32_t logits[{-(-C // 4) * 4}];  /* scratch: Q.{LOGIT_FRAC} */", *layers.members]
    n32 = 2 + max(1, len(layers.acc_members))  # acc_w, acc_u (or acc_u0 ..), logits
    if S > 1:
        members.insert(n32, f"    int32_t phase;  /* frames gathered in x since the last step, 0 .. {S - 1} */")
        layers.zero.append("    state->phase = 0;")
    if layers.inner:
        members.insert(n32, f"    int16_t t[{layers.inner}];  /* scratch: low-rank inner vector */")
    meta = {
        "categories": ",".join(categories),
        "model_config": json.dumps(im.info.get("model_config", {}), sort_keys=True),
        "precision": "int8",
        "generator": "tinykws",
        **(extra_meta or {}),
    }
    h = _int_header(m, im, members)
    steps = ("\n".join(layers.steps) if S == 1
             else _every_stride(S, "\n".join(layers.steps), "\n".join(layers.early)))
    run = f"""
/* The model on the Q7.8 features in state->x: probabilities Q15 into out. */
static void {m}__run({m}_state *state, int16_t *out)
{{
{steps}
    tkws_qlinear(&{fc}, {fm}, {im.fc_shift}, {fb}, {layers.inp}, state->acc_w, state->logits);
    tkws_softmax_q15(state->logits, out, {C});
}}
"""
    c = _int_source(m, im, "\n".join(layers.steps), w.defs) + run + _int_steps(m, F, C, layers.zero, S)
    c += _tail(m, [("PredictQ", "int16_t", "int16_t", "StepQ", False),
                   ("Predict", "float", "float", "Step", False)], F, C, 3 + len(im.layers), meta)
    return {"model.h": h, "model.c": c}


def _int_header(m: str, im: Any, members: Sequence[str]) -> str:
    """model.h of the integer model."""
    M = m.upper()
    F, C, L, H = im.input_size, im.num_classes, len(im.layers), im.layers[0].hidden
    defines = f"""\
#define {M}_INPUT_FRAC_BITS {FEATURE_FRAC_BITS}   /* {m}_StepQ: features in Q7.8 */
#define {M}_OUTPUT_FRAC_BITS 15  /* {m}_StepQ: probabilities in Q15 */
"""
    block = f"""\
/* Everything the model keeps for one audio stream: the recurrent state h*, and one step's
 * work buffers (kept here, not on the stack; the int32 ones first keep the int16 vectors
 * 4-byte aligned; with a frame stride acc_u* carry a group's U h from its first frame to
 * its last). Keep one per stream; all zeros (static storage, or {m}_Init) is the start of
 * a stream. */
typedef struct {{
{chr(10).join(members)}
}} {m}_state;

/* Start a stream: zero `state`'s recurrent state. */
void {m}_Init({m}_state *state);
/* One frame of {F} float log-mel features in, {C} class probabilities out (multiples of
 * 2^-15); advances `state`. The features are rounded to Q7.8 first; the rest is integer
 * arithmetic.{_stride_note(im.frame_stride)} */
void {m}_Step({m}_state *state, const float *input, float *output);
/* The same for int16 Q7.8 features (value * 256, {FEATURIZER_MODULE}_StepInt16's output);
 * probabilities as Q15 (32767 = 1.0). No floating point. */
void {m}_StepQ({m}_state *state, const int16_t *input, int16_t *output);
"""
    ell = f"""\
/* ELL's API on one static default state: {m}_Step / {m}_StepQ / {m}_Init on it.
 * `context` is unused (ELL passes it to callbacks). */
void {m}_Predict(void *context, const float *input, float *output);
void {m}_PredictQ(void *context, const int16_t *input, int16_t *output);
"""
    return _header(m, f"Keyword-spotting model, ELL-compatible module \"{m}\" (tinykws): "
                      f"integer {im.arch}, {L} x {H}, {C} classes, int8 weights.",
                   F, C, im.categories, defines, block, ell)


def _int_source(m: str, im: Any, body: str, defs: Sequence[str]) -> str:
    """model.c of the integer model up to its tables (`defs`)."""
    L = len(im.layers)
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

{c_string_table(f"{m}_categories", list(im.categories))}
"""
    return c + "\n".join(defs)


def _int_steps(m: str, F: int, C: int, zero: Sequence[str], stride: int = 1) -> str:
    """The integer model's `<m>_Init`, `<m>_StepQ` and `<m>_Step` (float in and out);
    frame stride > 1: the frame goes to its place in the group (state->phase)."""
    x = "state->x[i]" if stride == 1 else f"state->x[state->phase * {F} + i]"
    guard = "" if stride == 1 else "    " + _phase_guard(stride)
    return f"""
void {m}_Init({m}_state *state)
{{
    int32_t i;
{chr(10).join(zero)}
}}

void {m}_StepQ({m}_state *state, const int16_t *input, int16_t *output)
{{
    int32_t i;
{guard}    for (i = 0; i < {F}; ++i) {{
        {x} = input[i];
    }}
    {m}__run(state, output);
}}

void {m}_Step({m}_state *state, const float *input, float *output)
{{
    int16_t p[{C}];
    int32_t i;
{guard}    for (i = 0; i < {F}; ++i) {{
        {x} = tkws_q78_from_float(input[i]);
    }}
    {m}__run(state, p);
    for (i = 0; i < {C}; ++i) {{
        output[i] = (float)p[i] * 3.0517578125e-05f; /* 2^-15: exact */
    }}
}}
"""
