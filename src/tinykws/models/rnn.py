"""GRU and LSTM baselines (what the seed's ELL tutorial trained), one layer per cell.

Each wraps one `nn.GRU` / `nn.LSTM` layer (time-major), so the parameters keep PyTorch's
names and gate order (`rnn.weight_ih_l0` [3H|4H, in], `rnn.weight_hh_l0`, `rnn.bias_ih_l0`,
`rnn.bias_hh_l0`; GRU gates r, z, n; LSTM gates i, f, g, o) and export to the standard ONNX
GRU / LSTM operators.  The interface matches the FastGRNN cells: time-major sequences,
`init_state`, `step`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from tinykws.codegen.emit import ModelWriter


class GRULayer(nn.Module):
    """One GRU layer; state h [B, H]."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnn = nn.GRU(input_size, hidden_size)

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> Tensor:
        """Zero hidden state [B, H]."""
        return torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """x [T, B, in], h [B, H] -> (outputs [T, B, H], last state [B, H])."""
        out, hn = self.rnn(x, h.unsqueeze(0))
        return out, hn[0]

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        """One frame: x [B, in], h [B, H] -> h' [B, H]."""
        return self.forward(x.unsqueeze(0), h)[1]

    def emit_c(self, w: "ModelWriter", i: int, x: str) -> str:
        """C for layer `i` (`tkws_gru_step`); returns the C expression of its output h."""
        wih = w.matrix(f"l{i}_w_ih", self.rnn.weight_ih_l0)
        whh = w.matrix(f"l{i}_w_hh", self.rnn.weight_hh_l0)
        cell = w.struct("tkws_gru_cell", f"cell{i}", {
            "hidden": self.hidden_size, "w_ih": "&" + wih.name, "w_hh": "&" + whh.name,
            "b_ih": w.vector(f"l{i}_b_ih", self.rnn.bias_ih_l0),
            "b_hh": w.vector(f"l{i}_b_hh", self.rnn.bias_hh_l0)})
        h = w.state_buffer(f"h{i}", max(self.hidden_size, 4))
        gi, gh = w.scratch_buffer("g", wih.rows_p), w.scratch_buffer("g2", wih.rows_p)
        w.step(f"tkws_gru_step(&{cell}, {x}, {h}, {gi}, {gh});")
        return h


class LSTMLayer(nn.Module):
    """One LSTM layer; state (h [B, H], c [B, H])."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnn = nn.LSTM(input_size, hidden_size)

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
        """Zero (h, c), each [B, H]."""
        z = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return z, z.clone()

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x [T, B, in], (h, c) -> (outputs [T, B, H], last (h, c))."""
        h, c = state
        out, (hn, cn) = self.rnn(x, (h.unsqueeze(0), c.unsqueeze(0)))
        return out, (hn[0], cn[0])

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One frame: x [B, in], (h, c) -> (h', c')."""
        return self.forward(x.unsqueeze(0), state)[1]

    def emit_c(self, w: "ModelWriter", i: int, x: str) -> str:
        """C for layer `i` (`tkws_lstm_step`, biases summed); returns its output h (C)."""
        wih = w.matrix(f"l{i}_w_ih", self.rnn.weight_ih_l0)
        whh = w.matrix(f"l{i}_w_hh", self.rnn.weight_hh_l0)
        bias = self.rnn.bias_ih_l0.detach().float() + self.rnn.bias_hh_l0.detach().float()
        cell = w.struct("tkws_lstm_cell", f"cell{i}", {
            "hidden": self.hidden_size, "w_ih": "&" + wih.name, "w_hh": "&" + whh.name,
            "bias": w.vector(f"l{i}_bias", bias)})
        h = w.state_buffer(f"h{i}", max(self.hidden_size, 4))
        c = w.state_buffer(f"c{i}", self.hidden_size)
        g = w.scratch_buffer("g", wih.rows_p)
        w.step(f"tkws_lstm_step(&{cell}, {x}, {h}, {c}, {g});")
        return h
