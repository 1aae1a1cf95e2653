"""Models: the fast FastGRNN/FastRNN path against the per-step reference and an
independent numpy implementation; streaming step == clip forward; EdgeML initialisation;
parameter names (the contract with export and codegen); sparsity; checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tinykws.errors import TinyKWSError
from tinykws.models import ModelConfig, build_model
from tinykws.models.sparsity import sparse_groups as sparsity_groups
from tinykws.models.sparsity import fix_support, hard_threshold_mask, iht_phase, sparsify_step

FAST = ("fastgrnn", "fastrnn")
ALL = ("fastgrnn", "fastrnn", "gru", "lstm")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models (conftest.py)


def _model(arch, dtype=torch.float64, layers=2, H=16, wrank=None, urank=None, seed=0):
    torch.manual_seed(seed)
    m = build_model(ModelConfig(arch, input_size=32, hidden_size=H, num_layers=layers,
                                num_classes=5, wrank=wrank, urank=urank)).to(dtype)
    m.set_normalization(torch.randn(32), torch.rand(32) + 0.5)
    return m


def _random_state(m, B, dtype):
    st = m.init_state(B)
    if isinstance(st, tuple):
        return tuple((0.3 * torch.randn_like(s)).to(dtype) for s in st)
    return (0.3 * torch.randn_like(st)).to(dtype)


def _grads(m, x, y, state, fast):
    m.set_fast(fast)
    m.zero_grad()
    st = state.detach().clone().requires_grad_()
    logits, final = m(x, st, return_state=True)
    # a loss on both the logits and the final state exercises every output gradient
    (F.cross_entropy(logits, y) + (final ** 2).sum()).backward()
    return [p.grad.clone() for p in m.parameters()] + [st.grad.clone()], logits.detach()


@pytest.mark.parametrize("arch,ranks", [(a, r) for a in FAST for r in [(None, None), (6, 5)]]
                         + [("gru", (None, None))])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fast_path_gradients_equal_naive_autograd_loop(arch, ranks, dtype, tol):
    """FastGRNN/FastRNN's fused path against their per-step autograd loop; the GRU's
    hand-written recurrence against nn.GRU."""
    m = _model(arch, dtype, layers=2, wrank=ranks[0], urank=ranks[1])
    x = torch.randn(4, 23, 32, dtype=dtype)
    y = torch.randint(0, 5, (4,))
    state = _random_state(m, 4, dtype)
    g_fast, out_fast = _grads(m, x, y, state, fast=True)
    g_ref, out_ref = _grads(m, x, y, state, fast=False)
    assert torch.allclose(out_fast, out_ref, atol=tol, rtol=0)
    for a, b in zip(g_fast, g_ref):
        scale = max(1.0, float(b.abs().max()))
        assert float((a - b).abs().max()) <= tol * scale


def test_gru_fast_path_without_torchscript(monkeypatch):
    """Where TorchScript cannot compile the loops, the same loops run in Python."""
    from tinykws.models import rnn

    def refuse(fn):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(rnn, "_SCRIPTED", {})
    monkeypatch.setattr(torch.jit, "script", refuse)
    m = _model("gru")
    x, y = torch.randn(3, 11, 32, dtype=torch.float64), torch.randint(0, 5, (3,))
    state = _random_state(m, 3, torch.float64)
    (g_fast, out_fast), (g_ref, out_ref) = _grads(m, x, y, state, True), _grads(m, x, y, state, False)
    assert all(fn is rnn._SCRIPTED[fn] for fn in rnn._SCRIPTED) and len(rnn._SCRIPTED) == 2
    assert torch.allclose(out_fast, out_ref, atol=1e-12, rtol=0)
    assert all(torch.allclose(a, b, atol=1e-12, rtol=0) for a, b in zip(g_fast, g_ref))


def test_gru_fast_path_gradcheck(monkeypatch):
    """Finite differences of the GRU recurrence's hand-written backward; the fast path is
    what trains (nn.GRU is what evaluates and exports)."""
    from tinykws.models.rnn import _GRURecurrence

    torch.manual_seed(0)
    args = (torch.randn(5, 2, 9, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64),
            torch.randn(9, 3, dtype=torch.float64), torch.randn(9, dtype=torch.float64))
    assert torch.autograd.gradcheck(_GRURecurrence.apply, tuple(a.requires_grad_() for a in args))
    m = _model("gru", torch.float32)
    m.train()
    x = torch.randn(2, 9, 32)
    calls = []
    orig = _GRURecurrence.apply
    monkeypatch.setattr(_GRURecurrence, "apply", lambda *a: calls.append(1) or orig(*a))
    m(x)  # training: the fast path, once a layer
    with torch.no_grad():
        m(x)  # evaluating: nn.GRU
    assert len(calls) == 2


@pytest.mark.parametrize("arch", FAST)
def test_fast_path_gradcheck(arch):
    """Finite differences of the hand-written backward (independent of the reference)."""
    torch.manual_seed(0)
    pre = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    U = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    if arch == "fastgrnn":
        from tinykws.models.fastgrnn import _FastGRNNRecurrence as Rec

        extra = [torch.randn(4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
        extra += [torch.randn(1, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    else:
        from tinykws.models.fastgrnn import _FastRNNRecurrence as Rec

        extra = [torch.randn(4, dtype=torch.float64, requires_grad=True)]
        extra += [torch.randn(1, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    from tinykws.models.fastgrnn import buffer_pool

    buffer_pool(False)  # gradcheck runs backward through one graph many times
    try:
        assert torch.autograd.gradcheck(lambda *a: Rec.apply(*a, True), (pre, h0, U, *extra))
    finally:
        buffer_pool(True)
    out = Rec.apply(pre, h0, U, *extra, True)[0].sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        out.backward()


def _numpy_fastgrnn_step(x, h, p):
    """FastGRNN from the paper's equations, in numpy (independent of the torch code)."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    a = p["W"] @ x + p["U"] @ h
    z = sig(a + p["bias_gate"])
    c = np.tanh(a + p["bias_update"])
    return z * h + (sig(p["zeta"][0]) * (1 - z) + sig(p["nu"][0])) * c


def test_fastgrnn_matches_numpy_equations():
    m = _model("fastgrnn", torch.float64, layers=1, H=8)
    for p in m.parameters():  # move away from the symmetric init
        torch.nn.init.normal_(p, std=0.3)
    p = {k.split(".", 2)[-1]: v.detach().numpy() for k, v in m.named_parameters() if "cells" in k}
    x = np.random.default_rng(0).normal(size=(7, 32))
    xn = (x - m.mean.numpy()) / m.std.numpy()
    h = np.zeros(8)
    for t in range(7):
        h = _numpy_fastgrnn_step(xn[t], h, p)
    want = m.fc.weight.detach().numpy() @ h + m.fc.bias.detach().numpy()
    with torch.no_grad():
        got = m(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("arch", ALL)
def test_streaming_step_equals_clip_forward(arch):
    m = _model(arch, torch.float32, layers=3, H=12)
    x = torch.randn(3, 40, 32)
    state0 = _random_state(m, 3, torch.float32)
    with torch.no_grad():
        want, want_state = m(x, state0, return_state=True)
        per_step, seq_state = m.forward_sequence(x, state0)
        st = state0
        for t in range(40):
            logits, st = m.step(x[:, t], st)
            torch.testing.assert_close(logits, per_step[:, t], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=0)
    flat = lambda s: torch.cat([t.flatten() for t in s]) if isinstance(s, tuple) else s.flatten()  # noqa: E731
    torch.testing.assert_close(flat(st), flat(want_state), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat(seq_state), flat(want_state), atol=1e-5, rtol=0)


def test_edgeml_initialisation_and_parameter_names():
    torch.manual_seed(0)
    m = build_model(ModelConfig("fastgrnn", hidden_size=128, num_layers=2, num_classes=12))
    names = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert names == {
        "mean": (32,), "std": (32,),
        "cells.0.W": (128, 32), "cells.0.U": (128, 128),
        "cells.0.bias_gate": (128,), "cells.0.bias_update": (128,),
        "cells.0.zeta": (1,), "cells.0.nu": (1,),
        "cells.1.W": (128, 128), "cells.1.U": (128, 128),
        "cells.1.bias_gate": (128,), "cells.1.bias_update": (128,),
        "cells.1.zeta": (1,), "cells.1.nu": (1,),
        "fc.weight": (12, 128), "fc.bias": (12,),
    }
    c = m.cells[1].requires_grad_(False)
    assert abs(float(c.U.std()) - 0.1) < 0.005 and abs(float(c.U.mean())) < 0.005
    assert torch.all(c.bias_gate == 1) and torch.all(c.bias_update == 1)
    assert float(c.zeta) == 1.0 and float(c.nu) == -4.0
    lr = build_model(ModelConfig("fastgrnn", hidden_size=16, wrank=4, urank=3))
    shapes = {k: tuple(v.shape) for k, v in lr.cells[0].named_parameters()}
    assert shapes["W1"] == (4, 32) and shapes["W2"] == (16, 4)
    assert shapes["U1"] == (3, 16) and shapes["U2"] == (16, 3)
    rnn = build_model(ModelConfig("fastrnn", hidden_size=16)).requires_grad_(False)
    assert float(rnn.cells[0].alpha) == -3.0 and float(rnn.cells[0].beta) == 3.0


@pytest.mark.parametrize("bad", [
    dict(architecture="transformer"), dict(num_layers=4), dict(num_layers=0),
    dict(architecture="gru", wrank=4), dict(w_sparsity=0.0), dict(hidden_size=0),
])
def test_model_config_rejects_bad_values(bad):
    with pytest.raises(TinyKWSError):
        ModelConfig(**bad)


def test_hard_threshold_keeps_largest_fraction():
    t = torch.tensor([[0.1, -5.0, 0.3], [2.0, -0.2, 0.0]])
    m = hard_threshold_mask(t, 0.5)
    assert m.tolist() == [[False, True, True], [True, False, False]]
    assert hard_threshold_mask(t, 1.0).all()


def test_fix_support_keeps_a_sparse_model_sparse_under_further_training():
    """What the stream phase does after the clip phase's IHT: Adam moves every weight, the
    post-step hook re-zeroes exactly the entries that were zero; a dense model gets none."""
    torch.manual_seed(0)
    m = build_model(ModelConfig("fastgrnn", hidden_size=12, num_layers=2, wrank=4,
                                w_sparsity=0.3, u_sparsity=0.5))
    with torch.no_grad():
        for p, keep in sparsity_groups(m):
            p.mul_(hard_threshold_mask(p, keep))
    support = [(p != 0).clone() for p, _ in sparsity_groups(m)]
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    assert fix_support(m, opt) is not None
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(4, 10, 32)).sum().backward()
        opt.step()
    assert [torch.equal(p != 0, s) for (p, _), s in zip(sparsity_groups(m), support)] == [True] * 6
    dense = build_model(ModelConfig("fastgrnn", hidden_size=12, num_layers=1))
    assert fix_support(dense, torch.optim.Adam(dense.parameters())) is None


def test_iht_phases_and_fixed_support():
    total = 90
    assert [iht_phase(i, total) for i in (0, 29, 30, 59, 60, 89)] == [
        "dense", "dense", "iht", "iht", "sparse", "sparse"]
    torch.manual_seed(0)
    m = build_model(ModelConfig("fastgrnn", hidden_size=20, num_layers=1,
                                w_sparsity=0.25, u_sparsity=0.5))
    masks = None
    for it in range(total):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.01 * torch.randn_like(p))  # stands in for an optimiser step
        masks = sparsify_step(m, it, total, masks)
        if it == 60:
            support = [(p != 0).clone() for p in (m.cells[0].W, m.cells[0].U)]
    W, U = m.cells[0].W, m.cells[0].U
    assert int((W != 0).sum()) == int(np.ceil(0.25 * W.numel()))
    assert int((U != 0).sum()) == int(np.ceil(0.5 * U.numel()))
    assert torch.equal(W != 0, support[0]) and torch.equal(U != 0, support[1])


@pytest.mark.parametrize("total", [1, 2])
def test_sparsify_a_run_too_short_for_thirds(total):
    """Fewer than 3 iterations skip the IHT third: the model still ends sparse (it crashed)."""
    m = build_model(ModelConfig("fastgrnn", hidden_size=20, num_layers=1, w_sparsity=0.25, u_sparsity=0.5))
    masks = None
    for it in range(total):
        masks = sparsify_step(m, it, total, masks)
    W, U = m.cells[0].W, m.cells[0].U
    assert int((W != 0).sum()) == int(np.ceil(0.25 * W.numel()))
    assert int((U != 0).sum()) == int(np.ceil(0.5 * U.numel()))


@pytest.mark.parametrize("arch", ["fastgrnn", "gru"])
def test_frame_stride_steps_on_stacked_frames_and_holds_each_steps_scores(arch):
    """A stride-2 model is a stride-1 model of 64 inputs run on frame pairs (checked
    against one built by hand), whose scores hold from a pair's last frame to the next's."""
    torch.manual_seed(0)
    m2 = build_model(ModelConfig(architecture=arch, hidden_size=8, frame_stride=2)).eval()
    m1 = build_model(ModelConfig(architecture=arch, input_size=64, hidden_size=8)).eval()
    m2.set_normalization(torch.randn(32), torch.rand(32) + 0.5)
    sd = m2.state_dict()
    sd["mean"], sd["std"] = sd["mean"].repeat(2), sd["std"].repeat(2)
    m1.load_state_dict(sd)
    x = torch.randn(3, 10, 32)  # [batch, time, feature]
    with torch.no_grad():
        per_frame, last2 = m2.forward_sequence(x)
        per_step, last1 = m1.forward_sequence(x.reshape(3, 5, 64))
        assert per_frame.shape == (3, 10, 12)
        assert torch.allclose(last2, last1)
        assert torch.allclose(per_frame[:, 0], m2.fc(torch.zeros(8)), atol=1e-6)  # no step yet
        for t in range(1, 10):  # frame t shows the step that ended at or before it
            assert torch.allclose(per_frame[:, t], per_step[:, (t - 1) // 2], atol=1e-6)
        again, _ = m2.forward_sequence(x[:, 4:], m2.forward_sequence(x[:, :4])[1])  # carried state
        assert torch.allclose(again, per_frame[:, 4:], atol=1e-6)
        assert torch.allclose(m2(x), per_step[:, -1], atol=1e-6)  # a clip: its last step
        odd, st = m2.forward_sequence(x[:, :7])  # the last pair incomplete: not stepped on
        assert torch.allclose(odd, per_frame[:, :7], atol=1e-6)
        assert torch.allclose(st, m2.forward_sequence(x[:, :6])[1])


@pytest.mark.parametrize("arch", ["fastgrnn", "lstm"])
@pytest.mark.parametrize("stride", [2, 3])
def test_frame_stride_step_is_forward_sequence_frame_by_frame(arch, stride):
    """`step` on one frame at a time gives `forward_sequence`'s scores and state, also with
    rows at different phases (a row restarted mid-group, as window mode restarts states)."""
    from tinykws.detect import _where_rows

    torch.manual_seed(1)
    m = build_model(ModelConfig(architecture=arch, hidden_size=8, frame_stride=stride)).eval()
    m.set_normalization(torch.randn(32), torch.rand(32) + 0.5)
    x = torch.randn(2, 4 * stride + 1, 32)  # [batch, time, feature]: a group left incomplete
    with torch.no_grad():
        ref, last = m.forward_sequence(x)
        st, out = m.init_stream_state(2), []
        for t in range(x.shape[1]):
            logits, st = m.step(x[:, t], st)
            out.append(logits)
        assert torch.allclose(torch.stack(out, 1), ref, atol=1e-6)
        for a, b in zip(st.rnn if arch == "lstm" else (st.rnn,), last if arch == "lstm" else (last,)):
            assert torch.allclose(a, b, atol=1e-6)
        assert st.phase.flatten().tolist() == [1.0, 1.0]  # one frame into the next group
        assert torch.allclose(m(x), out[-1], atol=1e-6)  # a clip: where the stream is
        with pytest.raises(TinyKWSError, match="init_stream_state"):
            m.step(x[:, 0], m.init_state(2))
        # row 1 restarts one frame later than row 0: its scores are its own sequence's
        st = m.init_stream_state(2)
        _, st = m.step(x[:, 0], st)
        st = _where_rows(torch.tensor([False, True]), m.init_stream_state(2), st)
        late = []
        for t in range(1, x.shape[1]):
            logits, st = m.step(x[:, t], st)
            late.append(logits[1])
        alone, _ = m.forward_sequence(x[1:, 1:])
        assert torch.allclose(torch.stack(late), alone[0], atol=1e-6)


def test_frame_stride_config_is_checked():
    for bad in (0, 9, True, 1.5):
        with pytest.raises(TinyKWSError, match="frame_stride"):
            ModelConfig(frame_stride=bad)
    assert ModelConfig.from_dict({"hidden_size": 4}).frame_stride == 1  # checkpoints from before
