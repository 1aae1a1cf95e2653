"""End to end on a small FastGRNN run: `tinykws compile` (codegen) for the three float
ABIs, then `tinykws verify` on real clips from ../shared/data/speech_commands_dev, the
files' promises (FPU instructions only in hard float and softfp, assemble with
arm-none-eabi-gcc; softfp links with a soft-float harness at hard-float cost), and the
example firmware loop in docs/ compiled against the generated headers of the float builds
and of the integer (int8) build, and run on the host against both."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from codegen_host import have_arm_gcc
from eval_helpers import save_checkpoint
from tinykws.device import VerifyConfig, classify_clips, torch_reference, verify
from tinykws.features import FeatureParams, logmel
from tinykws.data.audio import load_audio
from tinykws.models import ModelConfig, build_model
from tinykws.toolchain import FLOAT_ABIS, asm_float_abi, find_toolchain, fpu_instructions

from realdata import REAL as DATA  # the dev set, or the committed mini set
REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on",
              "off", "stop", "go"]  # fmt: skip


def make_run(run: Path, n_test: int = 6, hidden: int = 16, layers: int = 2, stride: int = 1) -> Path:
    """A run folder with lists and a FastGRNN checkpoint (random weights, real
    normalisation, a sharpened classifier so the scores are far from uniform; `stride`:
    its frame stride)."""
    lists = run / "lists"
    lists.mkdir(parents=True)
    (lists / "categories.txt").write_text("\n".join(CATEGORIES) + "\n")
    test = [line for line in (DATA / "testing_list.txt").read_text().split() if line]
    picked = [test[i] for i in np.linspace(0, len(test) - 1, n_test).astype(int)]
    (lists / "testing_list.txt").write_text("\n".join(picked) + "\n")
    (lists / "lists.json").write_text(json.dumps({"data_dir": str(DATA), "task": "google12"}))
    torch.manual_seed(0)
    cfg = ModelConfig("fastgrnn", hidden_size=hidden, num_layers=layers,
                      num_classes=len(CATEGORIES), wrank=8, frame_stride=stride)  # fmt: skip
    model = build_model(cfg)
    feats = np.concatenate([logmel(load_audio(DATA / p)[0], FeatureParams()) for p in picked])
    model.set_normalization(torch.from_numpy(feats.mean(0)), torch.from_numpy(feats.std(0)))
    with torch.no_grad():
        model.fc.weight.mul_(8.0)
    save_checkpoint(run, model, CATEGORIES)
    return run


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory):
    from tinykws.codegen import compile_run

    run = make_run(tmp_path_factory.mktemp("e2e") / "run")
    for abi in FLOAT_ABIS:
        compile_run(run, run / "device" / abi, "cortex-m4", abi)
    return run


@pytest.mark.parametrize("abi", FLOAT_ABIS)
def test_compiled_files_keep_their_promises(compiled_run, abi):
    d = compiled_run / "device" / abi
    for name in ("featurizer.h", "featurizer.S", "model.h", "model.S"):
        assert (d / name).is_file(), name
    for name in ("featurizer.S", "model.S"):
        fpu = fpu_instructions((d / name).read_text())
        assert bool(fpu) == (abi != "soft"), (name, fpu[:5])
        assert asm_float_abi((d / name).read_text()) == abi
    if have_arm_gcc():  # the firmware engineers' assembler accepts them
        gcc = find_toolchain("gcc")
        for name in ("featurizer.S", "model.S"):
            gcc.assemble(d / name, d / "gcc_check" / f"{name}.o", abi)


@pytest.mark.parametrize("abi", FLOAT_ABIS)
def test_verify_passes_on_real_clips(compiled_run, abi):
    d = compiled_run / "device" / abi
    n_clips = 3 if abi == "soft" else 6
    r = verify(d, VerifyConfig(max_clips=n_clips, count_clips=1, count_blocks=12, progress=False))
    assert r.ok, r.first_mismatch
    assert r.n_clips == n_clips and r.n_frames == 98 * r.n_clips
    assert r.max_abs_diff <= 1e-3 and r.argmax_agreement == 1.0
    assert r.max_feature_diff <= 1e-3  # issue 4's C featurizer tolerance (log domain)
    ins = r.instructions
    assert ins["featurizer"]["calls"] == 12 and ins["model"]["calls"] == 10
    assert ins["model"]["mean"] > 1000 and ins["featurizer"]["mean"] > 5000
    assert 0 < r.peak_stack_bytes < 4096
    assert r.flash_bytes > sum(s["text"] for s in r.sizes.values())
    saved = json.loads((d / "verify.json").read_text())
    assert saved["ok"] and saved["float_abi"] == abi


def test_softfp_runs_at_hard_float_cost_with_a_soft_float_firmware(compiled_run):
    """softfp (issue 11): verify links the softfp .S files with a harness built
    -mfloat-abi=soft (no FPU attributes: the soft-float firmware) and the instruction count
    stays within 5 % of hard float's."""
    counts = {}
    for abi in ("hard", "softfp"):
        d = compiled_run / "device" / abi
        r = verify(d, VerifyConfig(max_clips=1, count_clips=1, progress=False))
        assert r.ok and r.float_abi == abi, r.first_mismatch
        counts[abi] = r.instructions["featurizer"]["mean"] + r.instructions["model"]["mean"]
    assert counts["softfp"] <= 1.05 * counts["hard"], counts
    harness = compiled_run / "device" / "softfp" / "build" / "harness.o"
    attrs = _arm_attributes(harness)
    assert attrs.get("TAG_ABI_VFP_ARGS", 0) == 0 and attrs.get("TAG_FP_ARCH", 0) == 0, attrs
    assert _arm_attributes(compiled_run / "device" / "softfp" / "build" / "model.o").get(
        "TAG_FP_ARCH", 0) != 0  # the model itself does use the FPU


def _arm_attributes(obj: Path) -> dict:
    """The EABI attributes (.ARM.attributes) of an object file, by tag name."""
    from elftools.elf.elffile import ELFFile

    out = {}
    with open(obj, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".ARM.attributes")
        for sub in sec.iter_subsections():
            for subsub in sub.iter_subsubsections():
                for attr in subsub.iter_attributes():
                    out[attr.tag] = attr.value
    return out


def test_verify_cli_fails_on_a_wrong_model(compiled_run, tmp_path):
    """Swap in different weights after compiling: verify must exit 1 and name the clip."""
    from typer.testing import CliRunner

    from tinykws.cli import app

    run = tmp_path / "run"
    shutil.copytree(compiled_run, run)
    ckpt = torch.load(run / "train" / "best.pt", weights_only=True)
    ckpt["state_dict"]["fc.bias"] += 0.5 * torch.arange(len(CATEGORIES))
    torch.save(ckpt, run / "train" / "best.pt")
    res = CliRunner().invoke(app, ["verify", str(run / "device" / "hard"), "--max-clips", "2"])
    assert res.exit_code == 1, res.output
    assert "FAIL: first mismatch in" in res.output and "frame 0" in res.output


def test_classify_clips_matches_torch(compiled_run):
    audio = np.stack([load_audio(p)[0] for p in sorted((DATA / "yes").glob("*.wav"))[:2]])
    scores = classify_clips(compiled_run, audio, build="hard")
    ref, _, _, _ = torch_reference(compiled_run)
    want = ref(audio.astype(np.float32))[1][:, -1]
    np.testing.assert_allclose(scores, want, atol=1e-4)
    np.testing.assert_array_equal(scores.argmax(1), want.argmax(1))


# ---------------------------------------------------------------- example firmware loop

KWS_LOOP = REPO / "docs" / "examples" / "kws_loop.c"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-Wfloat-conversion"]

DRIVER_C = r"""
/* Host driver for the example loop: int16 PCM on stdin, fed in irregular chunks. */
#include <stdio.h>
#include "kws_loop.c"

static int detections;
static void on_detect(int c, const char *name, float p, void *user) {
    const kws_stream_t *s = user;
    detections++;
    fprintf(stderr, "detected %u %d %s %.9g\n", (unsigned)s->frames, c, name, (double)p);
}

int main(void) {
    static kws_ring_t ring;
    static kws_stream_t kws;
    int16_t pcm[KWS_BLOCK];
    int blocks = 0;
    kws_init(&kws, on_detect, &kws);
    while (fread(pcm, sizeof pcm[0], KWS_BLOCK, stdin) == KWS_BLOCK) {
        if (kws_ring_push(&ring, pcm) != 0) return 3;
        if (++blocks % 3 == 0) kws_poll(&ring, &kws); /* the loop runs now and then */
    }
    kws_poll(&ring, &kws);
    printf("%u %d", (unsigned)kws.frames, detections);
    for (int c = 0; c < KWS_CLASSES; c++) printf(" %.9g", (double)kws.scores[c]);
    printf("\n");
    return 0;
}
"""


def test_example_loop_compiles_for_cortex_m4(compiled_run, tmp_path):
    for abi in FLOAT_ABIS:
        d = compiled_run / "device" / abi
        for tc in {find_toolchain(), find_toolchain("zig")}:
            obj = tmp_path / f"kws_loop_{tc.name}_{abi}.o"
            tc.compile_object(KWS_LOOP, obj, abi, include_dirs=[d], extra_flags=STRICT)
            assert obj.stat().st_size > 0


def test_example_loop_runs_on_host_and_matches_torch(compiled_run, tmp_path):
    from tinykws.codegen.detector import emit_detector
    from tinykws.detector_config import DetectorConfig

    # a detector with threshold 0: fires on frame 1
    cats = torch.load(compiled_run / "train" / "best.pt", weights_only=True)["categories"]
    det_dir = tmp_path / "detector"
    det_dir.mkdir()
    for name, text in emit_detector(DetectorConfig(threshold=0.0), cats, 10.0).items():
        (det_dir / name).write_text(text)
    clip = load_audio(sorted((DATA / "yes").glob("*.wav"))[0])[0]  # int16 [16000]
    frames, scores, detections = _host_loop(compiled_run / "device" / "hard", det_dir, tmp_path,
                                            clip)  # fmt: skip
    assert frames == 98
    assert [d[0] for d in detections] == [1]  # the first frame; the refractory period holds
    ref, _, _, _ = torch_reference(compiled_run)
    want = ref(clip[None].astype(np.float32))[1][0, -1]
    np.testing.assert_allclose(scores, want, atol=1e-3)
    assert scores.argmax() == want.argmax()


def _host_loop(build: Path, detector_dir: Path, tmp_path: Path, audio: np.ndarray):
    """docs/examples/kws_loop.c built on the host against `build`'s featurizer and model and
    `detector_dir`'s detector, run on int16 `audio` -> (frames, final scores, detections as
    (frame, class, confidence) from the callback)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.fail("no host C compiler (cc) found")
    (tmp_path / "driver.c").write_text(DRIVER_C)
    exe = tmp_path / "kws_host"
    subprocess.run(
        [cc, *STRICT, "-O2", f"-I{detector_dir}", f"-I{build}", f"-I{KWS_LOOP.parent}",
         str(tmp_path / "driver.c"), str(build / "featurizer.c"), str(build / "model.c"),
         str(detector_dir / "detector.c"), "-o", str(exe), "-lm"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    out = subprocess.run([str(exe)], input=audio.astype(np.int16).tobytes(), capture_output=True,
                         check=True)  # fmt: skip
    fields = out.stdout.decode().split()
    detections = [(int(d[1]), int(d[2]), np.float32(d[4]))
                  for d in (ln.split() for ln in out.stderr.decode().splitlines())]
    assert len(detections) == int(fields[1])
    return int(fields[0]), np.array([float(v) for v in fields[2:]], np.float32), detections


@pytest.fixture(scope="module")
def int8_build(compiled_run):
    """RUN/device/int8 (`tinykws compile --float-abi soft --precision int8`), the model
    quantized with hidden-state (and low-rank inner) ranges calibrated on the run's testing
    clips."""
    from tinykws.codegen import compile_run
    from tinykws.quant.calibrate import layer_ranges
    from tinykws.quant.model import quantize_model
    from tinykws.checkpoint import load_model

    model, ck = load_model(compiled_run)
    picked = (compiled_run / "lists" / "testing_list.txt").read_text().split()
    clips = np.stack([logmel(load_audio(DATA / p)[0], FeatureParams()) for p in picked])
    ranges, inner = layer_ranges(model, clips)  # the run's model has W rank 8: factors kept
    im = quantize_model(model, list(ck.categories), ranges, rank_max_abs=inner)
    im.info["checkpoint"] = "train/best.pt"
    im.save(compiled_run / "quant" / "model_int.npz")
    return compile_run(compiled_run, float_abi="soft", precision="int8").out_dir


def test_example_loop_compiles_for_cortex_m4_int8(int8_build, tmp_path):
    """The same file, unchanged, against the integer build's headers (the MXChip path)."""
    assert int8_build.name == "int8" and "completemodel_StepQ(" in (int8_build / "model.h").read_text()
    for tc in {find_toolchain(), find_toolchain("zig")}:
        obj = tmp_path / f"kws_loop_{tc.name}_int8.o"
        tc.compile_object(KWS_LOOP, obj, "soft", include_dirs=[int8_build], extra_flags=STRICT)
        assert obj.stat().st_size > 0


def test_example_loop_on_int8_build_equals_the_integer_reference(compiled_run, int8_build,
                                                                   tmp_path):
    """kws_loop.c on the int8 build (host) over a few clips of real speech, one never-reset
    stream: its last scores are the Python integer model's (`IntModel` on
    `frames_from_stream_q`) bit for bit, and its detections, frame, class and confidence,
    are `IntTrigger`'s on the same Q15 scores, with a threshold crossed several times."""
    from tinykws.codegen.detector import emit_int_detector
    from tinykws.detector_config import DetectorConfig
    from tinykws.triggers import IntTrigger, moving_average
    from tinykws.quant.calibrate import load_int_model
    from tinykws.quant.features import frames_from_stream_q
    from tinykws.quant.model import scores_float

    picked = (compiled_run / "lists" / "testing_list.txt").read_text().split()
    audio = np.concatenate([load_audio(DATA / p)[0] for p in picked[:4]])
    _, q15 = load_int_model(compiled_run).run(frames_from_stream_q(audio)[None])
    q15 = q15[0].astype(np.int64)  # [T, C]
    cfg = DetectorConfig(smoothing_ms=50.0, refractory_ms=300.0, mode="rolling")
    kw = cfg.keyword_mask(CATEGORIES)
    best = moving_average(q15 / 32768.0, cfg.smooth_steps(10.0))[:, kw].max(axis=1)
    cfg = cfg.replace(threshold=float(np.quantile(best, 0.8)))
    trig = IntTrigger.from_config(cfg, CATEGORIES, 10.0)
    want = [(t + 1, CATEGORIES.index(d.label), np.float32(d.confidence))
            for t, s in enumerate(q15) if (d := trig(t * 0.01, s))]
    assert len(want) >= 3
    det_dir = tmp_path / "detector"
    det_dir.mkdir()
    for name, text in emit_int_detector(cfg, CATEGORIES, 10.0).items():
        (det_dir / name).write_text(text)

    frames, scores, got = _host_loop(int8_build, det_dir, tmp_path, audio)
    assert frames == len(q15)
    np.testing.assert_array_equal(scores, scores_float(q15[-1].astype(np.int16)))
    assert got == want


def test_verify_with_libm(compiled_run, tmp_path):
    """--libm code links newlib's libm (gcc). zig has no libm, but its compiler_rt defines
    expf and logf, all this model's code calls (its FastGRNN gate is the one-exponential
    path): that links and verifies too. A libm function zig lacks (tanhf: a GRU's or a
    two-exponential FastGRNN's --libm code calls it) is a clear error."""
    from tinykws.codegen import compile_run
    from tinykws.device import DeviceError, build_image

    out = compiled_run / "device" / "hard_libm"
    compile_run(compiled_run, out, "cortex-m4", "hard", use_libm=True)
    if have_arm_gcc():  # newlib's libm comes with gcc
        r = verify(out, VerifyConfig(run_dir=compiled_run, max_clips=1, count_clips=0,
                                     progress=False))
        assert r.ok, r.first_mismatch
    zig = find_toolchain("zig")
    r = verify(out, VerifyConfig(run_dir=compiled_run, max_clips=1, count_clips=0, toolchain=zig,
                                 progress=False))
    assert r.ok and "zig" in r.toolchain, r.first_mismatch
    extra = tmp_path / "uses_tanhf.c"
    extra.write_text("float tanhf(float);  /* math.h's: zig has no libc headers for this target */\n"
                     "float tkws_test_tanh(float x) { return tanhf(x); }\n")
    with pytest.raises(DeviceError, match="newlib"):
        build_image([out / "featurizer.S", out / "model.S", extra], tmp_path / "build", "hard",
                    toolchain=zig, keep=["tkws_test_tanh"])


@pytest.mark.parametrize("abi", FLOAT_ABIS)
def test_counts_equal_qemu_exec_trace(compiled_run, abi):
    """unicorn's block counts equal QEMU mps2-an386's per-instruction trace, call by call
    (soft float included: its helpers' IT blocks are counted the same way)."""
    from tinykws.device import qemu_binary

    if qemu_binary() is None:
        pytest.skip("qemu-system-arm not installed (optional cross-check)")
    r = verify(compiled_run / "device" / abi,
               VerifyConfig(max_clips=1, count_clips=0, qemu=True, progress=False))
    q = r.qemu_check
    assert q["agree"], q
    assert len(q["qemu"]["featurizer"]) == q["blocks"]
    assert len(q["qemu"]["model"]) == q["blocks"] - 2


def test_reference_equals_streaming_step_by_step(compiled_run):
    """verify's batched reference = StreamingFeaturizer block by block + KWSModel.step."""
    from tinykws.features import StreamingFeaturizer
    from tinykws.checkpoint import load_model

    x = load_audio(sorted((DATA / "no").glob("*.wav"))[0])[0].astype(np.float32)
    ref, shape, fp, _ = torch_reference(compiled_run)
    feats, scores = ref(x[None])
    model, _ = load_model(compiled_run / "train" / "best.pt")
    sf, state, t = StreamingFeaturizer(fp), model.init_state(1), 0
    with torch.no_grad():
        for b in range(len(x) // shape.block_len):
            frame = sf.step(x[b * shape.block_len : (b + 1) * shape.block_len])
            if frame is None:
                assert b < shape.warmup_blocks
                continue
            logits, state = model.step(torch.from_numpy(frame)[None], state)
            np.testing.assert_allclose(frame, feats[0, t], atol=1e-4)
            np.testing.assert_allclose(torch.softmax(logits, -1)[0], scores[0, t], atol=1e-5)
            t += 1
    assert t == scores.shape[1] == 98


def test_verify_against_exported_onnx(compiled_run, tmp_path):
    """The device also matches the exported step graph (model_step.onnx in onnxruntime)."""
    from tinykws.device import DeviceError
    from tinykws.export import export_run

    run = tmp_path / "run"
    shutil.copytree(compiled_run, run)
    with pytest.raises(DeviceError, match="export"):
        verify(run / "device" / "hard", VerifyConfig(max_clips=1, reference="onnx", progress=False))
    export_run(run)
    r = verify(run / "device" / "hard",
               VerifyConfig(max_clips=3, count_clips=0, reference="onnx", progress=False))
    assert r.ok and r.reference == "onnx" and r.max_abs_diff < 1e-4, r.first_mismatch
