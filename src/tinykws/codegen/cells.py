"""The float C of each recurrent layer type: one emitter per architecture (`CELL_EMITTERS`),
each writing a layer's tables, its `tkws_*_cell` and its step call with a `ModelWriter`.

`codegen.model.emit_model` calls them in layer order; the layers' PyTorch code
(`tinykws.models`) knows nothing of C.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from tinykws.codegen.writers import ModelWriter

# Limits of the C runtime's one-exponential FastGRNN gate (tkws_fastgrnn_step), written into
# every generated cell that uses it. The gate pre-activation u = a + bias_gate is clamped to
# +-GATE_CLAMP (sigma(u) is exactly 0 or 1 in float beyond it). tanh(a + bias_update) is then
# computed from e^-2u e^(2 gap): it must be saturated (tanhf(v) == 1 for v >= 9.01) whenever
# the clamp is active, and e^(2 (GATE_CLAMP + gap)) must stay below FLT_MAX (e^88.7).
GATE_CLAMP = 26.0
TANH_SATURATES_AT = 9.1
GATE_K_MAX_BIAS_GAP = GATE_CLAMP - TANH_SATURATES_AT  # 16.9
assert 2.0 * (GATE_CLAMP + GATE_K_MAX_BIAS_GAP) < 88.7

# A layer emitter: (layer, writer, layer index, C expression of its input) -> its output h (C)
CellEmitter = Callable[[Any, ModelWriter, int, str], str]


def _sigmoid(p: Any) -> float:
    """sigmoid of a scalar parameter, as the layer computes it (float32)."""
    return float(torch.sigmoid(p.detach().float()).item())


def _fast_matrices(cell: Any, w: ModelWriter, i: int) -> dict[str, str]:
    """`tkws_fast_cell` members w, w2, u, u2 (low rank: factor 1 in w/u, factor 2 in
    w2/u2; full rank leaves w2/u2 out, i.e. NULL), plus `tmp` for the layer's step."""
    out = {}
    for nm, rank in (("W", cell.wrank), ("U", cell.urank)):
        key = nm.lower()
        if rank is None:
            out[key] = "&" + w.matrix(f"l{i}_{nm}", getattr(cell, nm)).name
        else:
            first = w.matrix(f"l{i}_{nm}1", getattr(cell, nm + "1"))
            out[key] = "&" + first.name
            out[key + "2"] = "&" + w.matrix(f"l{i}_{nm}2", getattr(cell, nm + "2")).name
            w.scratch_buffer("tmp", first.rows_p)
    return out


def _fast_step(kind: str, cell: Any, w: ModelWriter, i: int, x: str, fields: dict[str, Any]) -> str:
    """The layer's `tkws_fast_cell` and its `tkws_<kind>_step` call; returns the output h (C)."""
    name = w.struct("tkws_fast_cell", f"cell{i}", fields)
    h = w.state_buffer(f"h{i}", max(cell.hidden_size, 4))
    a = w.scratch_buffer("a", cell.hidden_size)
    tmp = "work.tmp" if cell.wrank is not None or cell.urank is not None else "0"
    if w.stride > 1:  # U h on a group's first frame, kept in the state until its last
        uh = w.state_buffer(f"uh{i}", cell.hidden_size)
        w.early_step(f"tkws_fast_uh(&{name}, {h}, {uh}, {tmp});")
        w.step(f"tkws_{kind}_update(&{name}, {x}, {h}, {a}, {tmp}, {uh});")
    else:
        w.step(f"tkws_{kind}_step(&{name}, {x}, {h}, {a}, {tmp});")
    return h


def fastgrnn_c(cell: Any, w: ModelWriter, i: int, x: str) -> str:
    """C for FastGRNN layer `i` on input `x` (a C expression): tables, `tkws_fast_cell`,
    step call (`tkws_fastgrnn_step`). Returns the C expression of the layer's output h.

    When every |bias_gate - bias_update| <= GATE_K_MAX_BIAS_GAP the gate takes the
    one-exponential path (`gate_k`, clamp `GATE_CLAMP`), else two exponentials."""
    fields: dict[str, Any] = {"hidden": cell.hidden_size, **_fast_matrices(cell, w, i)}
    fields["bias_gate"] = w.vector(f"l{i}_bias_gate", cell.bias_gate)
    fields["bias_update"] = w.vector(f"l{i}_bias_update", cell.bias_update)
    fields["k1"] = _sigmoid(cell.zeta)
    fields["k2"] = _sigmoid(cell.nu)
    bg, bu = (p.detach().cpu().float().numpy() for p in (cell.bias_gate, cell.bias_update))
    gap = bg.astype(np.float64) - bu  # [H]
    if np.all(np.abs(gap) <= GATE_K_MAX_BIAS_GAP):
        fields["gate_k"] = w.vector(f"l{i}_gate_k", np.exp(2.0 * gap))
        fields["gate_clamp"] = GATE_CLAMP
    return _fast_step("fastgrnn", cell, w, i, x, fields)


def fastrnn_c(cell: Any, w: ModelWriter, i: int, x: str) -> str:
    """C for FastRNN layer `i` (`tkws_fastrnn_step`); returns the C expression of its output h."""
    fields: dict[str, Any] = {"hidden": cell.hidden_size, **_fast_matrices(cell, w, i)}
    fields["bias_update"] = w.vector(f"l{i}_bias_update", cell.bias_update)
    fields["k1"] = _sigmoid(cell.alpha)
    fields["k2"] = _sigmoid(cell.beta)
    return _fast_step("fastrnn", cell, w, i, x, fields)


def gru_c(layer: Any, w: ModelWriter, i: int, x: str) -> str:
    """C for GRU layer `i` (`tkws_gru_step`; with a frame stride, W_hh h + b_hh on a group's
    first frame and `tkws_gru_update` on its last); returns the C expression of its output h."""
    wih = w.matrix(f"l{i}_w_ih", layer.rnn.weight_ih_l0)
    whh = w.matrix(f"l{i}_w_hh", layer.rnn.weight_hh_l0)
    bhh = w.vector(f"l{i}_b_hh", layer.rnn.bias_hh_l0)
    cell = w.struct("tkws_gru_cell", f"cell{i}", {
        "hidden": layer.hidden_size, "w_ih": "&" + wih.name, "w_hh": "&" + whh.name,
        "b_ih": w.vector(f"l{i}_b_ih", layer.rnn.bias_ih_l0), "b_hh": bhh})
    h = w.state_buffer(f"h{i}", max(layer.hidden_size, 4))
    gi = w.scratch_buffer("g", wih.rows_p)
    if w.stride > 1:  # W_hh h + b_hh on a group's first frame, kept in the state until its last
        gh = w.state_buffer(f"gh{i}", wih.rows_p)
        w.early_step(f"tkws_matvec(&{whh.name}, {h}, {bhh}, {gh});")
        w.step(f"tkws_gru_update(&{cell}, {x}, {h}, {gi}, {gh});")
    else:
        w.step(f"tkws_gru_step(&{cell}, {x}, {h}, {gi}, {w.scratch_buffer('g2', wih.rows_p)});")
    return h


def lstm_c(layer: Any, w: ModelWriter, i: int, x: str) -> str:
    """C for LSTM layer `i` (`tkws_lstm_step`, biases summed); returns its output h (C)."""
    wih = w.matrix(f"l{i}_w_ih", layer.rnn.weight_ih_l0)
    whh = w.matrix(f"l{i}_w_hh", layer.rnn.weight_hh_l0)
    bias = layer.rnn.bias_ih_l0.detach().float() + layer.rnn.bias_hh_l0.detach().float()
    cell = w.struct("tkws_lstm_cell", f"cell{i}", {
        "hidden": layer.hidden_size, "w_ih": "&" + wih.name, "w_hh": "&" + whh.name,
        "bias": w.vector(f"l{i}_bias", bias)})
    h = w.state_buffer(f"h{i}", max(layer.hidden_size, 4))
    c = w.state_buffer(f"c{i}", layer.hidden_size)
    g = w.scratch_buffer("g", wih.rows_p)
    w.step(f"tkws_lstm_step(&{cell}, {x}, {h}, {c}, {g});")
    return h


CELL_EMITTERS: dict[str, CellEmitter] = {
    "fastgrnn": fastgrnn_c, "fastrnn": fastrnn_c, "gru": gru_c, "lstm": lstm_c,
}
