"""FastGRNN and FastRNN cells (Kusupati et al. 2018, EdgeML formulation), fast on a CPU.

Both cells work time-major inside (`[time, batch, feature]`) so that one time step is a
contiguous `[batch, feature]` block.  Training uses a fast path:

1. the input projection `W x` of *all* time steps is one GEMM (autograd handles it);
2. the recurrence runs in a hand-written `torch.autograd.Function` that records no
   autograd graph per step (8 small ops a step forward, 4 a step backward);
3. the gradients of `U`, the biases, `zeta` and `nu` over all steps are each one GEMM or
   one reduction after the backward loop.

`step()` is the plain per-frame formula with ordinary autograd ops; it is the reference
the fast path is tested against, the streaming path, and what the ONNX exporter traces.

Parameter names and shapes are a contract with export and codegen (docs/architecture.md).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _low_rank_or_full(
    module: nn.Module, name: str, rows: int, cols: int, rank: Optional[int]
) -> None:
    """Register `name` [rows, cols] or `name1` [rank, cols] + `name2` [rows, rank], all 0.1·N(0,1)."""
    if rank is None:
        module.register_parameter(name, nn.Parameter(0.1 * torch.randn(rows, cols)))
    else:
        module.register_parameter(name + "1", nn.Parameter(0.1 * torch.randn(rank, cols)))
        module.register_parameter(name + "2", nn.Parameter(0.1 * torch.randn(rows, rank)))


class _FastCellBase(nn.Module):
    """Shared parts of FastGRNN and FastRNN: W, U (full or low rank), projections."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        wrank: Optional[int] = None,
        urank: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.wrank = wrank
        self.urank = urank
        _low_rank_or_full(self, "W", hidden_size, input_size, wrank)
        _low_rank_or_full(self, "U", hidden_size, hidden_size, urank)
        self.fast = True  # tests switch this off to compare with the per-step reference

    # -- matrices -----------------------------------------------------------------------
    def w_matrices(self) -> list[nn.Parameter]:
        """The parameters that make up W (what sparsity thresholds with w_sparsity)."""
        return [self.W] if self.wrank is None else [self.W1, self.W2]

    def u_matrices(self) -> list[nn.Parameter]:
        """The parameters that make up U (what sparsity thresholds with u_sparsity)."""
        return [self.U] if self.urank is None else [self.U1, self.U2]

    def effective_W(self) -> Tensor:
        """W [H, in] (= W2 @ W1 when low rank)."""
        return self.W if self.wrank is None else self.W2 @ self.W1

    def effective_U(self) -> Tensor:
        """U [H, H] (= U2 @ U1 when low rank)."""
        return self.U if self.urank is None else self.U2 @ self.U1

    def project_input(self, x: Tensor) -> Tensor:
        """W x for any leading shape: [..., in] -> [..., H] (one GEMM over all steps)."""
        if self.wrank is None:
            return F.linear(x, self.W)
        return F.linear(F.linear(x, self.W1), self.W2)

    def project_state(self, h: Tensor) -> Tensor:
        """U h: [B, H] -> [B, H]."""
        if self.urank is None:
            return F.linear(h, self.U)
        return F.linear(F.linear(h, self.U1), self.U2)

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> Tensor:
        """Zero hidden state [B, H]."""
        return torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)

    def _use_fast_path(self) -> bool:
        return self.fast and not torch.onnx.is_in_onnx_export() and not torch.jit.is_tracing()

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Run a sequence: x [T, B, in], h [B, H] -> (outputs [T, B, H], last state [B, H])."""
        if not self._use_fast_path():
            outs = []
            for t in range(x.shape[0]):
                h = self.step(x[t], h)
                outs.append(h)
            return torch.stack(outs), h
        out = self._fast_sequence(self.project_input(x), h)
        return out, out[-1]

    def step(self, x: Tensor, h: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fast_sequence(self, pre: Tensor, h: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError


# ---------------------------------------------------------------------------- FastGRNN


class _FastGRNNRecurrence(torch.autograd.Function):
    """The FastGRNN recurrence given the input projections of all steps.

    Inputs: pre [T, B, H] (= W x_t), h0 [B, H], U [H, H], bias_gate [H], bias_update [H],
    zeta [1], nu [1].  Output: hidden states of all steps [T, B, H].
    """

    @staticmethod
    def forward(ctx, pre, h0, U, bias_gate, bias_update, zeta, nu):  # noqa: D102
        T, B, H = pre.shape
        k1 = float(torch.sigmoid(zeta).item())  # σ(ζ)
        k2 = float(torch.sigmoid(nu).item())  # σ(ν)
        pg = pre + bias_gate  # [T, B, H]
        pu = pre + bias_update
        Z = torch.empty_like(pre)
        C = torch.empty_like(pre)
        Hs = torch.empty(T + 1, B, H, dtype=pre.dtype, device=pre.device)  # Hs[0] = h0
        Hs[0] = h0
        Ut = U.t()
        r = torch.empty(B, H, dtype=pre.dtype, device=pre.device)
        for t in range(T):
            h = Hs[t]
            torch.mm(h, Ut, out=r)  # U h
            z = torch.add(pg[t], r, out=Z[t]).sigmoid_()
            c = torch.add(pu[t], r, out=C[t]).tanh_()
            # h' = z h + (k1 (1 - z) + k2) c = z (h - k1 c) + (k1 + k2) c
            tmp = torch.sub(h, c, alpha=k1).mul_(z)
            torch.add(tmp, c, alpha=k1 + k2, out=Hs[t + 1])
        ctx.save_for_backward(Z, C, Hs, U, zeta, nu)
        ctx.ks = (k1, k2)
        return Hs[1:]

    @staticmethod
    def backward(ctx, dout):  # noqa: D102
        Z, C, Hs, U, zeta, nu = ctx.saved_tensors
        k1, k2 = ctx.ks
        T, B, H = Z.shape
        Hprev = Hs[:-1]
        # d h'/d a through z and through c, for all steps at once (big elementwise ops):
        G1 = (Hprev - k1 * C) * Z * (1.0 - Z)  # gate path
        G2 = (k1 * (1.0 - Z) + k2) * (1.0 - C * C)  # update path
        G = G1 + G2
        DH = torch.empty_like(Z)  # total dL/dh_t (incoming + carried)
        DA = torch.empty_like(Z)  # dL/da_t, a_t = W x_t + U h_{t-1}
        dout = dout.contiguous()
        carry = torch.zeros(B, H, dtype=Z.dtype, device=Z.device)
        for t in range(T - 1, -1, -1):
            dh = torch.add(dout[t], carry, out=DH[t])
            da = torch.mul(dh, G[t], out=DA[t])
            carry = torch.addmm(dh * Z[t], da, U)  # dL/dh_{t-1} = dh z + U^T da
        flat = H
        d_pre = DA
        d_U = DA.reshape(-1, flat).t() @ Hprev.reshape(-1, flat)  # one GEMM over all steps
        d_bg = (DH * G1).sum(dim=(0, 1))
        d_bu = (DH * G2).sum(dim=(0, 1))
        dh_dz = k1 * (1.0 - k1)
        dh_dn = k2 * (1.0 - k2)
        DHC = DH * C
        d_zeta = ((DHC * (1.0 - Z)).sum() * dh_dz).reshape(zeta.shape)
        d_nu = (DHC.sum() * dh_dn).reshape(nu.shape)
        return d_pre, carry, d_U, d_bg, d_bu, d_zeta, d_nu


class FastGRNNCell(_FastCellBase):
    """FastGRNN: z = σ(a + bias_gate), c = tanh(a + bias_update), a = W x + U h,
    h' = z ⊙ h + (σ(zeta)(1 − z) + σ(nu)) ⊙ c.

    EdgeML initialisation: W, U ~ 0.1·N(0,1); both biases 1; zeta 1; nu −4.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        wrank: Optional[int] = None,
        urank: Optional[int] = None,
        zeta_init: float = 1.0,
        nu_init: float = -4.0,
    ) -> None:
        super().__init__(input_size, hidden_size, wrank, urank)
        self.bias_gate = nn.Parameter(torch.ones(hidden_size))
        self.bias_update = nn.Parameter(torch.ones(hidden_size))
        self.zeta = nn.Parameter(torch.full((1,), float(zeta_init)))
        self.nu = nn.Parameter(torch.full((1,), float(nu_init)))

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        """One frame: x [B, in], h [B, H] -> h' [B, H] (the reference formula)."""
        a = self.project_input(x) + self.project_state(h)
        z = torch.sigmoid(a + self.bias_gate)
        c = torch.tanh(a + self.bias_update)
        return z * h + (torch.sigmoid(self.zeta) * (1.0 - z) + torch.sigmoid(self.nu)) * c

    def _fast_sequence(self, pre: Tensor, h: Tensor) -> Tensor:
        return _FastGRNNRecurrence.apply(
            pre.contiguous(), h, self.effective_U(), self.bias_gate, self.bias_update,
            self.zeta, self.nu,
        )


# ---------------------------------------------------------------------------- FastRNN


class _FastRNNRecurrence(torch.autograd.Function):
    """The FastRNN recurrence given input projections: h' = σ(β) h + σ(α) tanh(pre + U h + b)."""

    @staticmethod
    def forward(ctx, pre, h0, U, bias_update, alpha, beta):  # noqa: D102
        T, B, H = pre.shape
        ka = float(torch.sigmoid(alpha).item())
        kb = float(torch.sigmoid(beta).item())
        pu = pre + bias_update
        C = torch.empty_like(pre)
        Hs = torch.empty(T + 1, B, H, dtype=pre.dtype, device=pre.device)
        Hs[0] = h0
        Ut = U.t()
        for t in range(T):
            c = torch.addmm(pu[t], Hs[t], Ut, out=C[t]).tanh_()
            torch.add(Hs[t] * kb, c, alpha=ka, out=Hs[t + 1])
        ctx.save_for_backward(C, Hs, U, alpha, beta)
        ctx.ks = (ka, kb)
        return Hs[1:]

    @staticmethod
    def backward(ctx, dout):  # noqa: D102
        C, Hs, U, alpha, beta = ctx.saved_tensors
        ka, kb = ctx.ks
        T, B, H = C.shape
        G = ka * (1.0 - C * C)
        DH = torch.empty_like(C)
        DA = torch.empty_like(C)
        dout = dout.contiguous()
        carry = torch.zeros(B, H, dtype=C.dtype, device=C.device)
        for t in range(T - 1, -1, -1):
            dh = torch.add(dout[t], carry, out=DH[t])
            da = torch.mul(dh, G[t], out=DA[t])
            carry = torch.addmm(dh * kb, da, U)
        Hprev = Hs[:-1]
        d_U = DA.reshape(-1, H).t() @ Hprev.reshape(-1, H)
        d_b = DA.sum(dim=(0, 1))
        d_alpha = ((DH * C).sum() * ka * (1.0 - ka)).reshape(alpha.shape)
        d_beta = ((DH * Hprev).sum() * kb * (1.0 - kb)).reshape(beta.shape)
        return DA, carry, d_U, d_b, d_alpha, d_beta


class FastRNNCell(_FastCellBase):
    """FastRNN: c = tanh(W x + U h + bias_update), h' = σ(beta) h + σ(alpha) c.

    EdgeML initialisation: W, U ~ 0.1·N(0,1); bias 1; alpha −3; beta 3.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        wrank: Optional[int] = None,
        urank: Optional[int] = None,
        alpha_init: float = -3.0,
        beta_init: float = 3.0,
    ) -> None:
        super().__init__(input_size, hidden_size, wrank, urank)
        self.bias_update = nn.Parameter(torch.ones(hidden_size))
        self.alpha = nn.Parameter(torch.full((1,), float(alpha_init)))
        self.beta = nn.Parameter(torch.full((1,), float(beta_init)))

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        """One frame: x [B, in], h [B, H] -> h' [B, H] (the reference formula)."""
        c = torch.tanh(self.project_input(x) + self.project_state(h) + self.bias_update)
        return torch.sigmoid(self.beta) * h + torch.sigmoid(self.alpha) * c

    def _fast_sequence(self, pre: Tensor, h: Tensor) -> Tensor:
        return _FastRNNRecurrence.apply(
            pre.contiguous(), h, self.effective_U(), self.bias_update, self.alpha, self.beta
        )
