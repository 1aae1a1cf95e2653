"""Generate the integer featurizer's C (module ``mfcc``) from `tinykws.quant.features`' tables.

Same ELL-style API as the float featurizer (`tinykws.codegen.emit.emit_featurizer`), so
firmware (docs/examples/kws_loop.c) and the device harness use it unchanged:

- explicit state, one per audio stream: ``mfcc_state``, ``mfcc_Init``, ``mfcc_Step(state,
  const float *in, float *out)`` (int16-scale float samples in, log-mel floats out; samples
  are rounded to int16 and the Q7.8 output converted back with bit operations only, no
  soft-float calls) and ``mfcc_StepInt16(state, const int16_t *in, int16_t *out)`` (raw PCM
  in, Q7.8 out, for firmware that has int16 samples and an integer model);
- ELL's ``mfcc_Filter`` / ``mfcc_FilterInt16``, ``mfcc_Reset`` and ``mfcc_IsFrameValid``
  on one static default state, and ELL's getters.

The tables come from `tinykws.quant.features.int_tables`, the same object the Python
reference computes with, so the two cannot drift apart.
"""


from __future__ import annotations

import json
from typing import Any

import numpy as np

from tinykws.codegen.cgen import c_array, c_comment, c_ident
from tinykws.codegen.emit import (
    FEATURIZER_MODULE,
    _common_getters,
    _common_protos,
    _header_close,
    _header_open,
)
from tinykws.quant.formats import FEATURE_FRAC_BITS

INT_RUNTIME_FILES = ("tkws_common.h", "tkws_dsp.h", "tkws_qlogmel.h", "tkws_qlogmel.c")


def _packed(pairs: np.ndarray) -> np.ndarray:
    """int16 (re, im) pairs [..., 2] -> uint32 words re | im << 16."""
    p = np.asarray(pairs, dtype=np.int16).astype(np.uint16).astype(np.uint32)
    return (p[..., 0] | (p[..., 1] << 16)).ravel()


def int_featurizer_tables(params: Any, prefix: str = "tkws") -> str:
    """C definitions of the tables and `<prefix>_qconfig` (no glue); tests build the runtime
    with this alone."""
    from tinykws.quant.features import int_tables

    t = int_tables(params)
    stage_tw = (np.concatenate([_packed(tw) for tw in t.stage_tw[1:]])
                if len(t.stage_tw) > 1 else np.zeros(1, np.uint32))  # fmt: skip
    parts = [
        c_array("uint16_t", f"{prefix}_qfft_pos", t.pos, comment="FFT scatter positions"),
        c_array("uint32_t", f"{prefix}_qfft_stage_tw", stage_tw, per_line=6,
                comment="radix-4 stages L = 16, 64, ...: Q14 W^j, W^2j, W^3j packed (re | im << 16)"),
        c_array("uint32_t", f"{prefix}_qfft_split_tw", _packed(t.split_tw), per_line=6,
                comment="W_N^k Q14 packed (re | im << 16), k < N/2"),
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
    from tinykws.quant.features import int_tables

    t = int_tables(params)
    blocks = t.ring_size // params.hop
    return f"""\
    int32_t work[{params.fft_size + 2}];  /* FFT buffer, then the power spectrum (scratch) */
    int16_t ring[{t.ring_size}];  /* the last {blocks} blocks of raw samples */
    uint16_t block_or[{blocks}];  /* per ring block: OR of (x ^ (x >> 15)) */
    int32_t pos;  /* where the next block goes in the ring */
    int32_t blocks;  /* blocks since the start, saturating at {params.first_block} */
    int32_t valid;  /* 1 if the last frame covered real samples only */"""


def emit_int_featurizer(params: Any, module: str = FEATURIZER_MODULE) -> dict[str, str]:
    """FeatureParams -> {"featurizer.h": ..., "featurizer.c": ...} for the integer path.

    The state is explicit (`<m>_state`, `<m>_Init`, `<m>_Step`, `<m>_StepInt16`) as in the
    float build; ELL's `<m>_Filter`, `<m>_FilterInt16`, `<m>_Reset` and `<m>_IsFrameValid`
    run on one static default state."""
    m = c_ident(module)
    M = m.upper()
    hop, n_mels, warmup = params.hop, params.n_mels, params.first_block - 1
    guard = f"TINYKWS_{M}_FEATURIZER_H"
    h = _header_open(guard, f"Integer log-mel featurizer, ELL-compatible module \"{m}\" (tinykws).")
    h += f"""\
#define {M}_INPUT_SIZE {hop}   /* samples per call */
#define {M}_OUTPUT_SIZE {n_mels}  /* log-mel features per call */
#define {M}_WARMUP_CALLS {warmup}  /* calls after a reset whose output is warm-up */
#define {M}_Q_FRAC_BITS {FEATURE_FRAC_BITS}  /* {m}_StepInt16 output: ln(mel) * 2^{FEATURE_FRAC_BITS} (Q7.8) */

/* Everything the featurizer keeps for one audio stream. All zeros (static storage, or
 * {m}_Init) is the start of a stream. */
typedef struct {{
{int_featurizer_state_members(params)}
}} {m}_state;

/* Start a stream: empty window, pre-emphasis state x[-1] = 0. */
void {m}_Init({m}_state *state);
/* Feed one block of {hop} int16-scale float samples, get {n_mels} log-mel features (float).
 * Samples are rounded to int16 (half away from zero, saturated); the features are exactly
 * {m}_StepInt16's Q7.8 values / 256. Returns 1 for a real frame; 0 for the first {warmup}
 * calls after {m}_Init, whose frames are computed over a partly zero window. */
int32_t {m}_Step({m}_state *state, const float *input, float *output);
/* The same from raw int16 PCM to int16 Q7.8 features (no float anywhere). */
int32_t {m}_StepInt16({m}_state *state, const int16_t *input, int16_t *output);

/* ELL's API on one static default state. `context` is unused (ELL passes it to callbacks). */
void {m}_Filter(void *context, const float *input, float *output);
void {m}_FilterInt16(void *context, const int16_t *input, int16_t *output);
/* Start over: {m}_Init on the default state. */
void {m}_Reset(void);
/* 1 if the last {m}_Filter output covered real samples only, 0 during warm-up. */
int32_t {m}_IsFrameValid(void);
"""
    h += _common_protos(m, hop, n_mels)
    h += _header_close(guard)

    meta = {
        "feature_params": json.dumps(params.to_dict(), sort_keys=True),
        "feature_format": f"int16 Q7.{FEATURE_FRAC_BITS}",
        "generator": "tinykws",
    }
    c = f"""\
/*
 * Integer log-mel featurizer "{m}", generated by tinykws from
 *   {c_comment(json.dumps(params.to_dict(), sort_keys=True))}
 * Data tables + glue; the loops are the runtime's tkws_qlogmel.c, bit-exact with
 * tinykws.quant.features. No floating point except the float-in/float-out wrapper, which
 * converts with bit operations.
 */
#define TKWS_STATIC_RUNTIME 1
#include "tkws_qlogmel.c"
#include "featurizer.h"

"""
    c += int_featurizer_tables(params, prefix=m)
    c += f"""
/* The runtime's view of a {m}_state: its buffers and counters. */
static tkws_qlogmel_state {m}__view({m}_state *state)
{{
    tkws_qlogmel_state st = {{
        .ring = state->ring,
        .work = state->work,
        .block_or = state->block_or,
        .pos = state->pos,
        .blocks = state->blocks,
    }};
    return st;
}}

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

/* The state behind ELL's API (zero at start-up: static storage). */
static {m}_state {m}_default_state;

void {m}_FilterInt16(void *context, const int16_t *input, int16_t *output)
{{
    (void)context;
    (void){m}_StepInt16(&{m}_default_state, input, output);
}}

void {m}_Filter(void *context, const float *input, float *output)
{{
    (void)context;
    (void){m}_Step(&{m}_default_state, input, output);
}}

void {m}_Reset(void)
{{
    {m}_Init(&{m}_default_state);
}}

int32_t {m}_IsFrameValid(void)
{{
    return {m}_default_state.valid;
}}
"""
    c += _common_getters(m, hop, n_mels, 6, meta)
    return {"featurizer.h": h, "featurizer.c": c}


__all__ = ["INT_RUNTIME_FILES", "emit_int_featurizer", "int_featurizer_state_members",
           "int_featurizer_tables"]
