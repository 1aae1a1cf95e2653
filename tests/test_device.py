"""The emulated Cortex-M4: images built by both toolchains and both float ABIs run small C
functions with the right results, instruction counting agrees with a per-instruction hook,
stack measurement sees a deep function, and the verify machinery passes a correct device
and pinpoints the first wrong frame. An end-to-end verify of a trained run (codegen +
training) is in test_device_e2e.py."""

from __future__ import annotations

import numpy as np
import pytest

from codegen_host import toolchain_params
from tinykws.device import (
    DeviceError,
    Emulator,
    HarnessShape,
    KWSDevice,
    build_image,
    count_thumb_instructions,
    verify_device,
)
from tinykws.toolchain import FLOAT_ABIS, find_toolchain

FUNCS_C = r"""
#include <stdint.h>
float tk_in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
float tk_out[4];
int tk_counter = 41;  /* .data: the reset handler must copy it */
static int tk_zero;   /* .bss: the reset handler must zero it */

/* out[0] = sum in[i]^2, out[1] = in[0] / in[1], out[2] = sqrtf-free Newton sqrt(out[0]) */
int tk_math(int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += tk_in[i] * tk_in[i];
    tk_out[0] = s;
    tk_out[1] = tk_in[0] / tk_in[1];
    float r = s;
    for (int k = 0; k < 20; k++) r = 0.5f * (r + s / r);
    tk_out[2] = r;
    return (int)s + tk_counter + tk_zero;
}

/* A deliberately deep function: `n` bytes of stack, written through a volatile pointer. */
__attribute__((noinline)) int tk_deep(int n) {
    volatile uint8_t buf[3000];
    for (int i = 0; i < n && i < 3000; i++) buf[i] = (uint8_t)i;
    return buf[n - 1];
}

/* Straight-line integer loop without IT blocks, for the counting cross-check. */
__attribute__((noinline)) int tk_loop(int n) {
    volatile int acc = 0;
    for (int i = 0; i < n; i++) acc += i;
    return acc;
}
"""

# A stand-in for the generated featurizer and model with the ELL API, simple enough to
# mirror exactly in numpy: a leaky per-band block mean, then a leaky linear "model".
MOCK_KWS_C = r"""
static float prev[32];
static float h[4];
void mfcc_Reset(void) { for (int j = 0; j < 32; j++) prev[j] = 0.0f; }
void mfcc_Filter(void *ctx, const float *in, float *out) {
    (void)ctx;
    for (int j = 0; j < 32; j++) {
        float s = 0.0f;
        for (int k = 0; k < 5; k++) s += in[5 * j + k];
        out[j] = 0.5f * prev[j] + s / 5000.0f;
        prev[j] = out[j];
    }
}
void completemodel_Reset(void) { for (int c = 0; c < 4; c++) h[c] = 0.0f; }
void completemodel_Predict(void *ctx, const float *in, float *out) {
    (void)ctx;
    for (int c = 0; c < 4; c++) {
        float a = 0.0f;
        for (int j = 0; j < 32; j++) a += in[j] * (float)(((c + 1) * (j + 1)) % 7 - 3);
        h[c] = 0.9f * h[c] + 0.01f * a;
        out[c] = h[c];
    }
}
"""

SHAPE = HarnessShape(block_len=160, n_features=32, n_scores=4, warmup_blocks=2)
W = np.array([[((c + 1) * (j + 1)) % 7 - 3 for j in range(32)] for c in range(4)], np.float32)


def mock_reference(audio: np.ndarray):
    """numpy mirror of MOCK_KWS_C: (features [N, T, 32], scores [N, T, 4]), T = blocks - 2."""
    n, s = audio.shape
    blocks = audio.reshape(n, s // 160, 32, 5).sum(-1, dtype=np.float32) / np.float32(5000)
    feats = np.zeros_like(blocks)
    prev = np.zeros((n, 32), np.float32)
    for b in range(blocks.shape[1]):
        prev = np.float32(0.5) * prev + blocks[:, b]
        feats[:, b] = prev
    feats = feats[:, SHAPE.warmup_blocks :]
    h = np.zeros((n, 4), np.float32)
    scores = np.zeros((n, feats.shape[1], 4), np.float32)
    for t in range(feats.shape[1]):
        h = np.float32(0.9) * h + np.float32(0.01) * (feats[:, t] @ W.T)
        scores[:, t] = h
    return feats, scores


@pytest.fixture(scope="module", params=[
    pytest.param((tc.values[0], a), marks=tc.marks, id=f"{tc.id}-{a}")
    for tc in toolchain_params() for a in FLOAT_ABIS])
def funcs_image(request, tmp_path_factory):
    name, abi = request.param
    d = tmp_path_factory.mktemp(f"funcs_{name}_{abi}")
    (d / "funcs.c").write_text(FUNCS_C)
    elf = build_image([d / "funcs.c"], d, abi, find_toolchain(name), harness=False,
                      keep=["tk_math", "tk_deep", "tk_loop"])
    return abi, elf


def test_small_function_runs_with_right_result(funcs_image):
    _, elf = funcs_image
    em = Emulator(elf)
    r = em.call("tk_math", 8)
    out = em.read_f32(em.addr("tk_out"), 3)
    assert r == 204 + 41  # .data copied, .bss zeroed
    np.testing.assert_allclose(out, [204.0, 0.5, np.sqrt(204.0)], rtol=1e-6)
    # memory persists between calls, as on a device
    em.write_f32(em.addr("tk_in"), np.arange(8, dtype=np.float32))
    assert em.call("tk_math", 8) == 140 + 41


def test_block_count_equals_per_instruction_count(funcs_image):
    """Without IT blocks the cheap block-hook count equals a per-instruction code hook."""
    from unicorn import UC_HOOK_CODE

    _, elf = funcs_image
    em = Emulator(elf)
    n = [0]
    h = em.uc.hook_add(UC_HOOK_CODE, lambda uc, a, s, u: n.__setitem__(0, n[0] + 1))
    em.call("tk_loop", 100)
    em.uc.hook_del(h)
    _, counts = em.call("tk_loop", 100, count=["tk_loop"])
    assert counts.per_call["tk_loop"] == [n[0]]
    assert n[0] > 300  # ~4+ instructions per iteration


def test_stack_measurement_sees_deep_function(funcs_image):
    _, elf = funcs_image
    em = Emulator(elf)
    em.call("tk_math", 8)
    shallow = em.stack_used()
    assert em.call("tk_deep", 2500) == 2499 % 256
    deep = em.stack_used()
    assert shallow < 200
    assert 3000 <= deep < 3000 + 200  # the whole 3000-byte array is reserved


def test_hard_float_uses_fpu_soft_calls_helpers(funcs_image):
    abi, elf = funcs_image
    em = Emulator(elf)
    helpers = [n for n in em.symbols if n.startswith("__aeabi_f") or n.startswith("__aeabi_fmul")]
    assert bool(helpers) == (abi == "soft")


def test_counter_names_the_soft_float_helpers_a_call_entered(funcs_image):
    """`CallCounts.entered`: tk_math's float maths enters `__aeabi_fmul`/`__aeabi_fdiv` etc.
    in soft float and no helper in hard/softfp; tk_loop (integers only) none in any ABI."""
    from tinykws.device.emulator import soft_float_calls

    abi, elf = funcs_image
    em = Emulator(elf)
    _, counts = em.call("tk_math", 8, count=["tk_math"])
    assert "tk_math" in counts.entered["tk_math"]
    helpers = soft_float_calls(counts.entered["tk_math"])
    if abi == "soft":
        assert {"__aeabi_fmul", "__aeabi_fdiv"} <= set(helpers), helpers
    else:
        assert helpers == []
    _, counts = em.call("tk_loop", 100, count=["tk_loop"])
    assert soft_float_calls(set().union(*counts.entered.values())) == []


def test_soft_float_helper_names():
    from tinykws.device.emulator import soft_float_calls

    names = ["__aeabi_fadd", "__aeabi_i2f", "__aeabi_ul2f", "__aeabi_f2iz", "__aeabi_dmul",
             "__aeabi_idiv", "__aeabi_uidivmod", "__aeabi_lmul", "__aeabi_llsr", "__aeabi_memcpy",
             "mfcc_FilterInt16", "__addsf3"]
    assert soft_float_calls(names) == ["__aeabi_dmul", "__aeabi_f2iz", "__aeabi_fadd",
                                       "__aeabi_i2f", "__aeabi_ul2f"]


def test_runaway_and_missing_symbol_are_clear_errors(funcs_image, monkeypatch):
    _, elf = funcs_image
    em = Emulator(elf)
    with pytest.raises(DeviceError, match="not found"):
        em.call("no_such_function")
    # the runaway guard: a call that does not return within the instruction budget
    monkeypatch.setattr("tinykws.device.emulator.MAX_INSTRUCTIONS_PER_CALL", 50)
    with pytest.raises(DeviceError, match="tk_loop did not return"):
        em.call("tk_loop", 100)  # > 300 instructions


def test_ctrl_c_during_a_counted_call_stops_it(funcs_image):
    """Ctrl-C while the emulator runs: Python handles the signal at the first bytecode it
    runs, the entry of unicorn's hook wrapper, outside the wrapper's own try, so ctypes
    printed 'Exception ignored' with a traceback and dropped it; `verify` went on to PASS.
    Now the call stops and raises KeyboardInterrupt, and the emulator stays usable."""
    import os
    import signal
    import threading
    import time

    _, elf = funcs_image
    em = Emulator(elf)
    # Python's own handler, as in a terminal, whatever started this test (a shell's `cmd &`
    # starts it with SIGINT ignored, and then no Ctrl-C would arrive)
    launcher = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # a Ctrl-C, mid-call
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            em.call("tk_loop", 5_000_000, count=["tk_loop"])  # seconds of block hooks
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, launcher)
    assert time.perf_counter() - t0 < 30  # stopped, not run to the end
    _, counts = em.call("tk_loop", 100, count=["tk_loop"])
    assert counts.per_call["tk_loop"][0] > 300


def test_thumb_instruction_decoder():
    # movs r0, #1 (16-bit) ; bl (32-bit: f000 f800) ; vadd.f32 (32-bit: ee30 0a00) ; bx lr
    code = bytes.fromhex("0120" "00f000f8" "30ee000a" "7047")
    assert count_thumb_instructions(code, 0, len(code)) == 4
    assert count_thumb_instructions(code, 2, 4) == 1


@pytest.fixture(scope="module", params=FLOAT_ABIS)
def mock_device(request, tmp_path_factory):
    abi = request.param
    d = tmp_path_factory.mktemp(f"mock_{abi}")
    (d / "mock_kws.c").write_text(MOCK_KWS_C)
    elf = build_image([d / "mock_kws.c"], d, abi, find_toolchain("zig"))
    return KWSDevice(elf, SHAPE)


def clips(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"clip{i}", rng.integers(-3000, 3000, 16000).astype(np.int16)) for i in range(n)]


def test_verify_passes_a_correct_device(mock_device):
    parity, counts = verify_device(mock_device, clips(), mock_reference, count_clips=2,
                                   progress=False)
    assert parity["ok"], parity["first_mismatch"]
    assert parity["n_frames"] == 4 * 98 and parity["argmax_agreement"] == 1.0
    assert parity["max_abs_diff"] < 1e-4
    assert parity["counted_clips"] == 2
    assert len(counts.per_call["mfcc_Filter"]) == 2 * 100
    assert len(counts.per_call["completemodel_Predict"]) == 2 * 98
    model_costs = counts.per_call["completemodel_Predict"]
    if "__aeabi_fmul" in mock_device.em.symbols:  # soft float: cost depends on the operands
        assert max(model_costs) < 1.2 * min(model_costs)
    else:  # fixed-cost FPU loops: every call costs the same
        assert len(set(model_costs)) == 1
    assert mock_device.peak_stack(counts) < 256


def test_verify_reports_first_wrong_frame(mock_device):
    def wrong(audio):
        f, s = mock_reference(audio)
        s[2, 57, 3] += 0.01
        s[3, 10, 0] += 0.01
        return f, s

    parity, _ = verify_device(mock_device, clips(), wrong, count_clips=0, progress=False)
    assert not parity["ok"]
    m = parity["first_mismatch"]
    assert (m["clip"], m["frame"], m["class_index"]) == ("clip2", 57, 3)
    assert m["abs_diff"] == pytest.approx(0.01, abs=1e-4)
    assert m["feature_max_diff_at_frame"] < 1e-4  # the featurizer agreed: a model fault


def test_clip_with_partial_block_is_rejected(mock_device):
    with pytest.raises(DeviceError, match="whole 160-sample blocks"):
        mock_device.run_clip(np.zeros(1000, np.float32))


def test_mac_counts_by_hand():
    from tinykws.device import featurizer_macs, model_macs
    from tinykws.features import FeatureParams
    from tinykws.models import ModelConfig

    f = featurizer_macs(FeatureParams())
    # 256-point complex FFT: 128 butterflies x 8 stages x 4 + split 128 x 4
    assert f["fft"] == 4096 + 512
    assert f["power"] == 514 and f["preemphasis"] == 160 and f["window"] == 0
    assert 32 * 2 < f["mel"] < 257 * 2  # each bin feeds at most two triangles
    assert f["total"] == sum(v for k, v in f.items() if k != "total")
    m = model_macs(ModelConfig("fastgrnn", 32, 128, 2, 12))
    assert m["layer0"] == 32 * 128 + 128 * 128 + 3 * 128
    assert m["layer1"] == 128 * 128 + 128 * 128 + 3 * 128
    assert m["fc"] == 128 * 12 and m["total"] == 32 + m["layer0"] + m["layer1"] + 1536 + 12
    low = model_macs(ModelConfig("fastgrnn", 32, 64, 1, 12, wrank=8, urank=16))
    assert low["layer0"] == 8 * (32 + 64) + 16 * 2 * 64 + 3 * 64
    gru = model_macs(ModelConfig("gru", 32, 16, 1, 4))
    assert gru["layer0"] == 3 * 16 * 32 + 3 * 16 * 16 + 3 * 16


def test_verify_user_errors_are_one_line(tmp_path):
    from tinykws.device import VerifyConfig, verify

    with pytest.raises(DeviceError, match="run `tinykws compile"):
        verify(tmp_path)
    (tmp_path / "featurizer.S").write_text("")
    (tmp_path / "model.S").write_text("")
    with pytest.raises(DeviceError, match="no train/best.pt"):
        verify(tmp_path, VerifyConfig(run_dir=tmp_path))


def test_harness_rejects_another_mailbox_magic(mock_device, monkeypatch):
    """A host writing another layout's magic: the harness touches nothing and says so."""
    from tinykws.device import layout

    monkeypatch.setattr(layout, "MAILBOX_MAGIC", layout.MAILBOX_MAGIC ^ 1)
    with pytest.raises(DeviceError, match="rejected the mailbox magic"):
        mock_device.run_clip(np.ones(800, np.float32))
    mailbox = mock_device.em.addr("tkws_mailbox")
    status = mock_device.em.read_u32(mailbox + layout.mailbox_offset("status"))[0]
    assert status == layout.MAILBOX_STATUS["BAD_MAGIC"]
    assert mock_device.em.read_u32(mailbox + layout.mailbox_offset("frames_done"))[0] == 0
    monkeypatch.undo()  # the right magic again: the same device runs normally
    assert mock_device.run_clip(np.ones(800, np.float32)).scores.shape == (3, 4)


def test_integer_loop_needs_an_int8_build(mock_device):
    """A float image has no integer entry points: `run_clip(integer=True)` says so, and the
    harness's integer loop, called anyway, reports NO_INTEGER and runs nothing."""
    from tinykws.device import layout
    from tinykws.device.harness import check_status, mailbox_fields

    assert not mock_device.has_integer
    with pytest.raises(DeviceError, match="not an int8 build"):
        mock_device.run_clip(np.ones(800, np.int16), integer=True)
    em = mock_device.em
    mailbox = em.addr("tkws_mailbox")
    em.write(mailbox, layout.pack_mailbox(**mailbox_fields(SHAPE, 5, True, integer=True)))
    em.call("tkws_harness_run_q")
    status = em.read_u32(mailbox + layout.mailbox_offset("status"))[0]
    assert status == layout.MAILBOX_STATUS["NO_INTEGER"]
    assert em.read_u32(mailbox + layout.mailbox_offset("frames_done"))[0] == 0
    with pytest.raises(DeviceError, match="not an int8 build"):
        check_status(status, em.elf)


def test_integer_mailbox_packs_int16_two_to_a_word():
    from tinykws.device.harness import mailbox_fields, mailbox_words

    f = mailbox_fields(SHAPE, 5, True, detect=True, integer=True)
    assert f["features_at"] == 5 * SHAPE.block_len // 2
    assert f["scores_at"] == f["features_at"] + (5 * SHAPE.n_features + 1) // 2
    assert f["detections_at"] == f["scores_at"] + (5 * SHAPE.n_scores + 1) // 2
    assert mailbox_words(f) == f["detections_at"] + 2 * 5
    g = mailbox_fields(SHAPE, 5, True, detect=False)
    assert mailbox_words(g) == 5 * (SHAPE.block_len + SHAPE.n_features + SHAPE.n_scores)
