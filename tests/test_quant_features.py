"""The integer featurizer: the Python reference (tinykws.quant.features) and the generated C
agree bit for bit (host cc here; the emulated Cortex-M4 in test_quant_features_device.py),
the features stay within a stated tolerance of the float ones on real clips, and nothing
overflows int32 on full-scale input.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codegen_host import PEDANTIC, build_shared
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.featurizer import emit_int_featurizer, int_featurizer_tables
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams, frames_from_stream
from tinykws.quant.features import (
    frames_from_stream_q,
    int_tables,
    logmel_q,
    logmel_q_batch,
    pcm16_from_float,
    ring_gain,
    windows_to_logmel_q,
)
from tinykws.quant.formats import FEATURE_SCALE, features_from_q

from realdata import REAL as DEV  # the dev set, or the committed mini set
# Integer vs float features (ln units; one Q7.8 step is 1/256 = 0.0039), measured on 300 dev
# testing clips (docs/benchmarks.md): mean 0.00099, 99.9th percentile 0.0032, max 0.033.
FLOAT_TOL = {"mean": 0.0015, "p999": 0.006, "max": 0.06}
INT32 = 1 << 31


def _build(tmp: Path, params: FeatureParams) -> ctypes.CDLL:
    tmp.mkdir(parents=True, exist_ok=True)
    copy_runtime(tmp)
    for name, text in emit_int_featurizer(params).items():
        (tmp / name).write_text(text)
    lib = build_shared([tmp / "featurizer.c"], tmp / "libqmfcc.so", include_dirs=[tmp],
                       extra=PEDANTIC)  # fmt: skip
    lib.mfcc_Filter.argtypes = [ctypes.c_void_p] * 3
    lib.mfcc_FilterInt16.argtypes = [ctypes.c_void_p] * 3
    lib.mfcc_Init.argtypes = [ctypes.c_void_p]
    lib.mfcc_Step.argtypes = lib.mfcc_StepInt16.argtypes = [ctypes.c_void_p] * 3
    return lib


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("qmfcc"), FeatureParams())


def _stream(lib, x: np.ndarray, params: FeatureParams = FeatureParams(), reset: bool = True):
    """Feed int16 blocks through mfcc_FilterInt16: outputs [n_blocks, n_mels] and valid flags."""
    if reset:
        lib.mfcc_Reset()
    x = np.ascontiguousarray(x, dtype=np.int16)
    n = x.size // params.hop
    out = np.zeros((n, params.n_mels), np.int16)
    valid = []
    for i in range(n):
        blk = np.ascontiguousarray(x[i * params.hop : (i + 1) * params.hop])
        lib.mfcc_FilterInt16(None, blk.ctypes.data, out[i].ctypes.data)
        valid.append(lib.mfcc_IsFrameValid())
    return out, valid


def _stream_float(lib, x: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """The same through the float interface mfcc_Filter."""
    lib.mfcc_Reset()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.size // params.hop
    out = np.zeros((n, params.n_mels), np.float32)
    for i in range(n):
        blk = np.ascontiguousarray(x[i * params.hop : (i + 1) * params.hop])
        lib.mfcc_Filter(None, blk.ctypes.data, out[i].ctypes.data)
    return out


def _dev_clips(k: int) -> list[np.ndarray]:
    """k testing clips (evenly spaced: every class), each padded to 1 s, as int16."""
    test = [p for p in (DEV / "testing_list.txt").read_text().split() if p]
    idx = np.linspace(0, len(test) - 1, k).round().astype(int)
    clips = []
    for i in idx:
        x = sf.read(DEV / test[i], dtype="int16")[0]
        clips.append(np.pad(x, (0, max(0, 16000 - len(x)))))
    return clips


def _noise_recording(seconds: float) -> np.ndarray:
    f = sorted((DEV / "_background_noise_").glob("*.wav"))[0]
    n = int(16000 * seconds)
    return np.resize(sf.read(f, dtype="int16", frames=n)[0], n)  # repeated if shorter (mini set)


# ---------------------------------------------------------------- bit-exact parity


def test_c_matches_python_bit_for_bit_on_real_clips(lib):
    params = FeatureParams()
    w = params.first_block - 1
    clips = _dev_clips(40) + [_noise_recording(5.0)]
    frames = 0
    for x in clips:
        got, valid = _stream(lib, x)
        assert valid == [0] * w + [1] * (len(valid) - w)
        ref = frames_from_stream_q(x)
        np.testing.assert_array_equal(got[w:], ref)
        frames += len(ref)
        # the float interface: int16-valued floats in, exactly Q7.8 / 256 out
        np.testing.assert_array_equal(_stream_float(lib, x.astype(np.float32))[w:],
                                      ref.astype(np.float32) / FEATURE_SCALE)  # fmt: skip
    assert frames == 40 * params.n_frames + 5 * 100 - w


def test_batch_and_clip_paths_agree_with_streaming():
    clips = _dev_clips(3)
    batch = logmel_q_batch(np.stack(clips))
    for x, b in zip(clips, batch):
        np.testing.assert_array_equal(b, frames_from_stream_q(x)[:98])
        np.testing.assert_array_equal(b, logmel_q(x))
    short = clips[0][:9000]  # padded with zeros like logmel
    np.testing.assert_array_equal(logmel_q(short), logmel_q(np.pad(short, (0, 7000))))


def test_warmup_frames_and_reset(lib):
    """Warm-up calls compute over a zero-filled ring; a reset reproduces the stream."""
    params = FeatureParams()
    x = np.random.default_rng(0).normal(0, 2000, 800).clip(-32768, 32767).astype(np.int16)
    first, valid = _stream(lib, x)
    assert valid == [0, 0, 1, 1, 1]
    lead = np.concatenate([np.zeros(480, np.int16), x])  # the zero ring before the first block
    ref = frames_from_stream_q(lead)  # frame j ends at block j + 3 of `lead`
    np.testing.assert_array_equal(first, ref[1:])
    second, valid = _stream(lib, x, reset=False)
    assert valid[0] == 1 and np.abs(second.astype(int) - first).max() > 10
    third, _ = _stream(lib, x)
    np.testing.assert_array_equal(third, first)


@pytest.mark.parametrize(
    "params",
    [
        FeatureParams(window="hamming"),
        FeatureParams(window="hann", preemphasis=0.0),
        FeatureParams(fft_size=1024, window_size=480, hop=128, n_mels=40),  # radix-2 stage
        FeatureParams(fft_size=256, window_size=200, hop=80, n_mels=20, fmax=7000.0),  # radix 2
        FeatureParams(window_size=401, hop=161, fft_size=512),  # odd sizes: pairs straddle
        FeatureParams(window_size=480, hop=160),  # the ring needs a 4th block for x[n-1]
        FeatureParams(log_delta=1e-6),  # a log_delta the integer mel can see
    ],
    ids=["hamming", "hann-nopre", "fft1024", "fft256", "odd", "ring4", "delta"],
)
def test_other_feature_params(tmp_path, params):
    lib = _build(tmp_path, params)
    rng = np.random.default_rng(2)
    n = params.hop * 30
    x = (rng.normal(0, 3000, n) * np.hanning(n)).astype(np.int16)
    x[: params.hop * 8] //= 300  # quiet start: the gain shift moves
    got, valid = _stream(lib, x, params)
    w = params.first_block - 1
    assert valid == [0] * w + [1] * (30 - w)
    ref = frames_from_stream_q(x, params)
    np.testing.assert_array_equal(got[w:], ref)
    diff = np.abs(features_from_q(ref) - frames_from_stream(x, params))
    assert diff.max() <= FLOAT_TOL["max"], diff.max()


@pytest.mark.parametrize("fft_size, words", [(512, 129), (1024, 512), (256, 128)])
def test_split_twiddle_table_holds_only_what_the_c_reads(fft_size, words):
    """Radix 4 only (512): the split step reads W_N^k for k <= M/2, so the table stops
    there; with a radix-2 last stage (1024, 256) that stage reads W_N^2k, 2k < M, too.
    The parity tests above prove the C reads nothing past either end."""
    params = FeatureParams(fft_size=fft_size, window_size=min(400, fft_size), hop=160)
    found = re.search(r"tkws_qfft_split_tw\[(\d+)\] = \{(.*?)\};", int_featurizer_tables(params), re.S)
    values = [int(v) for v in found.group(2).replace(",", " ").split()]
    assert int(found.group(1)) == len(values) == words
    k = np.arange(words)  # W_N^k = e^(-2 pi i k / N) in Q14, each part as 16 bits, re low
    re_, im = (np.round(f(2 * np.pi * k / fft_size) * 2**14).astype(np.int64) for f in (np.cos, np.sin))
    assert values == [(int(a) & 0xFFFF) | ((-int(b) & 0xFFFF) << 16) for a, b in zip(re_, im)]


def test_explicit_states_are_independent(lib):
    """The explicit-state API of the float build, in the integer build (what
    docs/examples/kws_loop.c calls): two streams on two `mfcc_state`s that start as garbage,
    interleaved block by block (one through mfcc_StepInt16, one through the float mfcc_Step),
    give exactly what each gives alone through mfcc_FilterInt16 on the default state, with
    the same valid flags; mfcc_Init restarts a stream."""
    p = FeatureParams()
    n = 30
    a, b = (x[: n * p.hop] for x in _dev_clips(2))
    alone = [_stream(lib, x) for x in (a, b)]
    states = [np.full(16384, 0xA5, np.uint8) for _ in range(2)]  # larger than the struct
    for st in states:
        lib.mfcc_Init(st.ctypes.data)
    q = np.zeros((n, p.n_mels), np.int16)
    f = np.zeros((n, p.n_mels), np.float32)
    valid: list[list[int]] = [[], []]
    for i in range(n):
        blk = slice(i * p.hop, (i + 1) * p.hop)
        pcm = np.ascontiguousarray(a[blk])
        valid[0].append(lib.mfcc_StepInt16(states[0].ctypes.data, pcm.ctypes.data, q[i].ctypes.data))
        flt = np.ascontiguousarray(b[blk], np.float32)
        valid[1].append(lib.mfcc_Step(states[1].ctypes.data, flt.ctypes.data, f[i].ctypes.data))
    np.testing.assert_array_equal(q, alone[0][0])
    np.testing.assert_array_equal(f, alone[1][0].astype(np.float32) / FEATURE_SCALE)
    assert valid == [alone[0][1], alone[1][1]] and valid[0][:3] == [0, 0, 1]
    lib.mfcc_Init(states[0].ctypes.data)  # restart stream 0: the same frames again
    again = np.zeros_like(q)
    for i in range(n):
        pcm = np.ascontiguousarray(a[i * p.hop : (i + 1) * p.hop])
        lib.mfcc_StepInt16(states[0].ctypes.data, pcm.ctypes.data, again[i].ctypes.data)
    np.testing.assert_array_equal(again, q)


# ---------------------------------------------------------------- against the float features


def test_within_tolerance_of_float_features_on_real_clips():
    diffs = []
    for x in _dev_clips(120) + [_noise_recording(10.0)]:
        diffs.append(np.abs(features_from_q(frames_from_stream_q(x)) - frames_from_stream(x)).ravel())
    d = np.concatenate(diffs)
    stats = {"mean": d.mean(), "p999": np.percentile(d, 99.9), "max": d.max()}
    for k, v in stats.items():
        assert v <= FLOAT_TOL[k], f"{k} |int - float| = {v:.4g} > {FLOAT_TOL[k]} ({stats})"


def test_silence_and_one_lsb_signals(lib):
    params = FeatureParams()
    t = int_tables(params)
    silent, _ = _stream(lib, np.zeros(640, np.int16))
    assert (silent == t.log_floor).all() and t.log_floor == round(np.log(params.log_delta) * 256)
    tiny = np.tile(np.array([1, -1, 0, 1], np.int16), 400)  # +-1 LSB: the largest gain shift
    got, _ = _stream(lib, tiny)
    ref = frames_from_stream_q(tiny)
    np.testing.assert_array_equal(got[2:], ref)
    assert np.abs(features_from_q(ref) - frames_from_stream(tiny)).max() <= FLOAT_TOL["max"]


# ---------------------------------------------------------------- overflow safety


def _full_scale_signals() -> dict[str, np.ndarray]:
    n = 160 * 12
    i = np.arange(n)
    rng = np.random.default_rng(7)
    sig = {f"square{p}": np.where((i // (p // 2 or 1)) % 2 == 0, 32767, -32768) for p in (2, 4, 6, 16, 64, 400)}
    sig["alternating"] = np.where(i % 2 == 0, 32767, -32768)  # the Nyquist bin at full scale
    sig["dc_max"] = np.full(n, 32767)
    sig["dc_min"] = np.full(n, -32768)
    sig["binary_noise"] = rng.choice([-32768, 32767], n)
    sig["uniform_noise"] = rng.integers(-32768, 32768, n)
    sig["steps"] = np.repeat(rng.choice([-32768, 32767], n // 80), 80)
    k = np.arange(n)
    sig["chirp"] = np.round(32767 * np.sign(np.sin(np.pi * k * k / n)))
    for j in (0, 1, 2, 5, 17):  # one FFT bin's worth of pre-emphasised square wave
        sig[f"bin{j}"] = np.where(np.cos(2 * np.pi * j * k / 512) >= 0, 32767, -32768)
    return {k: np.asarray(v).astype(np.int16) for k, v in sig.items()}


@pytest.mark.parametrize("params", [FeatureParams(), FeatureParams(window="hann"),
                                    FeatureParams(fft_size=1024, window_size=480, hop=128)],
                         ids=["seed", "hann", "fft1024"])  # fmt: skip
def test_full_scale_input_cannot_overflow(tmp_path, params):
    """Every int32 quantity of the C stays below 2^31 (traced in the int64 reference) on
    full-scale squares and noise, and the C, which wraps on overflow, matches the reference."""
    lib = _build(tmp_path, params)
    trace: dict[str, int] = {}
    for name, x in _full_scale_signals().items():
        x = x[: (x.size // params.hop) * params.hop]
        got, _ = _stream(lib, x, params)
        ref = frames_from_stream_q(x, params)
        np.testing.assert_array_equal(got[params.first_block - 1 :], ref, err_msg=name)
        y = np.lib.stride_tricks.sliding_window_view(
            _preemph(x, params), params.window_size)[params.frame_offset :: params.hop]
        g = ring_gain(x, params)[params.first_block - 1 :][: len(y)]
        windows_to_logmel_q(y, g, params, trace=trace)
        # bands within 60 dB of the frame's loudest (the 32-bit power keeps ~96 dB below the
        # loudest bin; a Hann-windowed square's far bands are float32 round-off, not signal)
        fl = frames_from_stream(x, params)
        near = fl >= fl.max(axis=1, keepdims=True) - 6 * np.log(10)
        diff = np.abs(features_from_q(ref) - fl)[near].max()
        assert diff <= FLOAT_TOL["max"], f"{name}: |int - float| {diff}"
    for step, peak in trace.items():
        limit = 1 << 63 if step in ("power", "mel") else INT32
        assert peak < 0.8 * limit, f"{step}: {peak} is within 20 % of the limit {limit}"
    assert trace["input"] > 2**29 * 0.7  # the test did drive the FFT at full scale


def _preemph(x: np.ndarray, params: FeatureParams) -> np.ndarray:
    from tinykws.quant.features import _preemphasised

    return _preemphasised(x, params)


# ---------------------------------------------------------------- conversions, errors


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """The runtime compiled on its own: tkws_pcm16_from_float and tkws_float_from_q8 exported."""
    tmp = tmp_path_factory.mktemp("qrt")
    copy_runtime(tmp)
    lib = build_shared([tmp / "tkws_qlogmel.c"], tmp / "libqrt.so", include_dirs=[tmp])
    lib.tkws_pcm16_from_float.argtypes = [ctypes.c_float]
    lib.tkws_pcm16_from_float.restype = ctypes.c_int16
    lib.tkws_float_from_q8.argtypes = [ctypes.c_int16]
    lib.tkws_float_from_q8.restype = ctypes.c_float
    return lib


def test_float_to_pcm16_conversion_matches_python(runtime):
    f32 = np.float32
    edge = [0.0, -0.0, 0.49999997, 0.5, -0.5, 1.5, 2.5, -2.5, 32766.5, 32767.0, 32767.49, 32767.5,
            32768.0, -32768.0, -32768.4, -32768.5, -40000.0, 1e30, -1e30, np.inf, -np.inf, np.nan,
            1e-40, 123.25, -123.75]  # fmt: skip
    rng = np.random.default_rng(3)
    vals = np.concatenate([np.array(edge, f32), rng.uniform(-40000, 40000, 3000).astype(f32),
                           np.round(rng.uniform(-33000, 33000, 1000)).astype(f32) + f32(0.5)])
    want = pcm16_from_float(vals)
    got = np.array([runtime.tkws_pcm16_from_float(float(v)) for v in vals], np.int16)
    np.testing.assert_array_equal(got, want)
    assert want[list(np.array(edge, f32)).index(f32(0.5))] == 1 and pcm16_from_float([-2.5])[0] == -3


def test_q8_to_float_is_exact(runtime):
    q = np.arange(-32768, 32768, 7).astype(np.int16)
    got = np.array([runtime.tkws_float_from_q8(int(v)) for v in q], np.float32)
    np.testing.assert_array_equal(got, features_from_q(q))


def test_bad_inputs_and_params_are_clear_errors():
    with pytest.raises(TinyKWSError, match="int16"):
        logmel_q(np.zeros(16000, np.float32))
    with pytest.raises(TinyKWSError, match="power spectrum"):
        int_tables(FeatureParams(power_spec=False))
    with pytest.raises(TinyKWSError, match="preemphasis"):
        int_tables(FeatureParams(preemphasis=1.5))
    with pytest.raises(TinyKWSError, match="1-D"):
        frames_from_stream_q(np.zeros((2, 160), np.int16))
    assert frames_from_stream_q(np.zeros(100, np.int16)).shape == (0, 32)
