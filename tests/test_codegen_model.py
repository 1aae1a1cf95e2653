"""Parity: the generated C model (completemodel_Predict) vs the PyTorch KWSModel.

One step at a time (streaming, recurrent state kept between calls) and whole clips, for
FastGRNN and FastRNN (full and low rank, 1-3 layers, sizes that need padding), GRU and
LSTM; scores are softmax probabilities on both sides.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codegen_host import PEDANTIC, build_shared, digest
from tinykws.codegen import writers
from tinykws.codegen.writers import blocked
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.model import emit_model
from tinykws.features import logmel
from tinykws.models import ModelConfig, build_model
from tinykws.models.sparsity import hard_threshold_mask, sparse_groups

from realdata import REAL as DEV  # the dev set, or the committed mini set
STEP_ATOL = 5e-6  # one step, probabilities (measured: <= 3.4e-7 after 196 steps)
CLIP_ATOL = 2e-5  # many steps, probabilities

CATS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
        "stop", "go"]


def _model(seed: int, trained_like: bool = False, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"input_size": 32, "num_classes": 12, **kw})
    m = build_model(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if trained_like and p.dim() == 2:
                p.mul_(3.0)  # trained weights are larger than the 0.1 N(0,1) init
            if trained_like and p.dim() == 1 and "bias" in name:
                p.add_(0.5 * torch.randn_like(p))
        m.set_normalization(torch.randn(32) * 2 - 10, torch.rand(32) * 3 + 0.5)
    return _sparsify(m).eval()


@torch.no_grad()
def _sparsify(m: torch.nn.Module) -> torch.nn.Module:
    """What IHT training leaves: only the largest entries of every sparse matrix."""
    for p, keep in sparse_groups(m):
        p.mul_(hard_threshold_mask(p, keep))
    return m


def _build(tmp: Path, model, cats=CATS) -> ctypes.CDLL:
    files = emit_model(model, cats[: model.config.num_classes])
    d = tmp / digest(*files.values())
    d.mkdir(parents=True, exist_ok=True)
    copy_runtime(d)
    for name, text in files.items():
        (d / name).write_text(text)
    lib = build_shared([d / "model.c"], d / "libmodel.so", include_dirs=[d], extra=PEDANTIC)
    lib.completemodel_Predict.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.completemodel_Step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.completemodel_Init.argtypes = [ctypes.c_void_p]
    lib.dir = d
    return lib


def _features(n_clips: int = 2) -> np.ndarray:
    """[n, 98, 32] log-mel frames of real clips (or the shape of them if data is missing)."""
    files = sorted(DEV.glob("*/*_nohash_0.wav"))[:n_clips]
    return np.stack([logmel(sf.read(f, dtype="int16")[0]) for f in files])


def _c_scores(lib, frames: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(frames), n_classes), np.float32)
    for t, f in enumerate(np.ascontiguousarray(frames, dtype=np.float32)):
        lib.completemodel_Predict(None, f.ctypes.data, out[t].ctypes.data)
    return out


def _torch_step_scores(model, frames: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None, :]  # [T, 1, F]
    state = model.init_stream_state(1)
    out = []
    with torch.no_grad():
        for t in range(len(x)):
            logits, state = model.step(x[t], state)
            out.append(torch.softmax(logits, -1)[0].numpy())
    return np.stack(out)


CONFIGS = {
    "fastgrnn-2x32": dict(architecture="fastgrnn", hidden_size=32, num_layers=2),
    "fastgrnn-1x20-lowrank": dict(architecture="fastgrnn", hidden_size=20, num_layers=1,
                                  wrank=6, urank=5),
    "fastgrnn-3x13-urank": dict(architecture="fastgrnn", hidden_size=13, num_layers=3, urank=3),
    "fastrnn-2x24": dict(architecture="fastrnn", hidden_size=24, num_layers=2),
    "fastrnn-1x16-wrank": dict(architecture="fastrnn", hidden_size=16, num_layers=1, wrank=10),
    # sparse matrices as sparse rows (tkws_sparse_rows), full rank and LSQ
    "fastgrnn-2x24-sparse": dict(architecture="fastgrnn", hidden_size=24, num_layers=2,
                                 w_sparsity=0.15, u_sparsity=0.1),
    "fastrnn-2x40-lsq": dict(architecture="fastrnn", hidden_size=40, num_layers=2, wrank=10,
                             urank=7, w_sparsity=0.15, u_sparsity=0.5),
    "gru-2x20": dict(architecture="gru", hidden_size=20, num_layers=2),
    "lstm-1x18": dict(architecture="lstm", hidden_size=18, num_layers=1),
    # a step every 2 or 3 frames, on the frames gathered (ModelConfig.frame_stride)
    "fastgrnn-2x32-stride2": dict(architecture="fastgrnn", hidden_size=32, num_layers=2, frame_stride=2),
    "fastrnn-1x16-wrank-stride3": dict(architecture="fastrnn", hidden_size=16, num_layers=1,
                                       wrank=10, frame_stride=3),
    "lstm-1x18-stride3": dict(architecture="lstm", hidden_size=18, num_layers=1, frame_stride=3),
    # the embedded default's cell: W_hh h made on a group's first frame, the rest on its last
    "gru-2x20-stride2": dict(architecture="gru", hidden_size=20, num_layers=2, frame_stride=2),
    "gru-1x12-stride3": dict(architecture="gru", hidden_size=12, num_layers=1, frame_stride=3),
    "fastgrnn-2x24-sparse-stride2": dict(architecture="fastgrnn", hidden_size=24, num_layers=2,
                                         w_sparsity=0.15, u_sparsity=0.1, frame_stride=2),
    "fastgrnn-1x20-lowrank-stride2": dict(architecture="fastgrnn", hidden_size=20, num_layers=1,
                                          wrank=6, urank=5, frame_stride=2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("trained_like", [False, True], ids=["init", "trained-like"])
def test_streaming_scores_match_pytorch(tmp_path_factory, monkeypatch, name, trained_like):
    if "sparse" in name or "lsq" in name:  # every W and U as sparse rows
        monkeypatch.setattr(writers, "FORCE_STORAGE", "sparse")
    model = _model(list(CONFIGS).index(name), trained_like, **CONFIGS[name])
    lib = _build(tmp_path_factory.getbasetemp() / "models", model)
    frames = _features(2).reshape(-1, 32)  # two clips back to back: 196 steps, state kept
    lib.completemodel_Reset()
    c = _c_scores(lib, frames, 12)
    ref = _torch_step_scores(model, frames)
    assert np.abs(c[:5] - ref[:5]).max() <= STEP_ATOL
    assert np.abs(c - ref).max() <= CLIP_ATOL
    np.testing.assert_allclose(c.sum(axis=1), 1.0, atol=1e-5)  # probabilities


def test_sparse_matrices_are_stored_as_sparse_rows():
    """Matrices whose sparse rows cost fewer M4 instructions than the blocked kernel are
    stored so (only their nonzeros in flash); the others, and every matrix of a dense
    model, stay in the blocked layout."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(hidden_size=96, num_layers=1, w_sparsity=0.5, u_sparsity=0.05))
    _sparsify(m)
    c = emit_model(m, CATS)["model.c"]
    assert "completemodel_l0_U_rows" in c  # 5 % of 96 x 96
    assert "completemodel_l0_W_rows" not in c and "completemodel_l0_W_data" in c  # 50 %
    c = emit_model(_model(0, True, **CONFIGS["fastgrnn-2x32"]), CATS)["model.c"]
    assert "tkws_sparse_rows" not in c


def _step_branches(c: str) -> tuple[str, str]:
    """A strided `completemodel_Step`'s two branches: the frames that gather, the one that steps."""
    body = c[c.index("void completemodel_Step("):]
    gather, step = body.split("} else {", 1)
    return gather, step[: step.index("tkws_matvec(&completemodel_fc")]


def test_strided_step_is_spread_over_the_group():
    """At stride 2 the float C makes the products of the last step's state (W_hh h + b_hh of
    a GRU, U h of a FastGRNN) on a group's first frame and keeps them in the state; the rest
    of the step runs on the second. test_streaming_scores_match_pytorch (the -stride configs)
    checks the scores; this, that no frame carries the whole step."""
    gather, step = _step_branches(emit_model(_model(3, **CONFIGS["gru-2x20-stride2"]), CATS)["model.c"])
    for i in range(2):
        assert (f"tkws_matvec(&completemodel_l{i}_w_hh, state->h{i}, completemodel_l{i}_b_hh, "
                f"state->gh{i});") in gather
        assert f"tkws_gru_update(&completemodel_cell{i}, " in step and "w_hh" not in step
    assert "tkws_gru_step(" not in gather + step
    gather, step = _step_branches(emit_model(_model(3, **CONFIGS["fastgrnn-2x32-stride2"]), CATS)["model.c"])
    for i in range(2):
        assert f"tkws_fast_uh(&completemodel_cell{i}, state->h{i}, state->uh{i}, 0);" in gather
        assert f"tkws_fastgrnn_update(&completemodel_cell{i}, " in step and "_uh(" not in step
    for flat in ("gru-2x20", "fastgrnn-2x32"):  # stride 1: one step call, as before
        c = emit_model(_model(3, **CONFIGS[flat]), CATS)["model.c"]
        assert "_step(&completemodel_cell0" in c and "_update(" not in c


def test_whole_clip_matches_forward(tmp_path_factory):
    """Reset + 98 frames -> the scores KWSModel.forward gives for the clip."""
    model = _model(7, True, architecture="fastgrnn", hidden_size=64, num_layers=2)
    lib = _build(tmp_path_factory.getbasetemp() / "models", model)
    feats = _features(3)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(feats)), -1).numpy()
    for clip, r in zip(feats, ref):
        lib.completemodel_Reset()
        c = _c_scores(lib, clip, 12)[-1]
        assert np.abs(c - r).max() <= CLIP_ATOL
        assert c.argmax() == r.argmax()


@pytest.mark.parametrize("kw", [dict(architecture="lstm"), dict(architecture="fastgrnn", frame_stride=3)],
                         ids=["lstm", "fastgrnn-stride3"])
def test_reset_zeroes_state(tmp_path_factory, kw):
    """Reset restarts a stream, also in the middle of a strided model's group (98 frames
    leave a stride-3 model 2 frames into one)."""
    model = _model(3, False, hidden_size=12, num_layers=2, **kw)
    lib = _build(tmp_path_factory.getbasetemp() / "models", model)
    frames = _features(1)[0]
    lib.completemodel_Reset()
    a = _c_scores(lib, frames, 12)
    b = _c_scores(lib, frames, 12)  # state carried over: differs
    assert np.abs(a - b).max() > 1e-4
    lib.completemodel_Reset()
    np.testing.assert_array_equal(_c_scores(lib, frames, 12), a)


def test_header_categories_enum_and_getters(tmp_path_factory):
    cats = ["_silence_", "_unknown_", "yes", "no", "on", "off"]
    model = _model(4, False, architecture="fastgrnn", hidden_size=8, num_layers=1, num_classes=6)
    lib = _build(tmp_path_factory.getbasetemp() / "models", model, cats)
    h = (lib.dir / "model.h").read_text()
    enum = re.findall(r"(COMPLETEMODEL_\w+) = (\d+),", h)
    assert [e for e, _ in enum] == ["COMPLETEMODEL_SILENCE", "COMPLETEMODEL_UNKNOWN",
                                    "COMPLETEMODEL_YES", "COMPLETEMODEL_NO",
                                    "COMPLETEMODEL_ON", "COMPLETEMODEL_OFF"]
    assert [int(i) for _, i in enum] == list(range(6))
    names = (ctypes.c_char_p * 6).in_dll(lib, "completemodel_categories")
    assert [n.decode() for n in names] == cats
    assert lib.completemodel_GetInputSize(0) == 32 and lib.completemodel_GetOutputSize(0) == 6
    lib.completemodel_GetMetadata.restype = ctypes.c_char_p
    assert lib.completemodel_GetMetadata(b"categories") == b",".join(c.encode() for c in cats)


def test_blocked_layout_roundtrip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(13, 7)).astype(np.float32)
    rows, cols, rp, cp, data = blocked(a)
    assert (rows, cols, rp, cp) == (13, 7, 16, 8)
    back = data.reshape(rp // 8, cp, 8).transpose(0, 2, 1).reshape(rp, cp)
    np.testing.assert_array_equal(back[:13, :7], a)
    assert not back[13:].any() and not back[:, 7:].any()


def test_fastgrnn_gate_paths_saturated_and_fallback(tmp_path_factory):
    """The one-exponential gate path with saturating pre-activations, and the two-exponential
    fallback the generator picks when |bias_gate - bias_update| is too large for it."""
    frames = _features(1)[0]
    for gap, expect_k in ((0.0, True), (30.0, False)):
        model = _model(11, True, architecture="fastgrnn", hidden_size=24, num_layers=2)
        with torch.no_grad():
            for cell in model.cells:
                cell.W.mul_(15.0)  # |a| up to ~100: clamps and saturation everywhere
                cell.bias_gate[:4] += gap
        lib = _build(tmp_path_factory.getbasetemp() / "models", model)
        assert ("gate_k" in (lib.dir / "model.c").read_text()) == expect_k
        lib.completemodel_Reset()
        c = _c_scores(lib, frames, 12)
        ref = _torch_step_scores(model, frames)
        assert np.abs(c - ref).max() <= CLIP_ATOL, f"gap {gap}"


@pytest.mark.parametrize("kw", [dict(architecture="lstm"), dict(architecture="fastgrnn", frame_stride=2)],
                         ids=["lstm", "fastgrnn-stride2"])
def test_explicit_states_are_independent(tmp_path_factory, kw):
    """Two streams on two `completemodel_state`s, interleaved frame by frame, give exactly
    what each gives alone through ELL's Predict (the default state), and Init restarts."""
    model = _model(5, True, hidden_size=12, num_layers=2, **kw)
    lib = _build(tmp_path_factory.getbasetemp() / "models", model)
    a, b = _features(2)
    lib.completemodel_Reset()
    alone_a, alone_b = _c_scores(lib, a, 12), (lib.completemodel_Reset(), _c_scores(lib, b, 12))[1]
    states = [np.full(4096, np.nan, np.float32) for _ in range(2)]  # larger than the struct
    for s in states:
        lib.completemodel_Init(s.ctypes.data_as(ctypes.c_void_p))
    out = np.zeros((2, len(a), 12), np.float32)
    for t in range(len(a)):
        for k, frames in enumerate((a, b)):
            f = np.ascontiguousarray(frames[t], dtype=np.float32)
            lib.completemodel_Step(states[k].ctypes.data_as(ctypes.c_void_p), f.ctypes.data,
                                   out[k, t].ctypes.data)
    np.testing.assert_array_equal(out[0], alone_a)
    np.testing.assert_array_equal(out[1], alone_b)


def test_gate_limit_is_generated_not_typed_into_the_runtime(tmp_path_factory):
    """The FastGRNN gate clamp reaches the C as data from the one Python constant."""
    from tinykws.codegen.cgen import c_float
    from tinykws.codegen.glue import runtime_dir
    from tinykws.codegen.cells import GATE_CLAMP

    model = _model(6, False, architecture="fastgrnn", hidden_size=8, num_layers=1)
    text = emit_model(model, CATS)["model.c"]
    assert f".gate_clamp = {c_float(GATE_CLAMP)}," in text
    assert c_float(GATE_CLAMP) not in (runtime_dir() / "tkws_rnn.c").read_text()


INPUT_LIMIT = 1.0e4  # TKWS_INPUT_LIMIT in tkws_rnn.h


@pytest.mark.parametrize("name", ["fastgrnn-2x32", "fastrnn-1x16-wrank", "gru-2x20", "lstm-1x18"])
def test_non_finite_frame_does_not_poison_the_state(tmp_path_factory, name):
    """A NaN/Inf/huge feature frame left the C model's state NaN until completemodel_Reset.
    Now the input is sanitised (NaN -> the training mean, +-Inf -> +-1e4 std): every score
    stays a probability, and the scores equal PyTorch's on the sanitised frames."""
    model = _model(list(CONFIGS).index(name), True, **CONFIGS[name])
    lib = _build(tmp_path_factory.getbasetemp() / "models", model)
    frames = _features(1)[0].copy()
    frames[10] = np.nan
    frames[20, :5] = np.inf
    frames[30, ::2] = -np.inf
    frames[40, 3] = 3e38
    lib.completemodel_Reset()
    c = _c_scores(lib, frames, 12)
    assert np.isfinite(c).all()
    np.testing.assert_allclose(c.sum(axis=1), 1.0, atol=1e-5)
    mean, std = model.mean.numpy().astype(np.float64), model.std.numpy().astype(np.float64)
    z = np.clip(np.nan_to_num((frames - mean) / std, nan=0.0), -INPUT_LIMIT, INPUT_LIMIT)
    ref = _torch_step_scores(model, (mean + z * std).astype(np.float32))
    assert np.abs(c - ref).max() <= CLIP_ATOL


def test_a_garbage_strided_state_restarts_its_group_instead_of_writing_past_it(tmp_path_factory):
    """A state that was never initialised (every byte 0x7F: phase ~2^31) gathers the frame
    at the start of the group, inside the struct (without the guard: a write gigabytes away)."""
    model = _model(6, False, architecture="fastgrnn", hidden_size=8, num_layers=1, frame_stride=2)
    lib = _build(tmp_path_factory.getbasetemp() / "models", model)
    state = np.full(8192, 0x7F, np.uint8)  # larger than the struct
    frame, out = np.zeros(32, np.float32), np.zeros(12, np.float32)
    lib.completemodel_Step(state.ctypes.data_as(ctypes.c_void_p), frame.ctypes.data, out.ctypes.data)
    x = state[:4 * 64].view(np.float32)  # the struct's first member: the gathered frames [2 x 32]
    np.testing.assert_allclose(x[:32], (frame - model.mean.numpy()) / model.std.numpy(), rtol=1e-6)
