"""The hand-written Cortex-M4 assembly paths of the runtime, run on the emulated M4.

The host parity tests exercise the portable C loops; the hard-float build replaces the
matrix-vector product and the radix-4 FFT butterflies by inline assembly. Here both are
compiled for the Cortex-M4 (every available cross-compiler), linked with tinykws.device's
harness and run in unicorn, on shapes that hit every branch of the assembly: a column
count with a 4-column tail, one with no 8-column group at all, padded rows, GRU's stacked
gates, and a 1024-point FFT (radix-4 stages plus a final radix-2 stage).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from codegen_host import toolchain_params
from tinykws.codegen import write_sources
from tinykws.features import FeatureParams, frames_from_stream
from tinykws.models import ModelConfig, build_model

pytest.importorskip("unicorn", reason="the emulated Cortex-M4 needs the device extra (unicorn)")
from realdata import REAL as DEV  # the dev set, or the committed mini set

CASES = {
    # H = 20: U has 20 columns (8 + 8 + a 4-column tail); wrank 3: W2 has 4 columns (tail only)
    "fastgrnn-tails": (dict(architecture="fastgrnn", hidden_size=20, num_layers=2, wrank=3),
                       FeatureParams()),
    "fastrnn-fft1024": (dict(architecture="fastrnn", hidden_size=16, num_layers=1),
                        FeatureParams(fft_size=1024, window_size=480, hop=160, n_mels=40)),
    # 2 layers at stride 2, as the embedded default: W_hh h on one frame, the rest on the next
    "gru-hamming": (dict(architecture="gru", hidden_size=12, num_layers=2, frame_stride=2),
                    FeatureParams(window="hamming")),
    # the portable C loops compiled for the M4 FPU (TKWS_NO_ASM), as a firmware may choose
    "fastgrnn-noasm": (dict(architecture="fastgrnn", hidden_size=20, num_layers=1, urank=5),
                       FeatureParams()),
}


def _clip(params: FeatureParams) -> np.ndarray:
    f = sorted((DEV / "yes").glob("*.wav"))[0]
    x = sf.read(f, dtype="int16")[0].astype(np.float32)
    n = 40 * params.hop  # 40 blocks: enough for every code path, quick to emulate
    return np.pad(x, (0, max(0, n - len(x))))[:n]


def _torch_scores(model, feats: np.ndarray) -> np.ndarray:
    st = model.init_stream_state(1)
    out = []
    with torch.no_grad():
        for f in torch.from_numpy(feats)[:, None, :]:
            logits, st = model.step(f, st)
            out.append(torch.softmax(logits, -1)[0].numpy())
    return np.stack(out)


@pytest.mark.parametrize("tc_name", toolchain_params())
@pytest.mark.parametrize("case", list(CASES))
def test_assembly_paths_on_emulated_m4(tmp_path, case, tc_name):
    from tinykws.device import HarnessShape, KWSDevice, build_image
    from tinykws.toolchain import find_toolchain

    cfg, params = CASES[case]
    torch.manual_seed(1)
    model = build_model(ModelConfig(input_size=params.n_mels, num_classes=5, **cfg)).eval()
    files = write_sources(tmp_path, params, model, ["a", "b", "c", "d", "e"])
    tc = find_toolchain(tc_name)
    for stem in ("featurizer", "model"):
        tc.compile_to_asm([files[f"{stem}.c"]], tmp_path / f"{stem}.S", "hard",
                          include_dirs=[tmp_path],
                          defines=["TKWS_NO_ASM"] if case.endswith("noasm") else [])
        asm = (tmp_path / f"{stem}.S").read_text()
        if stem == "model":  # the matvec kernel's 16-register weight loads
            kernel = "{s16-s31}" in asm or "{s16, s17, s18, s19, s20" in asm
            assert kernel != case.endswith("noasm")
    elf = build_image([tmp_path / "featurizer.S", tmp_path / "model.S"], tmp_path / "build",
                      "hard", toolchain=tc)
    shape = HarnessShape(params.hop, params.n_mels, 5, params.first_block - 1)
    run = KWSDevice(elf, shape).run_clip(_clip(params))
    ref_feats = frames_from_stream(_clip(params), params)
    feats = run.features[params.first_block - 1 :]
    assert np.abs(feats - ref_feats).max() <= 1e-3
    ref = _torch_scores(model, feats)  # the model's own parity: same input frames
    assert run.scores.shape == ref.shape
    assert np.abs(run.scores - ref).max() <= 1e-5


def _sparse(model):
    """Zero all but the largest entries of every sparse matrix (what IHT training leaves)."""
    from tinykws.models.sparsity import hard_threshold_mask, sparse_groups

    with torch.no_grad():
        for p, keep in sparse_groups(model):
            p.mul_(hard_threshold_mask(p, keep))
    return model


@pytest.mark.parametrize("abi", ["hard", "soft"])
def test_lsq_float_build_on_emulated_m4(tmp_path, abi):
    """Low-rank factors kept and sparse matrices as sparse rows, hard and soft float: the
    scores match PyTorch, and the model step costs fewer instructions than the full-rank
    dense model of the same size."""
    from tinykws.device import HarnessShape, KWSDevice, build_image
    from tinykws.toolchain import find_toolchain

    params = FeatureParams()
    tc = find_toolchain("zig")  # always installed (the ziglang wheel)
    per_frame = {}
    for name, extra in (("lsq", dict(urank=8, w_sparsity=0.05)),  # W sparse rows, U factored
                        ("full", {})):
        torch.manual_seed(2)
        cfg = ModelConfig(input_size=params.n_mels, num_classes=5, architecture="fastgrnn",
                          hidden_size=48, num_layers=2, **extra)
        model = _sparse(build_model(cfg)).eval()
        d = tmp_path / name
        files = write_sources(d, params, model, ["a", "b", "c", "d", "e"])
        if name == "lsq":
            assert "tkws_sparse_rows" in files["model.c"].read_text()
        srcs = [tc.compile_to_asm([files[f"{s}.c"]], d / f"{s}.S", abi, include_dirs=[d])
                for s in ("featurizer", "model")]
        run = KWSDevice(build_image(srcs, d / "build", abi, toolchain=tc),
                        HarnessShape(params.hop, params.n_mels, 5, params.first_block - 1)
                        ).run_clip(_clip(params), count=True, count_blocks=8)
        feats = run.features[params.first_block - 1 :]
        assert np.abs(run.scores - _torch_scores(model, feats)).max() <= 1e-5
        per_frame[name] = np.mean(run.counts.per_call["completemodel_Predict"])
    assert per_frame["lsq"] < 0.8 * per_frame["full"]
