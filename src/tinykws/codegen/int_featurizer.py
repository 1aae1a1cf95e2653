"""Generate the integer featurizer's C (module ``mfcc``) from `tinykws.quant.features`' tables.

Same ELL-style API as the float featurizer (`tinykws.codegen.emit.emit_featurizer`), so
firmware and the device harness use it unchanged:

- ``mfcc_Filter(context, const float *in, float *out)``: the seed's interface (int16-scale
  float samples in, log-mel floats out); samples are rounded to int16 and the Q7.8 output
  converted back with bit operations only (no soft-float calls);
- ``mfcc_FilterInt16(context, const int16_t *in, int16_t *out)``: raw PCM in, Q7.8 out,
  for firmware that has int16 samples and an integer model;
- ``mfcc_Reset``, ``mfcc_IsFrameValid`` and ELL's getters.

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


def int_featurizer_state_decl(params: Any, prefix: str = "tkws") -> str:
    """`<prefix>_qstate` (every buffer, zero at start-up) and `<prefix>_qst` pointing into it."""
    from tinykws.quant.features import int_tables

    t = int_tables(params)
    return f"""\
/* All mutable state of the featurizer: one static struct (zero at start-up), no heap. */
static struct {{
    int32_t work[{params.fft_size + 2}];  /* FFT buffer, then the power spectrum */
    int16_t ring[{t.ring_size}];   /* the last {t.ring_size // params.hop} blocks of raw samples */
    uint16_t block_or[{t.ring_size // params.hop}];  /* per ring block: OR of (x ^ (x >> 15)) */
    int32_t valid;     /* 1 if the last frame covered real samples only */
}} {prefix}_qstate;
static tkws_qlogmel_state {prefix}_qst = {{
    {prefix}_qstate.ring, {prefix}_qstate.work, {prefix}_qstate.block_or, 0, 0 }};
"""


def emit_int_featurizer(params: Any, module: str = FEATURIZER_MODULE) -> dict[str, str]:
    """FeatureParams -> {"featurizer.h": ..., "featurizer.c": ...} for the integer path."""
    m = c_ident(module)
    M = m.upper()
    first_block = params.first_block
    guard = f"TINYKWS_{M}_FEATURIZER_H"
    h = _header_open(guard, f"Integer log-mel featurizer, ELL-compatible module \"{m}\" (tinykws).")
    h += f"""\
#define {M}_INPUT_SIZE {params.hop}   /* samples per call */
#define {M}_OUTPUT_SIZE {params.n_mels}  /* log-mel features per call */
#define {M}_WARMUP_CALLS {first_block - 1}  /* calls after a reset whose output is warm-up */
#define {M}_Q_FRAC_BITS {FEATURE_FRAC_BITS}  /* {m}_FilterInt16 output: ln(mel) * 2^{FEATURE_FRAC_BITS} (Q7.8) */

/* Feed one block of {params.hop} int16-scale float samples, get {params.n_mels} log-mel
 * features (float). Samples are rounded to int16 (half away from zero, saturated); the
 * features are exactly {m}_FilterInt16's Q7.8 values / 256. `context` is unused (ELL passes
 * it to callbacks). After {m}_Reset() the first {first_block - 1} calls write warm-up frames
 * computed over a partly zero window; {m}_IsFrameValid() tells them apart. */
void {m}_Filter(void *context, const float *input, float *output);
/* The same from raw int16 PCM to int16 Q7.8 features (no float anywhere). */
void {m}_FilterInt16(void *context, const int16_t *input, int16_t *output);
/* Start over: empty window, pre-emphasis state x[-1] = 0. */
void {m}_Reset(void);
/* 1 if the last {m}_Filter output covered real samples only, 0 during warm-up. */
int32_t {m}_IsFrameValid(void);
"""
    h += _common_protos(m, params.hop, params.n_mels)
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
    c += int_featurizer_tables(params, prefix=m) + "\n" + int_featurizer_state_decl(params, prefix=m)
    c += f"""
void {m}_FilterInt16(void *context, const int16_t *input, int16_t *output)
{{
    int16_t *dst = tkws_qlogmel_next_block(&{m}_qconfig, &{m}_qst);
    int32_t i;
    (void)context;
    for (i = 0; i < {params.hop}; ++i) {{
        dst[i] = input[i];
    }}
    {m}_qstate.valid = tkws_qlogmel_step(&{m}_qconfig, &{m}_qst, output);
}}

void {m}_Filter(void *context, const float *input, float *output)
{{
    int16_t *dst = tkws_qlogmel_next_block(&{m}_qconfig, &{m}_qst);
    int16_t q[{params.n_mels}];
    int32_t i;
    (void)context;
    for (i = 0; i < {params.hop}; ++i) {{
        dst[i] = tkws_pcm16_from_float(input[i]);
    }}
    {m}_qstate.valid = tkws_qlogmel_step(&{m}_qconfig, &{m}_qst, q);
    for (i = 0; i < {params.n_mels}; ++i) {{
        output[i] = tkws_float_from_q8(q[i]);
    }}
}}

void {m}_Reset(void)
{{
    tkws_qlogmel_reset(&{m}_qconfig, &{m}_qst);
    {m}_qstate.valid = 0;
}}

int32_t {m}_IsFrameValid(void)
{{
    return {m}_qstate.valid;
}}
"""
    c += _common_getters(m, params.hop, params.n_mels, 6, meta)
    return {"featurizer.h": h, "featurizer.c": c}


__all__ = ["INT_RUNTIME_FILES", "emit_int_featurizer", "int_featurizer_tables"]
