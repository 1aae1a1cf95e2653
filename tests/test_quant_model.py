"""The integer model: nonlinearity errors, quantization, and the generated C (host build)
bit for bit against the Python integer reference on real clips.

The Cortex-M4 side (SMLAD kernels on the emulated device) is in tests/test_quant_device.py.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codegen_host import PEDANTIC, build_shared, digest
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen import writers
from tinykws.codegen.model import emit_int_model
from tinykws.codegen.writers import qblocked, qunblocked
from tinykws.features import logmel
from tinykws.models import ModelConfig, build_model
from tinykws.quant import model as qm
from tinykws.quant.calibrate import layer_ranges
from tinykws.models.sparsity import hard_threshold_mask, sparse_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")

from realdata import REAL as DEV  # the dev set, or the committed mini set
CATS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
        "stop", "go"]


def _features(n_clips: int, start: int = 0) -> np.ndarray:
    """[n, 98, 32] float log-mel of real dev clips."""
    every = sorted(DEV.glob("*/*.wav"))
    step = max(1, min(40, len(every) // (start + n_clips + 1)))  # 40 on the dev set
    files = every[start : start + step * n_clips : step]
    assert len(files) == n_clips, f"too few real clips at {DEV}"
    return np.stack([logmel(sf.read(f, dtype="int16")[0]) for f in files])


def _float_model(seed: int, **kw) -> torch.nn.Module:
    """A trained-looking float model, normalised like the training features."""
    torch.manual_seed(seed)
    m = build_model(ModelConfig(**{"input_size": 32, "num_classes": 12, **kw}))
    feats = _features(4, start=seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:
                p.mul_(3.0)
            if p.dim() == 1 and "bias" in name:
                p.add_(0.5 * torch.randn_like(p))
        m.set_normalization(torch.from_numpy(feats.mean((0, 1))), torch.from_numpy(feats.std((0, 1))))
    return m.eval()


def _sparsify(m: torch.nn.Module) -> torch.nn.Module:
    """Zero all but the largest entries of every sparse matrix (what IHT training leaves)."""
    with torch.no_grad():
        for p, keep in sparse_groups(m):
            p.mul_(hard_threshold_mask(p, keep))
    return m


def _int_model(seed: int, **kw) -> tuple[torch.nn.Module, qm.IntModel]:
    m = _sparsify(_float_model(seed, **kw))
    ranges, inner = layer_ranges(m, _features(4, start=seed + 1))
    return m, qm.quantize_model(m, CATS[: m.config.num_classes], ranges, rank_max_abs=inner)


# ---------------------------------------------------------------------- arithmetic


def test_tanh_sigmoid_error_bounds():
    """The stated maximum errors, on every input of a Q.12 grid over [-20, 20]."""
    u = np.arange(-20 << 12, (20 << 12) + 1)
    x = u / 4096.0
    t = qm.tanh_q15(u, 12) / 32768.0
    s = qm.sigmoid_q15(u, 12) / 32768.0
    assert np.abs(t - np.tanh(x)).max() <= qm.TANH_MAX_ERR
    assert np.abs(s - 1 / (1 + np.exp(-x))).max() <= qm.SIGMOID_MAX_ERR
    assert (np.diff(t) >= 0).all() and (np.diff(s) >= 0).all()  # monotone
    np.testing.assert_array_equal(qm.tanh_q15(-u, 12), -qm.tanh_q15(u, 12))  # odd


def test_softmax_q15_close_to_float():
    rng = np.random.default_rng(0)
    logits = np.round(rng.normal(scale=6.0, size=(2000, 12)) * 1024) / 1024  # Q10 values
    p = qm.softmax_q15((logits * 1024).astype(np.int64)) / 32768.0
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.abs(p - ref).max() < qm.SOFTMAX_MAX_ERR
    assert (p.argmax(1) == ref.argmax(1)).mean() > 0.999


def test_quantize_features_rounds_half_even_and_saturates():
    x = np.array([0.0, 1 / 512, -1 / 512, 3 / 512, 1.0, -127.9, 200.0, -200.0, 1e-30, np.inf], np.float32)
    np.testing.assert_array_equal(qm.quantize_features(x), [0, 0, 0, 2, 256, -32742, 32767, -32768, 0, 32767])


def test_quantized_weights_are_close_and_int8():
    w = np.random.default_rng(1).normal(size=(10, 7))
    q, s = qm.quantize_rows(w)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.abs(q * s[:, None] - w).max() <= s.max() / 2 + 1e-12


@pytest.mark.parametrize("kw", [dict(), dict(wrank=8, urank=6, w_sparsity=0.5, u_sparsity=0.5),
                                dict(architecture="gru", frame_stride=2)],
                         ids=["full", "lsq", "gru-stride2"])
def test_integer_model_tracks_float_model(kw):
    """PTQ of a trained-looking 2 x 32 FastGRNN (full, and LSQ with its factors kept and
    the inner vectors in int16) and GRU: probabilities within 0.05, same argmax."""
    m, im = _int_model(0, **{"architecture": "fastgrnn", "hidden_size": 32, "num_layers": 2, **kw})
    feats = _features(6, start=5)
    with torch.no_grad():
        ref = torch.softmax(m.forward_sequence(torch.from_numpy(feats))[0], -1).numpy()
    _, sc = im.run(qm.quantize_features(feats))
    p = qm.scores_float(sc)
    assert np.abs(p - ref).max() < 0.05
    assert (p[:, -1].argmax(-1) == ref[:, -1].argmax(-1)).all()


@pytest.mark.parametrize("kw", [dict(), dict(wrank=3, urank=4), dict(frame_stride=2)],
                         ids=["full", "lowrank", "stride2"])
def test_save_load_roundtrip(tmp_path, kw):
    _, im = _int_model(1, architecture="fastrnn", hidden_size=12, num_layers=2, **kw)
    back = qm.IntModel.load(im.save(tmp_path / "m.npz"))
    assert [layer.factored for layer in back.layers] == ["wrank" in kw] * 2
    assert back.frame_stride == im.frame_stride == kw.get("frame_stride", 1)
    assert back.input_size == 32  # features a frame, whatever the stride
    x = qm.quantize_features(_features(1))
    for a, b in zip(im.run(x), back.run(x)):
        np.testing.assert_array_equal(a, b)
    # a recording a piece at a time: the same as at once, also across a stride's group
    state = im.init_state(1)
    _, first, state = im.run_from(x[:, :33], state)
    _, rest, _ = im.run_from(x[:, 33:], state)
    np.testing.assert_array_equal(np.concatenate([first, rest], 1), im.run(x)[1])


def test_low_rank_stays_factored():
    """W = W2 W1 and U = U2 U1 are two int8 factors each (rank (in + H) multiply-
    accumulates, not in H), and a low-rank model without inner ranges is refused."""
    from tinykws.errors import TinyKWSError

    m, im = _int_model(2, architecture="fastgrnn", hidden_size=20, num_layers=2, wrank=5, urank=3)
    first = im.layers[0]
    assert first.w1.shape == (5, 32) and first.w.shape == (20, 5)
    assert first.u1.shape == (3, 20) and first.u.shape == (20, 3)
    assert im.input_size == 32
    with pytest.raises(TinyKWSError, match="inner vectors"):
        qm.quantize_model(m, CATS, [1.0, 1.0])


def test_lsq_c_keeps_factors_and_sparse_rows(monkeypatch):
    """The generated C of an LSQ model multiplies by the factors (tkws_qnarrow between
    them) and walks sparse matrices as sparse rows; a full dense model uses neither."""
    _, im = _int_model(3, **CONFIGS["fastgrnn-2x40-lsq"])
    monkeypatch.setattr(writers, "FORCE_STORAGE", "sparse")
    c = emit_int_model(im)["model.c"]
    assert "tkws_qnarrow(" in c and "tkws_qspmv(&" in c and "tkws_qfastgrnn_update(" in c
    monkeypatch.setattr(writers, "FORCE_STORAGE", None)
    _, full = _int_model(3, architecture="fastgrnn", hidden_size=16, num_layers=1)
    c = emit_int_model(full)["model.c"]
    assert "tkws_qnarrow(" not in c and "tkws_qspmv(&" not in c


def test_sparse_storage_is_chosen_by_cost():
    """Sparse rows when they cost fewer M4 instructions than the dense kernel (few nonzeros,
    rows long enough to carry the per-row cost), at most 256 columns."""
    rng = np.random.default_rng(0)

    def sparse(rows: int, cols: int, density: float) -> np.ndarray:
        m = (rng.integers(1, 127, (rows, cols)) * (rng.random((rows, cols)) < density))
        return m.astype(np.int8)

    assert writers.use_sparse(sparse(128, 128, 0.05))
    assert not writers.use_sparse(sparse(128, 128, 0.3))
    assert not writers.use_sparse(sparse(64, 8, 0.05))  # short rows: the per-row cost wins
    assert not writers.use_sparse(sparse(8, 300, 0.01))  # column indices are one byte


def test_lstm_is_refused():
    from tinykws.errors import TinyKWSError

    m = build_model(ModelConfig(architecture="lstm", hidden_size=8, num_layers=1))
    with pytest.raises(TinyKWSError, match="integer build supports"):
        qm.quantize_model(m, CATS, [1.0])


def test_gru_layer_is_the_float_gru_in_integers():
    """One integer GRU step, 40 steps on: (a) against the float GRU equations in numpy on the
    integer layer's own dequantized parameters (W = int8 x its multiplier's scale, biases
    from Q.12), so only the tables' and the int16 state's rounding differ: within 2e-3;
    (b) against PyTorch's nn.GRU on the float weights (gate order r, z, n, b_hn inside r,
    the mean folded into the input side's biases): within the int8 weights' error."""
    m, im = _int_model(5, architecture="gru", hidden_size=16, num_layers=1)
    layer = im.layers[0]
    H, pre = 16, qm.PRE_FRAC
    assert layer.w.shape == (48, 32) and layer.u.shape == (48, 16) and layer.hidden == H
    assert layer.bias_gate.shape == (48,) and layer.bias_update.shape == (H,)
    w = layer.w * (layer.w_mult / 2.0 ** (pre - layer.in_frac + 32 - layer.shift))[:, None]
    u = layer.u * (layer.u_mult / 2.0 ** (pre - layer.h_frac + 32 - layer.shift))[:, None]
    bg, bu = layer.bias_gate / 2.0**pre, layer.bias_update / 2.0**pre
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    x = _features(1, start=9)[0]
    x_q = qm.quantize_features(x)
    h_q = np.zeros((1, H), np.int64)
    h_np = np.zeros(H)
    h = torch.zeros(1, 1, H)
    with torch.no_grad():
        z_in = ((torch.from_numpy(x) - m.mean) / m.std)[:, None, :]  # [T, 1, F]
        for t in range(40):
            h_q = qm._gru_step(layer, x_q[t][None].astype(np.int64), h_q)
            xt = x_q[t] / 256.0
            rz = sig(w[: 2 * H] @ xt + u[: 2 * H] @ h_np + bg[: 2 * H])
            n = np.tanh(w[2 * H :] @ xt + bg[2 * H :] + rz[:H] * (u[2 * H :] @ h_np + bu))
            h_np = (1 - rz[H:]) * n + rz[H:] * h_np
            _, h = m.cells[0].rnn(z_in[t : t + 1], h)
            got = h_q[0] / 2.0**layer.h_frac
            assert np.abs(got - h_np).max() < 2e-3
            assert np.abs(got - h[0, 0].numpy()).max() < 0.1


def test_runtime_tables_are_the_references():
    from tinykws.codegen.glue import runtime_dir
    from tinykws.codegen.model import qtables_c

    assert qtables_c() in (runtime_dir() / "tkws_qrnn.c").read_text()


def test_runtime_q_formats_are_generated_from_the_python_definition(monkeypatch):
    """tkws_qformats.h is what `qformats_h` writes from quant.model's formats, and it moves
    with them (a changed PRE_FRAC would change the header, not pass the bit-exact tests by
    luck of a stale copy)."""
    from tinykws.codegen import model as cmodel
    from tinykws.codegen.glue import RUNTIME_FILES, runtime_dir

    shipped = (runtime_dir() / "tkws_qformats.h").read_text()
    assert cmodel.qformats_h() == shipped
    assert "tkws_qformats.h" in RUNTIME_FILES
    assert '#include "tkws_qformats.h"' in (runtime_dir() / "tkws_qrnn.h").read_text()
    assert "TKWS_Q_PRE_FRAC" not in (runtime_dir() / "tkws_qrnn.h").read_text().split("tkws_qformats.h")[0]
    monkeypatch.setattr(cmodel, "PRE_FRAC", 11)
    assert "#define TKWS_Q_PRE_FRAC 11 " in cmodel.qformats_h()


def test_qblocked_layout_roundtrip():
    a = np.random.default_rng(2).integers(-127, 128, size=(13, 7)).astype(np.int8)
    rows, cols, rp, cp, data = qblocked(a)
    assert (rows, cols, rp, cp) == (13, 7, 16, 8)
    np.testing.assert_array_equal(qunblocked(13, 7, data), a)
    # one row's 4 bytes of a column group are (w0, w2, w1, w3)
    np.testing.assert_array_equal(data[:4], a[0, [0, 2, 1, 3]])


# ---------------------------------------------------------------------- C, host build


def _build(tmp: Path, im: qm.IntModel) -> ctypes.CDLL:
    files = emit_int_model(im)
    d = tmp / digest(*files.values())
    d.mkdir(parents=True, exist_ok=True)
    copy_runtime(d)
    for name, text in files.items():
        (d / name).write_text(text)
    lib = build_shared([d / "model.c"], d / "libqmodel.so", include_dirs=[d], extra=PEDANTIC)
    lib.completemodel_Predict.argtypes = [ctypes.c_void_p] * 3
    lib.completemodel_PredictQ.argtypes = [ctypes.c_void_p] * 3
    lib.completemodel_Init.argtypes = [ctypes.c_void_p]
    lib.completemodel_Step.argtypes = lib.completemodel_StepQ.argtypes = [ctypes.c_void_p] * 3
    lib.dir = d
    return lib


def _c_run(lib, x_q: np.ndarray, n_classes: int, float_in: bool = False) -> np.ndarray:
    """Frames [T, F] from reset through completemodel_PredictQ (or _Predict) -> [T, C]."""
    lib.completemodel_Reset()
    if float_in:
        out = np.zeros((len(x_q), n_classes), np.float32)
        xf = np.ascontiguousarray(x_q, np.float32) / np.float32(256)
        for t, f in enumerate(xf):
            lib.completemodel_Predict(None, f.ctypes.data, out[t].ctypes.data)
        return out
    out = np.zeros((len(x_q), n_classes), np.int16)
    for t, f in enumerate(np.ascontiguousarray(x_q, np.int16)):
        lib.completemodel_PredictQ(None, f.ctypes.data, out[t].ctypes.data)
    return out


CONFIGS = {
    "fastgrnn-2x32": dict(architecture="fastgrnn", hidden_size=32, num_layers=2),
    "fastgrnn-1x21-lowrank": dict(architecture="fastgrnn", hidden_size=21, num_layers=1, wrank=6, urank=5),
    "fastrnn-2x14": dict(architecture="fastrnn", hidden_size=14, num_layers=2),
    # sparse W and U stored as sparse rows (tkws_qspmv), full rank
    "fastgrnn-2x24-sparse": dict(architecture="fastgrnn", hidden_size=24, num_layers=2,
                                 w_sparsity=0.15, u_sparsity=0.1),
    # LSQ: factors kept, some of them sparse enough for sparse rows
    "fastgrnn-2x40-lsq": dict(architecture="fastgrnn", hidden_size=40, num_layers=2, wrank=10,
                              urank=7, w_sparsity=0.2, u_sparsity=0.6),
    "fastrnn-1x18-lowrank-u": dict(architecture="fastrnn", hidden_size=18, num_layers=1, urank=4),
    # a step every 2 or 3 frames, on the frames gathered (ModelConfig.frame_stride)
    "fastgrnn-2x32-stride2": dict(architecture="fastgrnn", hidden_size=32, num_layers=2, frame_stride=2),
    "fastgrnn-1x21-lowrank-stride3": dict(architecture="fastgrnn", hidden_size=21, num_layers=1,
                                          wrank=6, urank=5, frame_stride=3),
    "gru-2x18-stride2": dict(architecture="gru", hidden_size=18, num_layers=2, frame_stride=2),
    "gru-1x13": dict(architecture="gru", hidden_size=13, num_layers=1),
    "fastgrnn-2x24-sparse-stride2": dict(architecture="fastgrnn", hidden_size=24, num_layers=2,
                                         w_sparsity=0.15, u_sparsity=0.1, frame_stride=2),
    "fastrnn-2x14-urank-stride2": dict(architecture="fastrnn", hidden_size=14, num_layers=2, urank=4,
                                       frame_stride=2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_c_matches_python_bit_for_bit(tmp_path_factory, monkeypatch, name):
    """Every probability of every frame of real clips, PredictQ and the float entry point
    (the sparse configurations with every W and U matrix as sparse rows)."""
    if "sparse" in name or "lsq" in name:
        monkeypatch.setattr(writers, "FORCE_STORAGE", "sparse")
    _, im = _int_model(list(CONFIGS).index(name), **CONFIGS[name])
    lib = _build(tmp_path_factory.getbasetemp() / "qmodels", im)
    x = qm.quantize_features(_features(3, start=7))
    _, ref = im.run(x)
    for clip, r in zip(x, ref):
        np.testing.assert_array_equal(_c_run(lib, clip, im.num_classes), r)
    f = _c_run(lib, x[0], im.num_classes, float_in=True)
    np.testing.assert_array_equal(f, qm.scores_float(ref[0]))


def _run_branches(c: str) -> tuple[str, str]:
    """The strided `__run`'s two branches: the frames that gather, the frame that steps."""
    run = c[c.index("__run(completemodel_state"):]
    gather, rest = run.split("} else {", 1)
    return gather, rest[: rest.index("tkws_qlinear")]


def test_strided_step_is_spread_over_the_group():
    """At stride 2 the U h products (the last step's state only) run on the group's first
    frame and wait in the state; W x and the updates run on the second: no frame carries a
    whole step. That the outputs stay the Python reference's, bit for bit, is
    test_c_matches_python_bit_for_bit's (gru-2x18-stride2, fastgrnn-1x21-lowrank-stride3)."""
    _, im = _int_model(7, architecture="gru", hidden_size=18, num_layers=2, frame_stride=2)
    gather, step = _run_branches(emit_int_model(im)["model.c"])
    for i in range(2):
        assert f"tkws_qmatvec(&completemodel_l{i}_U, state->h{i}, state->acc_u{i});" in gather
        assert f"_l{i}_U" not in step and f"_l{i}_W" not in gather
        assert f"tkws_qgru_update(&completemodel_cell{i}, state->h{i}, state->acc_w, state->acc_u{i});" in step
    _, flat = _int_model(7, architecture="gru", hidden_size=18, num_layers=2)
    assert "acc_u0" not in emit_int_model(flat)["model.c"]  # stride 1: one step call, shared scratch


@pytest.mark.parametrize("kw", [dict(architecture="fastgrnn", hidden_size=20, num_layers=2, wrank=6),
                                dict(architecture="gru", hidden_size=18, num_layers=2, frame_stride=2)],
                         ids=["fastgrnn-wrank", "gru-stride2"])
def test_explicit_states_are_independent(tmp_path_factory, kw):
    """The explicit-state API of the float build, in the integer build (what
    docs/examples/kws_loop.c calls): two streams on two `completemodel_state`s that start
    as garbage, interleaved frame by frame (one through completemodel_StepQ, one through
    the float completemodel_Step), give exactly the Python reference's scores, which
    PredictQ on the default state gives too; completemodel_Init restarts a stream (at
    stride 2 also the products a group's first frame leaves in the state)."""
    _, im = _int_model(4, **kw)
    lib = _build(tmp_path_factory.getbasetemp() / "qmodels", im)
    x = qm.quantize_features(_features(2, start=3))
    _, ref = im.run(x)
    np.testing.assert_array_equal(_c_run(lib, x[1], im.num_classes), ref[1])
    states = [np.full(16384, 0xA5, np.uint8) for _ in range(2)]  # larger than the struct
    for st in states:
        lib.completemodel_Init(st.ctypes.data)
    q = np.zeros((x.shape[1], im.num_classes), np.int16)
    f = np.zeros((x.shape[1], im.num_classes), np.float32)
    xf = x[1].astype(np.float32) / np.float32(256)
    for t in range(x.shape[1]):
        fq = np.ascontiguousarray(x[0, t])
        lib.completemodel_StepQ(states[0].ctypes.data, fq.ctypes.data, q[t].ctypes.data)
        ff = np.ascontiguousarray(xf[t])
        lib.completemodel_Step(states[1].ctypes.data, ff.ctypes.data, f[t].ctypes.data)
    np.testing.assert_array_equal(q, ref[0])
    np.testing.assert_array_equal(f, qm.scores_float(ref[1]))
    lib.completemodel_Init(states[0].ctypes.data)
    out = np.zeros(im.num_classes, np.int16)
    fq = np.ascontiguousarray(x[0, 0])
    lib.completemodel_StepQ(states[0].ctypes.data, fq.ctypes.data, out.ctypes.data)
    np.testing.assert_array_equal(out, ref[0, 0])


def test_c_saturation_paths_bit_exact(tmp_path_factory):
    """Huge inputs and weights: saturated features, clamped pre-activations, tanh beyond
    the table, hidden states at the int16 limits - still identical."""
    m, _ = _int_model(3, architecture="fastgrnn", hidden_size=16, num_layers=2)
    with torch.no_grad():
        for cell in m.cells:
            cell.W.mul_(20.0)
    im = qm.quantize_model(m, CATS, [0.3, 0.3])  # too small a range: h saturates
    lib = _build(tmp_path_factory.getbasetemp() / "qmodels", im)
    rng = np.random.default_rng(5)
    x = rng.integers(-32768, 32768, size=(1, 60, 32)).astype(np.int16)
    _, ref = im.run(x)
    np.testing.assert_array_equal(_c_run(lib, x[0], 12), ref[0])
    assert (np.abs(im.run(x)[0]) > 0).any()


def test_c_float_to_q78_matches_python(tmp_path_factory):
    d = tmp_path_factory.getbasetemp() / "q78"
    d.mkdir(exist_ok=True)
    copy_runtime(d)
    (d / "q78.c").write_text(
        "#include <stdint.h>\n#include \"tkws_qrnn.c\"\n"
        "void q78(const float *x, int16_t *y, int32_t n);\n"
        "void q78(const float *x, int16_t *y, int32_t n) { for (int32_t i = 0; i < n; ++i) y[i] = tkws_q78_from_float(x[i]); }\n"
    )
    lib = build_shared([d / "q78.c"], d / "libq78.so", include_dirs=[d], defines=["TKWS_STATIC_RUNTIME"])
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.normal(scale=30, size=20000), rng.integers(-40000, 40000, 2000) / 256.0 + 1 / 512, rng.integers(-99, 99, 200) / 2.0 ** rng.integers(1, 30, 200),
        [0.0, -0.0, 1e-40, -1e-40, 127.998, 128.0, -128.0, -128.002, 3e38, -3e38, np.inf, -np.inf],
    ]).astype(np.float32)
    y = np.zeros(x.size, np.int16)
    lib.q78(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p), ctypes.c_int32(x.size))
    np.testing.assert_array_equal(y, qm.quantize_features(x))



def test_quantize_refuses_features_made_another_way(tmp_path):
    """Calibration features must be the checkpoint's: other feature parameters or other
    categories in a split give one clear error instead of silently wrong scales."""
    import json

    from eval_helpers import FEATURE_CATS, make_features, random_model, save_checkpoint
    from tinykws.quant.calibrate import quantize_run
    from tinykws.run import FeatureFileError

    run = tmp_path / "run"
    make_features(run / "features", n_train=24, n_val=8)
    save_checkpoint(run, random_model(classes=len(FEATURE_CATS)), FEATURE_CATS)
    quantize_run(run)  # the run's own features: accepted
    assert (run / "quant" / "model_int.npz").is_file()

    val = run / "features" / "validation.npz"
    z = dict(np.load(val))
    np.savez(val, **{**z, "feature_params": json.dumps({"power_spec": True, "window": "hamming"})})
    with pytest.raises(FeatureFileError, match="other feature parameters.*window"):
        quantize_run(run)

    np.savez(val, **{**z, "categories": np.array(FEATURE_CATS[::-1])})
    with pytest.raises(FeatureFileError, match="categories"):
        quantize_run(run)


def test_qat_fake_quantizes_gru_weights_in_the_forward_pass():
    """Quantization-aware fine-tuning of a GRU: its forward pass runs on the int8-rounded
    weights (W / std per row for the first layer, as the integer model stores them; the
    classifier's too), and
    the plain model it hands back holds the latent float weights."""
    from tinykws.quant import qat

    m, _ = _int_model(6, architecture="gru", hidden_size=12, num_layers=2)
    fq = qat.attach_fake_quant(m)
    rounded = build_model(m.config)
    rounded.load_state_dict(m.state_dict())
    with torch.no_grad():
        for i, cell in enumerate(rounded.cells):
            for name in ("weight_ih_l0", "weight_hh_l0"):
                w = getattr(cell.rnn, name).double().numpy()
                col = m.std.double().numpy() if i == 0 and name == "weight_ih_l0" else np.ones(w.shape[1])
                q, s = qm.quantize_rows(w / col[None, :])
                getattr(cell.rnn, name).copy_(torch.from_numpy(q * s[:, None] * col[None, :]))
        q, s = qm.quantize_rows(rounded.fc.weight.double().numpy())
        rounded.fc.weight.copy_(torch.from_numpy(q * s[:, None]))
    x = torch.from_numpy(_features(2, start=3))
    with torch.no_grad():
        got, want, plain = fq.forward_sequence(x)[0], rounded.forward_sequence(x)[0], m.forward_sequence(x)[0]
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-4)  # the rounding is seen
    back = qat._plain(fq)
    for (k, a), b in zip(back.state_dict().items(), m.state_dict().values()):
        assert torch.equal(a, b), k
