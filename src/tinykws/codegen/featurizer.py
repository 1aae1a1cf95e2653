"""The featurizer's C (module ``mfcc``), float and integer: `FeatureParams` ->
``featurizer.{h,c}``.

Both variants have the same ELL-style API, so firmware (docs/examples/kws_loop.c) and the
device harness use either unchanged: explicit state, one per audio stream (``mfcc_state``,
``mfcc_Init``, ``mfcc_Step``), and ELL's ``mfcc_Filter``, ``mfcc_Reset`` and
``mfcc_IsFrameValid`` on one static default state, plus ELL's getters (`glue`).

- float: constant tables (FFT plan, mel weights, window) + glue over ``tkws_logmel.c``;
- integer: the tables of `tinykws.quant.features.int_tables` (the object the Python
  reference computes with, so the two cannot drift apart) + glue over ``tkws_qlogmel.c``;
  also ``mfcc_StepInt16`` / ``mfcc_FilterInt16`` (raw PCM in, Q7.8 out). Its float
  entry point rounds samples to int16 and converts the Q7.8 output back with bit
  operations only, no soft-float calls.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from tinykws.codegen.cgen import c_array, c_comment, c_ident, c_struct
from tinykws.codegen.glue import common_getters, common_protos, ell_calls, header_close, header_open, state_view
from tinykws.feature_tables import fft_positions, fft_twiddles, fft_twiddles4, sparse_mel
from tinykws.errors import TinyKWSError
from tinykws.features import window_table
from tinykws.quant.features import int_tables
from tinykws.quant.formats import FEATURE_FRAC_BITS

FEATURIZER_MODULE = "mfcc"
INT_RUNTIME_FILES = ("tkws_common.h", "tkws_dsp.h", "tkws_qlogmel.h", "tkws_qlogmel.c")


# ---------------------------------------------------------------------- tables


def fft_plan_c(n_fft: int, prefix: str) -> str:
    """C definitions of the tables and the `tkws_fft_plan <prefix>_fft` for an N-point rFFT."""
    return "\n".join([
        c_array("uint16_t", f"{prefix}_fft_pos", fft_positions(n_fft),
                comment="FFT scatter positions"),
        c_array("float", f"{prefix}_fft_tw", fft_twiddles(n_fft), per_line=4,
                comment="W_N^k = (cos, -sin)(2 pi k / N), k < N/2"),
        c_array("float", f"{prefix}_fft_tw4", fft_twiddles4(n_fft), per_line=6,
                comment="radix-4 stage twiddles (W^j, W^2j, W^3j) per stage and j"),
        c_struct("tkws_fft_plan", f"{prefix}_fft", {
            "n": n_fft, "pos": f"{prefix}_fft_pos", "tw": f"{prefix}_fft_tw",
            "tw4": f"{prefix}_fft_tw4"}),
    ])


def featurizer_tables(params: Any, prefix: str = "tkws") -> str:
    """C definitions of the FFT plan and the logmel config `<prefix>_config` (no glue).

    Tests use this alone to build the runtime on the host with any parameters.
    """
    n = int(params.fft_size)
    mel = sparse_mel(params)
    win = window_table(params)  # the very table the Python features use
    if not np.float32(params.log_delta) >= np.finfo(np.float32).tiny:
        raise TinyKWSError(f"log_delta {params.log_delta} is below float32's normal range")
    # The runtime's spectrum is |2X|^2 (or 2|X|): fold 1/(4N) (or 1/2) into the weights.
    scale = 0.5 if not params.power_spec else 0.25 / n
    weights = (mel.weights.astype(np.float64) * scale).astype(np.float32)
    parts = [
        fft_plan_c(n, prefix),
        c_array("uint16_t", f"{prefix}_mel_start", mel.start, comment="first bin of each filter"),
        c_array("uint16_t", f"{prefix}_mel_len", mel.length, comment="bins of each filter"),
        c_array("float", f"{prefix}_mel_weights", weights, per_line=4,
                comment=f"mel weights * {scale:.9g} (spectrum scale), filter after filter"),
    ]
    if win is not None:
        parts.append(c_array("float", f"{prefix}_window", win, per_line=4,
                             comment=f"{params.window} window"))
    config = {
        "hop": params.hop,
        "window_size": params.window_size,
        "ring_size": params.first_block * params.hop,
        "first_block": params.first_block,
        "n_mels": params.n_mels,
        "magnitude": 0 if params.power_spec else 1,
        "preemphasis": float(params.preemphasis),
        "log_delta": float(params.log_delta),
        "window": f"{prefix}_window" if win is not None else "0",
        "fft": f"&{prefix}_fft",
        "mel_start": f"{prefix}_mel_start",
        "mel_len": f"{prefix}_mel_len",
        "mel_weights": f"{prefix}_mel_weights",
    }
    parts.append(c_struct("tkws_logmel_config", f"{prefix}_config", config))
    return "\n".join(parts)


def featurizer_state_members(params: Any) -> str:
    """Members of the featurizer's state struct (one stream: ring, scratch, counters)."""
    return f"""\
    float ring[{params.first_block * params.hop}];  /* last {params.first_block} blocks, pre-emphasised */
    float work[{params.fft_size}];  /* FFT work buffer (scratch) */
    float power[{params.fft_size // 2 + 1}];  /* power spectrum (scratch) */
    float prev;  /* last raw input sample (pre-emphasis state) */
    int32_t pos;  /* where the next block goes in the ring */
    int32_t blocks;  /* blocks since the start, saturating at {params.first_block} */
    int32_t valid;  /* 1 if the last frame covered real samples only */"""


def _packed(pairs: np.ndarray) -> np.ndarray:
    """int16 (re, im) pairs [..., 2] -> uint32 words re | im << 16."""
    p = np.asarray(pairs, dtype=np.int16).astype(np.uint16).astype(np.uint32)
    return (p[..., 0] | (p[..., 1] << 16)).ravel()


def _split_twiddles(t: Any) -> np.ndarray:
    """The split step's twiddles as the C reads them: k = 0..M/2 only (it pairs k with
    M - k), unless a radix-2 last stage also reads W_N^2k for 2k < M. For the default
    512-point FFT (radix 4 only) that is 129 words, not 256: 508 B of flash."""
    m = len(t.split_tw)
    return _packed(t.split_tw if t.radix2 else t.split_tw[: m // 2 + 1])


def int_featurizer_tables(params: Any, prefix: str = "tkws") -> str:
    """C definitions of the tables and `<prefix>_qconfig` (no glue); tests build the runtime
    with this alone."""
    t = int_tables(params)
    split_tw = _split_twiddles(t)
    stage_tw = (np.concatenate([_packed(tw) for tw in t.stage_tw[1:]])
                if len(t.stage_tw) > 1 else np.zeros(1, np.uint32))  # fmt: skip
    parts = [
        c_array("uint16_t", f"{prefix}_qfft_pos", t.pos, comment="FFT scatter positions"),
        c_array("uint32_t", f"{prefix}_qfft_stage_tw", stage_tw, per_line=6,
                comment="radix-4 stages L = 16, 64, ...: Q14 W^j, W^2j, W^3j packed (re | im << 16)"),
        c_array("uint32_t", f"{prefix}_qfft_split_tw", split_tw, per_line=6,
                comment=f"W_N^k Q14 packed (re | im << 16), k < {len(split_tw)}"),
        c_array("uint16_t", f"{prefix}_qmel_start", t.mel_start, comment="first bin of each filter"),
        c_array("uint16_t", f"{prefix}_qmel_len", t.mel_len, comment="bins of each filter"),
        c_array("uint16_t", f"{prefix}_qmel_weights", t.mel_weights,
                comment="mel weights, Q16, filter after filter"),
        c_array("int32_t", f"{prefix}_qlog2", t.log2_table,
                comment="round(log2(1 + i / 64) * 2^16), i = 0..64"),
    ]
    if t.window is not None:
        parts.append(c_array("int16_t", f"{prefix}_qwindow", t.window,
                             comment=f"{params.window} window, Q15"))
    parts.append(
        f"""static const tkws_qlogmel_config {prefix}_qconfig = {{
    {params.hop},     /* hop */
    {params.window_size},     /* window_size */
    {t.ring_size},     /* ring_size */
    {params.first_block},       /* first_block */
    {params.n_mels},      /* n_mels */
    {params.fft_size},     /* n_fft */
    {int(t.radix2)},       /* radix2 */
    {t.preemph},    /* preemph = round({params.preemphasis!r} * 2^13) */
    {t.exp0},     /* exp0 */
    {t.log_floor},  /* log_floor = round(ln(log_delta) * 256) */
    {t.delta_q}u,  /* delta_q = round(log_delta * 2^{-t.exp0}) */
    {f'{prefix}_qwindow' if t.window is not None else '0'},       /* window */
    {prefix}_qfft_pos,
    {prefix}_qfft_stage_tw,
    {prefix}_qfft_split_tw,
    {prefix}_qmel_start,
    {prefix}_qmel_len,
    {prefix}_qmel_weights,
    {prefix}_qlog2
}};
"""
    )
    return "\n".join(parts)


def int_featurizer_state_members(params: Any) -> str:
    """Members of `mfcc_state` (one stream: raw-sample ring, scratch, counters). `work` comes
    first: the int32 members keep the int16 ring 4-byte aligned for the word loads."""
    t = int_tables(params)
    blocks = t.ring_size // params.hop
    return f"""\
    int32_t work[{params.fft_size + 2}];  /* FFT buffer, then the power spectrum (scratch) */
    int16_t ring[{t.ring_size}];  /* the last {blocks} blocks of raw samples */
    uint16_t block_or[{blocks}];  /* per ring block: OR of (x ^ (x >> 15)) */
    int32_t pos;  /* where the next block goes in the ring */
    int32_t blocks;  /* blocks since the start, saturating at {params.first_block} */
    int32_t valid;  /* 1 if the last frame covered real samples only */"""




# ---------------------------------------------------------------------- shared frame


def _header(m: str, params: Any, title: str, input_note: str, extra_defines: str,
            members: str, steps: str, ell_extra: str = "") -> str:
    """featurizer.h: sizes (`input_note`: what a call's input is; `extra_defines`: the
    variant's own #define lines), the state type (`members`), `<m>_Init`, the variant's
    step prototypes (`steps`) and ELL's API (`ell_extra`: the variant's own ELL prototypes
    after `<m>_Filter`)."""
    M = m.upper()
    guard = f"TINYKWS_{M}_FEATURIZER_H"
    h = header_open(guard, title)
    h += f"""\
#define {M}_INPUT_SIZE {params.hop}   /* {input_note} */
#define {M}_OUTPUT_SIZE {params.n_mels}  /* log-mel features per call */
#define {M}_WARMUP_CALLS {params.first_block - 1}  /* calls after a reset whose output is warm-up */
{extra_defines}
/* Everything the featurizer keeps for one audio stream. All zeros (static storage, or
 * {m}_Init) is the start of a stream. */
typedef struct {{
{members}
}} {m}_state;

/* Start a stream: empty window, pre-emphasis state x[-1] = 0. */
void {m}_Init({m}_state *state);
{steps}
/* ELL's API on one static default state. `context` is unused (ELL passes it to callbacks). */
void {m}_Filter(void *context, const float *input, float *output);
{ell_extra}/* Start over: {m}_Init on the default state. */
void {m}_Reset(void);
/* 1 if the last {m}_Filter output covered real samples only, 0 during warm-up. */
int32_t {m}_IsFrameValid(void);
"""
    h += common_protos(m, params.hop, params.n_mels)
    return h + header_close(guard)


def _source(m: str, params: Any, intro: str, includes: Sequence[str], tables: str, glue: str,
            calls: Sequence[tuple[str, str, str, str, bool]], meta: dict[str, str]) -> str:
    """featurizer.c: the intro comment (`intro`: its lines after the feature parameters),
    the runtime `includes`, the `tables`, the variant's `glue` (view, init, steps), ELL's
    entry points `calls` on the default state, and the getters."""
    inc = "".join(f'#include "{name}"\n' for name in includes)
    c = f"""\
/*
 * {intro.split(chr(10))[0]}
 *   {c_comment(json.dumps(params.to_dict(), sort_keys=True))}
{chr(10).join(" * " + line for line in intro.split(chr(10))[1:])}
 */
#define TKWS_STATIC_RUNTIME 1
{inc}#include "featurizer.h"

"""
    c += tables + "\n" + glue + "\n" + ell_calls(m, calls)
    c += f"""
int32_t {m}_IsFrameValid(void)
{{
    return {m}_default_state.valid;
}}
"""
    return c + common_getters(m, params.hop, params.n_mels, 6, meta)


# ---------------------------------------------------------------------- float and integer


def emit_featurizer(params: Any, module: str = FEATURIZER_MODULE) -> dict[str, str]:
    """FeatureParams -> {"featurizer.h": ..., "featurizer.c": ...} (float).

    The state is explicit (`<m>_state`, `<m>_Init`, `<m>_Step`); ELL's `<m>_Filter`,
    `<m>_Reset` and `<m>_IsFrameValid` run on one static default state."""
    m = c_ident(module)
    warmup = params.first_block - 1
    steps = f"""\
/* Feed one block of {params.hop} samples, get {params.n_mels} features. Returns 1 for a real
 * frame; 0 for the first {warmup} calls after {m}_Init, whose frames are computed over a partly
 * zero window (as ELL's featurizer does). */
int32_t {m}_Step({m}_state *state, const float *input, float *output);
"""
    h = _header(m, params, f"Log-mel featurizer, ELL-compatible module \"{m}\" (tinykws).",
                "samples per call (int16-scale floats)", "", featurizer_state_members(params), steps)
    glue = state_view(m, "tkws_logmel", ("ring", "work", "power", "prev", "pos", "blocks"),
                      ": its buffers and counters") + f"""
void {m}_Init({m}_state *state)
{{
    tkws_logmel_state st = {m}__view(state);
    tkws_logmel_reset(&{m}_config, &st);
    state->prev = st.prev;
    state->pos = st.pos;
    state->blocks = st.blocks;
    state->valid = 0;
}}

int32_t {m}_Step({m}_state *state, const float *input, float *output)
{{
    tkws_logmel_state st = {m}__view(state);
    state->valid = tkws_logmel_step(&{m}_config, &st, input, output);
    state->prev = st.prev;
    state->pos = st.pos;
    state->blocks = st.blocks;
    return state->valid;
}}
"""
    meta = {"feature_params": json.dumps(params.to_dict(), sort_keys=True), "generator": "tinykws"}
    c = _source(m, params, f"Log-mel featurizer \"{m}\", generated by tinykws from\n"
                "Data tables + glue; the loops are the runtime's tkws_logmel.c.",
                ("tkws_math.c", "tkws_fft.c", "tkws_logmel.c"), featurizer_tables(params, prefix=m),
                glue, [("Filter", "float", "float", "Step", True)], meta)
    return {"featurizer.h": h, "featurizer.c": c}


def emit_int_featurizer(params: Any, module: str = FEATURIZER_MODULE) -> dict[str, str]:
    """FeatureParams -> {"featurizer.h": ..., "featurizer.c": ...} for the integer path.

    The state is explicit (`<m>_state`, `<m>_Init`, `<m>_Step`, `<m>_StepInt16`) as in the
    float build; ELL's `<m>_Filter`, `<m>_FilterInt16`, `<m>_Reset` and `<m>_IsFrameValid`
    run on one static default state."""
    m = c_ident(module)
    hop, n_mels, warmup = params.hop, params.n_mels, params.first_block - 1
    defines = (f"#define {m.upper()}_Q_FRAC_BITS {FEATURE_FRAC_BITS}  /* {m}_StepInt16 output: "
               f"ln(mel) * 2^{FEATURE_FRAC_BITS} (Q7.8) */\n")
    steps = f"""\
/* Feed one block of {hop} int16-scale float samples, get {n_mels} log-mel features (float).
 * Samples are rounded to int16 (half away from zero, saturated); the features are exactly
 * {m}_StepInt16's Q7.8 values / 256. Returns 1 for a real frame; 0 for the first {warmup}
 * calls after {m}_Init, whose frames are computed over a partly zero window. */
int32_t {m}_Step({m}_state *state, const float *input, float *output);
/* The same from raw int16 PCM to int16 Q7.8 features (no float anywhere). */
int32_t {m}_StepInt16({m}_state *state, const int16_t *input, int16_t *output);
"""
    ell = "void {m}_FilterInt16(void *context, const int16_t *input, int16_t *output);\n".format(m=m)
    h = _header(m, params, f"Integer log-mel featurizer, ELL-compatible module \"{m}\" (tinykws).",
                "samples per call", defines, int_featurizer_state_members(params), steps, ell)
    meta = {
        "feature_params": json.dumps(params.to_dict(), sort_keys=True),
        "feature_format": f"int16 Q7.{FEATURE_FRAC_BITS}",
        "generator": "tinykws",
    }
    c = _source(m, params, f"Integer log-mel featurizer \"{m}\", generated by tinykws from\n"
                "Data tables + glue; the loops are the runtime's tkws_qlogmel.c, bit-exact with\n"
                "tinykws.quant.features. No floating point except the float-in/float-out wrapper, which\n"
                "converts with bit operations.", ("tkws_qlogmel.c",),
                int_featurizer_tables(params, prefix=m), _int_glue(m, hop, n_mels),
                [("FilterInt16", "int16_t", "int16_t", "StepInt16", True),
                 ("Filter", "float", "float", "Step", True)], meta)
    return {"featurizer.h": h, "featurizer.c": c}


def _int_glue(m: str, hop: int, n_mels: int) -> str:
    """The integer featurizer's view, init and steps (int16 and float in)."""
    return state_view(m, "tkws_qlogmel", ("ring", "work", "block_or", "pos", "blocks"),
                      ": its buffers and counters") + f"""
/* The frame for the block just written at tkws_qlogmel_next_block(st); counters back. */
static int32_t {m}__finish({m}_state *state, tkws_qlogmel_state *st, int16_t *output)
{{
    state->valid = tkws_qlogmel_step(&{m}_qconfig, st, output);
    state->pos = st->pos;
    state->blocks = st->blocks;
    return state->valid;
}}

void {m}_Init({m}_state *state)
{{
    tkws_qlogmel_state st = {m}__view(state);
    tkws_qlogmel_reset(&{m}_qconfig, &st);
    state->pos = st.pos;
    state->blocks = st.blocks;
    state->valid = 0;
}}

int32_t {m}_StepInt16({m}_state *state, const int16_t *input, int16_t *output)
{{
    tkws_qlogmel_state st = {m}__view(state);
    int16_t *dst = tkws_qlogmel_next_block(&{m}_qconfig, &st);
    int32_t i;
    for (i = 0; i < {hop}; ++i) {{
        dst[i] = input[i];
    }}
    return {m}__finish(state, &st, output);
}}

int32_t {m}_Step({m}_state *state, const float *input, float *output)
{{
    tkws_qlogmel_state st = {m}__view(state);
    int16_t *dst = tkws_qlogmel_next_block(&{m}_qconfig, &st);
    int16_t q[{n_mels}];
    int32_t i;
    for (i = 0; i < {hop}; ++i) {{
        dst[i] = tkws_pcm16_from_float(input[i]);
    }}
    (void){m}__finish(state, &st, q);
    for (i = 0; i < {n_mels}; ++i) {{
        output[i] = tkws_float_from_q8(q[i]);
    }}
    return state->valid;
}}
"""
