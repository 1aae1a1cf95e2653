"""FastGRNN and FastRNN cells (Kusupati et al. 2018, EdgeML formulation), fast on a CPU.

Both cells work time-major inside (`[time, batch, feature]`) so that one time step is a
contiguous `[batch, feature]` block.  Training uses a fast path:

1. the input projection `W x` of *all* time steps is one GEMM (autograd handles it);
2. the recurrence runs in a hand-written `torch.autograd.Function` that records no
   autograd graph per step: one small in-place GEMM and 10 in-place elementwise ops a
   step forward (including the per-step derivatives needed later; gate and update share
   ops on one [2, B, H] block), one GEMM and 2-3 ops a step backward, all on one
   intra-op thread (`tuning.torch_threads`), in recycled work buffers (and `train()` lets
   freed blocks stay in glibc's heap: `tuning.tune_for_training`);
3. the gradients of `U`, the biases, `zeta` and `nu` over all steps are each one GEMM or
   one reduction after the backward loop.

`recur()` / `step()` are the plain per-frame formulas with ordinary autograd ops: the
reference the fast path is tested against (`cell.fast = False`), the streaming path, and
what the ONNX exporter traces.

Parameter names and shapes are a contract with export and codegen (docs/architecture.md).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tinykws.tuning import torch_threads


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
        if not self._use_fast_path():  # reference loop (also what ONNX export traces)
            pre = self.project_input(x)  # [T, B, H]: one GEMM for all steps
            outs = []
            for wx in pre.unbind(0):
                h = self.recur(wx, h)
                outs.append(h)
            return torch.stack(outs), h
        return self._fast_sequence(self.project_input(x), h)

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        """One frame: x [B, in], h [B, H] -> h' [B, H]."""
        return self.recur(self.project_input(x), h)

    def recur(self, wx: Tensor, h: Tensor) -> Tensor:  # pragma: no cover - abstract
        """The recurrence given the frame's input projection wx = W x [B, H]."""
        raise NotImplementedError

    def _fast_sequence(self, pre: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """(all states [T, B, H], last state [B, H]) from pre = W x [T, B, H]."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- FastGRNN


class _BufferPool:
    """Reusable internal [T, B, H] work buffers of the recurrences.

    A fresh multi-megabyte tensor is fresh memory from the OS: the first write to each
    page is a page fault, which for a training step of the default model costs as much as
    its arithmetic.  Buffers go back to the pool when their backward has run; buffers
    handed to the caller (outputs, gradients) never come from it.
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self.enabled = True  # off: every buffer is fresh (repeated backward, gradcheck)
        self.free: dict[tuple, list[Tensor]] = {}

    def take(self, like: Tensor, shape=None) -> Tensor:
        shape = tuple(like.shape if shape is None else shape)
        stack = self.free.get((shape, like.dtype, like.device)) if self.enabled else None
        return stack.pop() if stack else like.new_empty(shape)

    def give(self, *tensors: Tensor) -> None:
        if not self.enabled:
            return
        for t in tensors:
            stack = self.free.setdefault((tuple(t.shape), t.dtype, t.device), [])
            if len(stack) < self.keep:
                stack.append(t)


_POOL = _BufferPool()

def buffer_pool(enabled: bool) -> None:
    """Switch the recycling of the fast path's work buffers on (default) or off."""
    _POOL.enabled = enabled
    _POOL.free.clear()


def _claim(ctx) -> None:
    """A recurrence's buffers return to the pool after its backward: a second backward
    through the same graph (retain_graph=True) would read reused memory, so refuse it."""
    if getattr(ctx, "claimed", False) and _POOL.enabled:
        raise RuntimeError(
            "FastGRNN/FastRNN fast path: backward through the same graph twice needs "
            "tinykws.models.fastgrnn.buffer_pool(False) (or model.set_fast(False))")
    ctx.claimed = True


def _first_carry(dlast: Optional[Tensor], slot: Tensor) -> Tensor:
    """dL/dh_{T-1} from the last-state output, written into `slot` (DH[T-1])."""
    return slot.zero_() if dlast is None else slot.copy_(dlast)


def _incoming(dout: Optional[Tensor], t: int, carry: Tensor, slot: Tensor) -> Tensor:
    """dL/dh_t = the gradient through output t (None: unused) + the carried one.

    `carry` already lives in `slot` (DH[t]); a classifier on the last step leaves every
    output's gradient None, so its layer skips both this add and a zero [T, B, H] tensor.
    """
    if dout is not None:
        slot.add_(dout[t])
    return slot


class _FastGRNNRecurrence(torch.autograd.Function):
    """The FastGRNN recurrence given the input projections of all steps.

    Inputs: pre [T, B, H] (= W x_t), h0 [B, H], U [H, H], bias_gate [H], bias_update [H],
    zeta [1], nu [1], need_grad (bool).  Output: hidden states of all steps [T, B, H].

    With a = pre_t + U h, the per-step derivatives d h'/d a (G, through gate and update)
    and d h'/d bias_update (G2) are computed in the forward loop while the step's data is
    in cache.  They live beside z in one [T, 4, B, H] array, [G, G2, z, s] a step, so that
    the ops that treat gate and update alike run once on a contiguous [2, B, H] block and
    the backward loop is two products with dh and one GEMM a step.
    """

    @staticmethod
    def forward(ctx, pre, h0, U, bias_gate, bias_update, zeta, nu, need_grad):  # noqa: D102
        T, B, H = pre.shape
        k1 = float(torch.sigmoid(zeta).item())  # σ(ζ)
        k2 = float(torch.sigmoid(nu).item())  # σ(ν)
        k12 = k1 + k2
        # tanh(v) = 2 σ(2v) - 1 (torch's CPU tanh costs 5x its sigmoid), and the update's
        # 2 (a + bias_update) = 2 (a + bias_gate) + 2 (bias_update - bias_gate): one op
        db2 = (bias_update - bias_gate).mul_(2.0)  # [H]
        Hs = pre.new_empty(T + 1, B, H)  # Hs[0] = h0, Hs[t + 1] = h_t
        Hs[0] = h0
        Hl = Hs.unbind(0)
        Ut = U.t()
        minus_one = pre.new_full((B, H), -1.0)
        Fb = _POOL.take(pre, (T, 4 if need_grad else 2, B, H))  # per step [G, G2,] z, s
        torch.add(pre, bias_gate, out=Fb[:, -2])  # W x + bias_gate, all steps
        ZSl = Fb[:, -2:].unbind(0)
        if need_grad:
            C = _POOL.take(pre)
            Cl = C.unbind(0)
            GGl = Fb[:, :2].unbind(0)
            k4 = pre.new_full((B, H), 4.0 * k12)
            X = pre.new_empty(2, B, H)  # [h - k1 c, 4 (k12 - k1 z)]
            D = pre.new_empty(2, B, H)  # [z (1 - z), s (1 - s)]
            tmp, q = X[0], X[1]
        else:
            c, tmp = pre.new_empty(B, H), pre.new_empty(B, H)
        with torch_threads(1):
            for t in range(T):
                h = Hl[t]
                zs = ZSl[t]
                z, s = zs[0], zs[1]
                if need_grad:
                    c = Cl[t]
                z.addmm_(h, Ut)  # a + bias_gate
                torch.add(db2, z, alpha=2.0, out=s)  # 2 (a + bias_update)
                zs.sigmoid_()  # [z, s]
                torch.add(minus_one, s, alpha=2.0, out=c)  # c = tanh(a + bias_update)
                torch.sub(h, c, alpha=k1, out=tmp)
                if need_grad:
                    # G1 = (h - k1 c) z (1 - z); G2 = (k12 - k1 z)(1 - c²), 1 - c² = 4 s (1 - s)
                    torch.addcmul(zs, zs, zs, value=-1.0, out=D)
                    torch.add(k4, z, alpha=-4.0 * k1, out=q)
                    gg = torch.mul(X, D, out=GGl[t])
                    gg[0].add_(gg[1])  # G = G1 + G2
                # h' = z h + (k1 (1 - z) + k2) c = z (h - k1 c) + (k1 + k2) c
                torch.add(tmp.mul_(z), c, alpha=k12, out=Hl[t + 1])
        if need_grad:
            ctx.save_for_backward(Fb, C, Hs, U)
            ctx.ks = (k1, k2)
        else:
            _POOL.give(Fb)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        return Hs[1:], Hs[T].clone()

    @staticmethod
    def backward(ctx, dout, dlast):  # noqa: D102
        _claim(ctx)
        Fb, C, Hs, U = ctx.saved_tensors
        k1, k2 = ctx.ks
        T, B, H = C.shape
        DH = _POOL.take(C)  # total dL/dh_t (incoming + carried)
        DA = torch.empty_like(C)  # dL/da_t, a_t = W x_t + U h_{t-1} (returned: not pooled)
        acc = C.new_zeros(2, B, H)  # running sums over steps of dh G2 and dh z c
        dout = None if dout is None else dout.contiguous()
        carry = _first_carry(dlast, DH[T - 1])
        DHl, DAl, Cl = DH.unbind(0), DA.unbind(0), C.unbind(0)
        Gl, G2l, Zl = Fb[:, 0].unbind(0), Fb[:, 1].unbind(0), Fb[:, 2].unbind(0)
        acc_bu, acc_zc = acc[0], acc[1]
        with torch_threads(1):
            for t in range(T - 1, -1, -1):
                dh = _incoming(dout, t, carry, DHl[t])
                torch.mul(Gl[t], dh, out=DAl[t])
                acc_bu.addcmul_(dh, G2l[t])
                # dL/dh_{t-1} = dh z + U^T da, written where step t-1 reads it
                carry = torch.mul(Zl[t], dh, out=DHl[t - 1] if t else None)
                acc_zc.addcmul_(carry, Cl[t])
                carry.addmm_(DAl[t], U)
        # Everything below covers all steps at once (one GEMM / one reduction each).
        d_U = DA.view(-1, H).t() @ Hs[:-1].reshape(-1, H)
        d_bu = acc_bu.sum(0)
        d_bg = DA.view(-1, H).sum(0) - d_bu
        dh_c = torch.dot(DH.view(-1), C.view(-1))  # sum dh ⊙ c
        dh_zc = acc_zc.sum()  # sum dh ⊙ z ⊙ c
        d_zeta = ((dh_c - dh_zc) * (k1 * (1.0 - k1))).reshape(1)
        d_nu = (dh_c * (k2 * (1.0 - k2))).reshape(1)
        _POOL.give(Fb, C, DH)
        return DA, carry, d_U, d_bg, d_bu, d_zeta, d_nu, None


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

    def recur(self, wx: Tensor, h: Tensor) -> Tensor:
        """h' from wx = W x [B, H] and h [B, H] (the reference formula)."""
        a = wx + self.project_state(h)
        z = torch.sigmoid(a + self.bias_gate)
        c = torch.tanh(a + self.bias_update)
        return z * h + (torch.sigmoid(self.zeta) * (1.0 - z) + torch.sigmoid(self.nu)) * c

    def _fast_sequence(self, pre: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return _FastGRNNRecurrence.apply(
            pre.contiguous(), h, self.effective_U(), self.bias_gate, self.bias_update,
            self.zeta, self.nu, torch.is_grad_enabled(),
        )


# ---------------------------------------------------------------------------- FastRNN


class _FastRNNRecurrence(torch.autograd.Function):
    """The FastRNN recurrence given input projections: h' = σ(β) h + σ(α) tanh(pre + U h + b).

    Inputs: pre [T, B, H], h0 [B, H], U [H, H], bias_update [H], alpha [1], beta [1],
    need_grad (bool).  Output: hidden states of all steps [T, B, H].
    """

    @staticmethod
    def forward(ctx, pre, h0, U, bias_update, alpha, beta, need_grad):  # noqa: D102
        T, B, H = pre.shape
        ka = float(torch.sigmoid(alpha).item())
        kb = float(torch.sigmoid(beta).item())
        # tanh(v) = 2 σ(2v) - 1: torch's CPU tanh costs 5x its sigmoid
        pu2 = torch.add(pre, bias_update, out=_POOL.take(pre)).mul_(2.0)
        C = _POOL.take(pre) if need_grad else None
        G = _POOL.take(pre) if need_grad else None  # d h'/d a = σ(α)(1 - c²)
        c = pre.new_empty(B, H)
        ones = pre.new_ones(B, H)
        minus_one = pre.new_full((B, H), -1.0)
        Hs = pre.new_empty(T + 1, B, H)
        Hs[0] = h0
        Ut = U.t()
        with torch_threads(1):
            for t in range(T):
                if need_grad:
                    c = C[t]
                s = torch.addmm(pu2[t], Hs[t], Ut, alpha=2.0).sigmoid_()
                torch.add(minus_one, s, alpha=2.0, out=c)  # c = tanh(a + bias_update)
                if need_grad:
                    torch.addcmul(ones, c, c, value=-1.0, out=G[t]).mul_(ka)
                torch.add(Hs[t] * kb, c, alpha=ka, out=Hs[t + 1])
        _POOL.give(pu2)
        if need_grad:
            ctx.save_for_backward(C, G, Hs, U)
            ctx.ks = (ka, kb)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None
        return Hs[1:], Hs[T].clone()

    @staticmethod
    def backward(ctx, dout, dlast):  # noqa: D102
        _claim(ctx)
        C, G, Hs, U = ctx.saved_tensors
        ka, kb = ctx.ks
        T, B, H = C.shape
        DH = _POOL.take(C)
        DA = torch.empty_like(C)
        dout = None if dout is None else dout.contiguous()
        carry = _first_carry(dlast, DH[T - 1])
        with torch_threads(1):
            for t in range(T - 1, -1, -1):
                dh = _incoming(dout, t, carry, DH[t])
                da = torch.mul(dh, G[t], out=DA[t])
                carry = torch.addmm(dh * kb, da, U, out=DH[t - 1] if t else None)
        Hprev = Hs[:-1].reshape(-1, H)
        d_U = DA.view(-1, H).t() @ Hprev
        d_b = DA.view(-1, H).sum(0)
        d_alpha = (torch.dot(DH.view(-1), C.view(-1)) * (ka * (1.0 - ka))).reshape(1)
        d_beta = (torch.dot(DH.view(-1), Hprev.view(-1)) * (kb * (1.0 - kb))).reshape(1)
        _POOL.give(C, G, DH)
        return DA, carry, d_U, d_b, d_alpha, d_beta, None


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

    def recur(self, wx: Tensor, h: Tensor) -> Tensor:
        """h' from wx = W x [B, H] and h [B, H] (the reference formula)."""
        c = torch.tanh(wx + self.project_state(h) + self.bias_update)
        return torch.sigmoid(self.beta) * h + torch.sigmoid(self.alpha) * c

    def _fast_sequence(self, pre: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return _FastRNNRecurrence.apply(
            pre.contiguous(), h, self.effective_U(), self.bias_update, self.alpha, self.beta,
            torch.is_grad_enabled(),
        )
