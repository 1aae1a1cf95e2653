"""The integer build (integer featurizer + integer model) on the emulated Cortex-M4: every
feature and every class score of every frame equal to the Python integer reference.

On the device the model runs the SMLAD/SXTB16 inline-assembly matvec and the SSAT/USAT
clamps instead of the host's portable C, so this is the parity test of the assembly path,
with both cross-compilers, soft float (the target: no FPU) and hard float.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from codegen_host import toolchain_params
from test_quant_model import _int_model
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.model import emit_int_model
from tinykws.codegen.featurizer import emit_int_featurizer
from tinykws.features import FeatureParams
from tinykws.quant.features import frames_from_stream_q
from tinykws.quant.model import scores_float
from tinykws.toolchain import find_toolchain

pytest.importorskip("unicorn", reason="the emulated Cortex-M4 needs the device extra (unicorn)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
from realdata import REAL as DEV  # the dev set, or the committed mini set


def _clips(k: int) -> list[np.ndarray]:
    test = [p for p in (DEV / "testing_list.txt").read_text().split() if p]
    idx = np.linspace(0, len(test) - 1, k).round().astype(int)
    return [np.pad(x, (0, max(0, 16000 - len(x))))[:16000]
            for x in (sf.read(DEV / test[i], dtype="int16")[0] for i in idx)]


MODELS = {"fastgrnn": dict(architecture="fastgrnn", hidden_size=40, num_layers=2),
          "gru": dict(architecture="gru", hidden_size=24, num_layers=2, frame_stride=2)}


@pytest.mark.parametrize("abi,arch", [("soft", "fastgrnn"), ("hard", "fastgrnn"), ("hard", "gru")])
@pytest.mark.parametrize("tc_name", toolchain_params())
def test_int_build_bit_exact_on_device(tmp_path, tc_name, abi, arch):
    from tinykws.device import HarnessShape, KWSDevice, build_image
    from tinykws.device.emulator import soft_float_calls

    counts = []
    _, im = _int_model(0, **MODELS[arch])
    fp = FeatureParams()
    copy_runtime(tmp_path)
    for name, text in {**emit_int_featurizer(fp), **emit_int_model(im)}.items():
        (tmp_path / name).write_text(text)
    tc = find_toolchain(tc_name)
    srcs = [tc.compile_to_asm([tmp_path / f"{s}.c"], tmp_path / f"{s}.S", abi, include_dirs=[tmp_path])
            for s in ("featurizer", "model")]
    assert "smlad" in srcs[1].read_text()  # the DSP kernel, not the portable loop
    elf = build_image(srcs, tmp_path / "build", abi, tc)
    dev = KWSDevice(elf, HarnessShape(fp.hop, fp.n_mels, im.num_classes, fp.first_block - 1))
    assert dev.has_integer
    for i, x in enumerate(_clips(3)):
        q = frames_from_stream_q(x, fp)
        _, ref = im.run(q[None])
        # the float interface, then the all-integer loop (mfcc_FilterInt16 -> PredictQ)
        for run in (dev.run_clip(x.astype(np.float32), count=i == 0, count_blocks=8),
                    dev.run_clip(x, integer=True, count=i == 0, count_blocks=8)):
            np.testing.assert_array_equal(run.features[2:], q.astype(np.float32) / 256)
            np.testing.assert_array_equal(run.scores, scores_float(ref[0]))
            if i == 0:
                counts.append(run.counts)
    flt, integer = counts
    assert len(integer.per_call["mfcc_FilterInt16"]) == 8
    assert len(integer.per_call["completemodel_PredictQ"]) == 6
    assert "mfcc_Filter" not in integer.per_call  # the integer loop calls no float entry point
    int_helpers = soft_float_calls(set().union(*integer.entered.values()))
    assert int_helpers == []  # no __aeabi_f* helper anywhere in the integer loop
    # the float interface converts: in soft float through the helpers (the check can fail)
    assert bool(soft_float_calls(flt.entered["completemodel_Predict"])) == (abi == "soft")
    assert np.mean(integer.per_call["completemodel_PredictQ"]) < np.mean(
        flt.per_call["completemodel_Predict"])


def test_int8_build_is_measured_against_the_checkpoint_it_was_quantized_from(tmp_path, monkeypatch):
    """When `quantize` keeps quantization-aware fine-tuning, the integer model comes from
    quant/qat.pt: `verify` of the int8 build must measure it against qat.pt (it measured
    against train/best.pt, a model the build was not made from), and a later quantize that
    keeps post-training quantization must point back at best.pt."""
    import functools

    from eval_helpers import FEATURE_CATS, make_features, random_model, save_checkpoint
    from tinykws.codegen import compile_run
    from tinykws.data.audio import load_audio
    from tinykws.device import DeviceError, VerifyConfig, verify
    from tinykws.device.reference import int_reference, torch_reference
    from tinykws.quant import qat
    from tinykws.quant.calibrate import int_model_checkpoint, quantize_run

    run = tmp_path / "run"
    make_features(run / "features", n_train=96, n_val=40)
    best = save_checkpoint(run, random_model(hidden=16, classes=len(FEATURE_CATS)), FEATURE_CATS)
    tuned = run / "quant" / "qat.pt"
    # a learning rate at which 10 epochs of fine-tuning beat the random model (25 %)
    monkeypatch.setattr(qat, "finetune", functools.partial(qat.finetune, lr=0.01))
    rep = quantize_run(run, qat_epochs=10)
    assert rep.chosen == "qat" and rep.source_checkpoint == "quant/qat.pt"
    assert int_model_checkpoint(run) == tuned

    compile_run(run, float_abi="soft", precision="int8")
    r = verify(run / "device" / "int8",
               VerifyConfig(data_dir=DEV, max_clips=3, count_clips=0, progress=False))
    assert r.ok and r.reference == "int" and r.max_abs_diff == 0.0
    assert r.float_interface["ok"] and r.float_interface["max_abs_diff"] == 0.0  # both loops
    assert r.instructions["entry_points"]["featurizer"] == "mfcc_FilterInt16"
    audio = np.stack([load_audio(p)[0] for p in r.clips]).astype(np.float32)
    _, device_scores = int_reference(run)[0](audio)  # what the device gave, bit for bit (r.ok)

    def max_diff(ckpt):
        return float(np.abs(device_scores - torch_reference(ckpt)[0](audio)[1]).max())

    assert r.float_model["checkpoint"] == str(tuned)
    assert r.float_model["max_abs_diff"] == pytest.approx(max_diff(tuned), abs=1e-6)
    assert abs(max_diff(best) - max_diff(tuned)) > 0.05  # the two checkpoints are told apart
    with pytest.raises(DeviceError, match="no ONNX export"):  # export/ holds best.pt only
        verify(run / "device" / "int8",
               VerifyConfig(data_dir=DEV, max_clips=1, reference="onnx", progress=False))

    rep = quantize_run(run)  # post-training only: best.pt is the source, qat.pt is stale
    assert rep.source_checkpoint == "train/best.pt" and int_model_checkpoint(run) == best
    assert not tuned.exists()


def test_compile_requantizes_by_content_not_file_times(tmp_path, capsys):
    """`compile --precision int8` re-quantizes when the run's checkpoint is not the one the
    integer model was made from, and only then: by the checkpoint's recorded SHA-256, so a
    copy that loses (or a touch that changes) file times neither keeps a stale integer
    model nor replaces a current one."""
    import os

    from eval_helpers import FEATURE_CATS, make_features, random_model, save_checkpoint
    from tinykws.codegen import compile_run
    from tinykws.quant.calibrate import int_model_is_current, load_int_model, quantize_run
    from tinykws.run import file_sha256

    run = tmp_path / "run"
    make_features(run / "features", n_train=64, n_val=32)
    best = save_checkpoint(run, random_model(hidden=16, classes=len(FEATURE_CATS), seed=1), FEATURE_CATS)
    quantize_run(run)
    qpath = run / "quant" / "model_int.npz"
    made = qpath.read_bytes()
    assert load_int_model(run).info["base_sha256"] == file_sha256(best)
    os.utime(best, (qpath.stat().st_mtime + 100,) * 2)  # newer than the model, same bytes
    assert int_model_is_current(run, best)
    compile_run(run, float_abi="soft", precision="int8")
    assert qpath.read_bytes() == made  # kept: same checkpoint

    save_checkpoint(run, random_model(hidden=16, classes=len(FEATURE_CATS), seed=2), FEATURE_CATS)
    os.utime(best, (qpath.stat().st_mtime - 100,) * 2)  # a copy that made it look older
    assert not int_model_is_current(run, best)
    capsys.readouterr()
    compile_run(run, float_abi="soft", precision="int8")
    assert qpath.read_bytes() != made and int_model_is_current(run, best)
    assert "running `tinykws quantize" in capsys.readouterr().err  # said before it runs


def test_verify_refuses_an_int8_build_of_an_older_quantization(tmp_path):
    """Quantizing the run again after `compile` makes its int8 build stale: `verify` and
    `verify --stream` say so (recompile) instead of reporting every frame as different."""
    from eval_helpers import FEATURE_CATS, make_features, random_model, save_checkpoint
    from tinykws.codegen import compile_run
    from tinykws.device import DeviceError, VerifyConfig, verify
    from tinykws.device.verify_stream import verify_stream
    from tinykws.quant.calibrate import quantize_run

    run = tmp_path / "run"
    make_features(run / "features", n_train=64, n_val=32)
    save_checkpoint(run, random_model(hidden=16, classes=len(FEATURE_CATS), seed=1), FEATURE_CATS)
    compile_run(run, float_abi="soft", precision="int8")
    build = run / "device" / "int8"
    assert (build / "int_model.json").is_file()
    clip = next(iter(sorted((DEV / "yes").glob("*.wav"))))
    quantize_run(run, per_row=False)  # another integer model than the build's
    with pytest.raises(DeviceError, match="quantized again since"):
        verify(build, VerifyConfig(data_dir=DEV, max_clips=1, count_clips=0, progress=False))
    with pytest.raises(DeviceError, match="quantized again since"):
        verify_stream(build, clip, progress=False)
    compile_run(run, float_abi="soft", precision="int8")  # recompiled: current again
    assert verify(build, VerifyConfig(data_dir=DEV, max_clips=1, count_clips=0, progress=False)).ok


@pytest.mark.parametrize("tc_name", toolchain_params())
def test_lsq_int_build_bit_exact_and_cheaper_on_device(tmp_path, tc_name):
    """LSQ int8 (low-rank factors with the int16 inner vector between them, sparse rows for
    the sparse factors): every score of the all-integer loop equal to the Python reference
    on the emulated M4, at fewer instructions a frame than the dense full-rank model."""
    from tinykws.device import HarnessShape, KWSDevice, build_image

    fp = FeatureParams()
    tc = find_toolchain(tc_name)
    per_frame = {}
    lsq = dict(urank=8, w_sparsity=0.05)  # W sparse rows (77 of 1536), U two dense factors
    for name, extra in (("lsq", lsq), ("full", {})):
        _, im = _int_model(4, architecture="fastgrnn", hidden_size=48, num_layers=2, **extra)
        d = tmp_path / name
        copy_runtime(d)
        files = {**emit_int_featurizer(fp), **emit_int_model(im)}
        for fname, text in files.items():
            (d / fname).write_text(text)
        if name == "lsq":
            assert "tkws_qspmv(&" in files["model.c"] and "tkws_qnarrow(" in files["model.c"]
        srcs = [tc.compile_to_asm([d / f"{s}.c"], d / f"{s}.S", "soft", include_dirs=[d])
                for s in ("featurizer", "model")]
        dev = KWSDevice(build_image(srcs, d / "build", "soft", tc),
                        HarnessShape(fp.hop, fp.n_mels, im.num_classes, fp.first_block - 1))
        for i, x in enumerate(_clips(2)):
            _, ref = im.run(frames_from_stream_q(x, fp)[None])
            run = dev.run_clip(x, integer=True, count=i == 0, count_blocks=8)
            np.testing.assert_array_equal(run.scores, scores_float(ref[0]))
            if i == 0:
                per_frame[name] = np.mean(run.counts.per_call["completemodel_PredictQ"])
    assert per_frame["lsq"] < 0.75 * per_frame["full"]
