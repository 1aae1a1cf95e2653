"""GRU and LSTM layers (what the seed's ELL tutorial trained), one layer per cell; the GRU is
also the pipeline's model on the embedded data (`config.pipeline_recipe`).

Each wraps one `nn.GRU` / `nn.LSTM` layer (time-major), so the parameters keep PyTorch's
names and gate order (`rnn.weight_ih_l0` [3H|4H, in], `rnn.weight_hh_l0`, `rnn.bias_ih_l0`,
`rnn.bias_hh_l0`; GRU gates r, z, n; LSTM gates i, f, g, o) and export to the standard ONNX
GRU / LSTM operators.  The interface matches the FastGRNN cells: time-major sequences,
`init_state`, `step`. Training a GRU on the CPU runs `_GRURecurrence`, the same function
with a backward of its own (the stream phase's step in 0.73x nn.GRU's time).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _gru_forward_loop(gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, hs: Tensor, gh: Tensor,
                      rz: Tensor, n: Tensor) -> Tensor:
    """`_GRURecurrence`'s forward steps: 7 ops a step, every result written in place."""
    H = h0.shape[1]
    wt = w_hh.t()
    h = h0
    for t in range(gi.shape[0]):
        torch.addmm(b_hh, h, wt, out=gh[t])
        torch.add(gi[t, :, : 2 * H], gh[t, :, : 2 * H], out=rz[t]).sigmoid_()
        torch.addcmul(gi[t, :, 2 * H :], rz[t, :, :H], gh[t, :, 2 * H :], out=n[t]).tanh_()
        h = torch.addcmul(n[t], rz[t, :, H:], h - n[t], out=hs[t])
    return hs


def _gru_backward_loop(dhs: Tensor, w_hh: Tensor, r: Tensor, z: Tensor, a_n: Tensor, a_z: Tensor,
                       a_r: Tensor, dgh: Tensor, dn: Tensor) -> Tensor:
    """`_GRURecurrence`'s backward steps (7 ops a step): fills dgh and dn, returns d h0."""
    H = r.shape[2]
    dh = torch.zeros_like(r[0])
    for t in range(dhs.shape[0] - 1, -1, -1):
        dh = dh + dhs[t]
        torch.mul(dh, a_n[t], out=dn[t])
        torch.mul(dn[t], a_r[t], out=dgh[t, :, :H])
        torch.mul(dh, a_z[t], out=dgh[t, :, H : 2 * H])
        torch.mul(dn[t], r[t], out=dgh[t, :, 2 * H :])
        dh = torch.addmm(dh * z[t], dgh[t], w_hh)
    return dh


_SCRIPTED: dict = {}


def _scripted(fn):
    """`fn` compiled by TorchScript on first use (a third less time a step than the Python
    loop: the per-op overhead dominates at these sizes), or `fn` itself where TorchScript
    cannot compile it (no source files, e.g. a frozen application) or is gone: torch 2.13
    marks `torch.jit.script` deprecated, and its suggested successor, `torch.compile`, needs
    a C++ compiler and tens of seconds a shape."""
    if fn not in _SCRIPTED:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _SCRIPTED[fn] = torch.jit.script(fn)
        except (AttributeError, OSError, RuntimeError):
            _SCRIPTED[fn] = fn
    return _SCRIPTED[fn]


class _GRURecurrence(torch.autograd.Function):
    """The GRU's recurrence over T steps with a hand-written backward through time.

    In: gi = W_ih x + b_ih for every step [T, B, 3H] (one GEMM, outside), h0 [B, H],
    W_hh [3H, H], b_hh [3H]; out: every step's state [T, B, H]. PyTorch's gates (r, z, n):
    r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r gh_n), h' = n + z (h - n),
    gh = W_hh h + b_hh. The forward keeps gh, r, z and n of every step; the backward computes
    every factor that does not depend on the incoming gradient for all steps at once, then
    runs 7 ops a step (one [B, 3H] x [3H, H] GEMM), then W_hh's and b_hh's gradients over all
    steps as one GEMM. nn.GRU's CPU autograd records more ops a step, and with them the
    stream phase took 1.7x the FastGRNN's time (docs/benchmarks.md, twenty-first round)."""

    @staticmethod
    def forward(ctx, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
        T, (B, H) = gi.shape[0], h0.shape
        hs = gi.new_empty(T, B, H)
        gh = gi.new_empty(T, B, 3 * H)  # W_hh h + b_hh of every step
        rz = gi.new_empty(T, B, 2 * H)  # the r and z gates
        n = gi.new_empty(T, B, H)
        _scripted(_gru_forward_loop)(gi, h0, w_hh, b_hh, hs, gh, rz, n)
        ctx.save_for_backward(h0, w_hh, hs, gh, rz, n)
        return hs

    @staticmethod
    def backward(ctx, dhs: Tensor):
        h0, w_hh, hs, gh, rz, n = ctx.saved_tensors
        H = h0.shape[1]
        r, z = rz[..., :H], rz[..., H:]
        h_prev = torch.cat([h0[None], hs[:-1]])  # [T, B, H]
        # the factors that do not depend on the incoming gradient, for all steps at once
        a_n = (1 - z) * (1 - n * n)  # d(n's pre-activation) = dh a_n
        a_z = (h_prev - n) * z * (1 - z)  # d(z's pre-activation) = dh a_z
        a_r = gh[..., 2 * H :] * r * (1 - r)  # d(r's pre-activation) = d(n's) a_r
        dgh = torch.empty_like(gh)  # d(W_hh h + b_hh) of every step
        dn = torch.empty_like(n)  # d(n's pre-activation) = d(gi_n)
        dh0 = _scripted(_gru_backward_loop)(dhs, w_hh, r.contiguous(), z.contiguous(), a_n, a_z,
                                             a_r, dgh, dn)
        dgi = torch.cat([dgh[..., : 2 * H], dn], -1)
        flat = dgh.reshape(-1, 3 * H)
        return dgi, dh0, flat.t() @ h_prev.reshape(-1, H), flat.sum(0)


class GRULayer(nn.Module):
    """One GRU layer; state h [B, H]."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.rnn = nn.GRU(input_size, hidden_size)
        self.fast = True  # tests switch this off to compare with nn.GRU

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> Tensor:
        """Zero hidden state [B, H]."""
        return torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """x [T, B, in], h [B, H] -> (outputs [T, B, H], last state [B, H]).

        While training on a CPU: `_GRURecurrence` (the same function as nn.GRU, its own
        backward); otherwise, and in ONNX export, nn.GRU (the standard ONNX GRU operator)."""
        rnn = self.rnn
        if (self.fast and torch.is_grad_enabled() and x.device.type == "cpu" and x.shape[0] > 1
                and not torch.onnx.is_in_onnx_export() and not torch.jit.is_tracing()):
            gi = F.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0)
            out = _GRURecurrence.apply(gi, h, rnn.weight_hh_l0, rnn.bias_hh_l0)
            return out, out[-1]
        out, hn = rnn(x, h.unsqueeze(0))
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
