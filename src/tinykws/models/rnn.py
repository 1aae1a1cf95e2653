"""GRU and LSTM baselines (what the seed's ELL tutorial trained), one layer per cell.

Each wraps one `nn.GRU` / `nn.LSTM` layer (time-major), so the parameters keep PyTorch's
names and gate order (`rnn.weight_ih_l0` [3H|4H, in], `rnn.weight_hh_l0`, `rnn.bias_ih_l0`,
`rnn.bias_hh_l0`; GRU gates r, z, n; LSTM gates i, f, g, o) and export to the standard ONNX
GRU / LSTM operators.  The interface matches the FastGRNN cells: time-major sequences,
`init_state`, `step`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
