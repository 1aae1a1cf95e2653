"""The log-mel definition (tinykws.features) against hand-computed values, independent
implementations (a scalar loop transcribed from ELL, librosa, python_speech_features) and
properties; and batch == streaming == frames_from_stream on real clips.

Tolerances: our path is float32; references are float64. In the log domain we allow
1e-3 absolute (the C-parity budget); observed worst on real clips is ~1.5e-4, from frames
of near-digital silence. Streaming vs batch differ only in BLAS summation order: 1e-5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinykws.errors import TinyKWSError
from tinykws.features import (
    FeatureParams,
    StreamingFeaturizer,
    frames_from_stream,
    logmel,
    logmel_batch,
    mel_bins,
    mel_filterbank,
)

from realdata import REAL as DEV  # the dev set, or the committed mini set
P = FeatureParams()
LN_DELTA = math.log(2.220446049250313e-16)  # -36.04365338911715: a silent band
LOG_ATOL = 1e-3  # float32 vs float64 reference, log domain
STREAM_ATOL = 1e-5  # same float32 maths, different BLAS summation order


def real_clips(n: int = 12) -> list[tuple[str, np.ndarray]]:
    """n real 1-s clips (int16, padded/cropped to 16000) spread over the dev set's words."""
    files = sorted(DEV.glob("*/*_nohash_*.wav"))
    out = []
    for f in files[:: max(1, len(files) // n)][:n]:
        x, _ = sf.read(f, dtype="int16")
        out.append((f"{f.parent.name}/{f.name}", np.pad(x, (0, max(0, 16000 - len(x))))[:16000]))
    return out


def stream(x: np.ndarray, params: FeatureParams = P) -> np.ndarray:
    """Feed a StreamingFeaturizer block by block; stack the frames it yields."""
    s = StreamingFeaturizer(params)
    frames = [s.step(b) for b in x[: len(x) // params.hop * params.hop].reshape(-1, params.hop)]
    assert all(f is None for f in frames[: params.first_block - 1])
    got = [f for f in frames if f is not None]
    return np.stack(got) if got else np.zeros((0, params.n_mels), np.float32)


# ---------------------------------------------------------------- parameters


def test_defaults_are_the_seed_flags():
    assert (P.sample_rate, P.window_size, P.hop, P.fft_size, P.n_mels) == (16000, 400, 160, 512, 32)
    assert (P.preemphasis, P.window, P.power_spec, P.log_delta) == (0.97, "rectangular", True, 2.220446049250313e-16)
    assert (P.n_bins, P.first_block, P.frame_offset, P.n_frames) == (257, 3, 80, 98)


def test_params_roundtrip_and_errors():
    q = FeatureParams(window="hann", n_mels=40)
    assert FeatureParams.from_json(q.to_json()) == q
    assert FeatureParams.from_dict(P.to_dict()) == P
    with pytest.raises(TinyKWSError, match="window"):
        FeatureParams(window="blackman")
    with pytest.raises(TinyKWSError, match="fft_size"):
        FeatureParams(window_size=600)
    with pytest.raises(TinyKWSError, match="fmax"):
        FeatureParams(fmax=9000)
    with pytest.raises(TinyKWSError, match="unknown feature parameters"):
        FeatureParams.from_dict({**P.to_dict(), "dct": True})
    for bad in ({"hop": 0}, {"hop": -160}):  # a clean error, not a ZeroDivisionError
        with pytest.raises(TinyKWSError, match="hop must be positive"):
            FeatureParams(**bad)


# ---------------------------------------------------------------- filterbank


def test_mel_bins_hand_computed():
    # mel(8000) = 1127 ln(1 + 8000/700) = 2840.02; 34 points, step 86.06 mel.
    # f_1 = 700 (exp(86.06/1127) - 1) = 55.55 Hz -> floor(55.55 * 513 / 16000) = floor(1.78) = 1
    # f_2 = 115.5 Hz -> floor(3.70) = 3;  f_33 = 8000 Hz -> floor(256.5) = 256
    b = mel_bins(P)
    assert b[:4].tolist() == [0, 1, 3, 5] and b[-1] == 256 and len(b) == 34
    # the same points without the mel scale's constant: f_i = 700 ((1 + 8000/700)^(i/33) - 1)
    f = 700 * ((1 + 8000 / 700) ** (np.arange(34) / 33) - 1)
    assert b.tolist() == np.floor(f * 513 / 16000 + 1e-9).astype(int).tolist()


def ell_filterbank_loop(params: FeatureParams) -> np.ndarray:
    """ELL's TriangleFilter::operator[] and FilterFrequencyMagnitudes, one scalar at a time."""
    lo_mel, hi_mel = 0.0, 1127 * math.log(1 + params.fmax / 700)
    inc = (hi_mel - lo_mel) / (params.n_mels + 1)
    bins = [int(700 * (math.exp((i * inc) / 1127) - 1) * (params.fft_size + 1) / params.sample_rate)
            for i in range(params.n_mels + 2)]
    w = np.zeros((params.fft_size // 2 + 1, params.n_mels))
    for j in range(params.n_mels):
        low, center, high = bins[j], bins[j + 1], bins[j + 2]
        for k in range(low, high):
            if k < center:
                w[k, j] = (k - low + 0.5) / (center - low)
            else:
                w[k, j] = (high - k - 0.5) / (high - center)
    return w


def test_filterbank_matches_ell_loop_and_corner_values():
    fb = mel_filterbank(P)
    assert fb.shape == (257, 32)
    np.testing.assert_allclose(fb, ell_filterbank_loop(P), rtol=0, atol=1e-15)
    # bins 0, 1, 3, 5: filter 0 rises over k=0 (0.5/1), falls over k=1,2 ((3-k-0.5)/2)
    assert fb[:4, 0].tolist() == [0.5, 0.75, 0.25, 0.0]
    assert fb[:6, 1].tolist() == [0.0, 0.25, 0.75, 0.75, 0.25, 0.0]
    # last filter: bins 216, 235, 256; the Nyquist bin 256 is in no filter
    assert fb[255, 31] == pytest.approx(0.5 / 21) and not fb[256].any()
    assert not fb.flags.writeable


def test_filterbank_is_python_speech_features_plus_ells_half_bin():
    """psf uses the same bins (floor((nfft+1) f / sr)) but weights (k - b_j)/(...):
    ELL's differ by exactly +0.5/(rise width) on the rise and -0.5/(fall width) on the fall."""
    import python_speech_features as psf  # the test extra: a required reference, never skipped
    ref = psf.get_filterbanks(nfilt=32, nfft=512, samplerate=16000, lowfreq=0, highfreq=8000).T
    b = mel_bins(P)
    offset = np.zeros_like(ref)
    for j in range(32):
        offset[b[j] : b[j + 1], j] = 0.5 / (b[j + 1] - b[j])
        offset[b[j + 1] : b[j + 2], j] = -0.5 / (b[j + 2] - b[j + 1])
    np.testing.assert_allclose(mel_filterbank(P), ref + offset, rtol=0, atol=1e-12)


def test_filterbank_other_sizes_match_loop():
    q = FeatureParams(n_mels=40, fft_size=1024, window_size=640, hop=320, clip_samples=32000)
    np.testing.assert_allclose(mel_filterbank(q), ell_filterbank_loop(q), atol=1e-15)


# ---------------------------------------------------------------- hand-computed inputs


def test_silence_is_ln_delta():
    out = logmel(np.zeros(16000, np.int16))
    assert out.shape == (98, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, LN_DELTA, rtol=1e-7)


def test_dc_input_closed_form():
    """A constant c: after pre-emphasis every window holds a = 0.03 c (frame 0 starts at 80 >
    0, so the first sample's y[0] = c is outside every window). The 400-of-512 rectangular
    window gives the Dirichlet kernel |X[k]| = a |sin(pi k 400/512) / sin(pi k/512)|."""
    c = 1000.0
    a = c - 0.97 * c
    k = np.arange(1, 257)
    mag = np.concatenate([[400 * a], a * np.abs(np.sin(np.pi * k * 400 / 512) / np.sin(np.pi * k / 512))])
    want = np.log((mag**2 / 512) @ mel_filterbank(P) + P.log_delta)
    out = logmel(np.full(16000, c))
    np.testing.assert_allclose(out, np.broadcast_to(want, out.shape), atol=LOG_ATOL)
    # filter 0 at DC: 0.5 * (400 a)^2 / 512 is most of it
    assert out[0, 0] > math.log(0.5 * (400 * a) ** 2 / 512)


def test_impulse_closed_form():
    """An impulse A at n0 becomes (A, -0.97 A) after pre-emphasis; a window holding both has
    |X[k]|^2 = A^2 (1 + 0.97^2 - 2 0.97 cos(2 pi k / 512)) wherever it sits; a window holding
    only the first has a flat |X|^2 = A^2; windows without it are silent."""
    amp, n0 = 1000.0, 8159
    x = np.zeros(16000)
    x[n0] = amp
    out = logmel(x)
    w = 2 * np.pi * np.arange(257) / 512
    both = np.log(amp**2 * (1 + 0.97**2 - 2 * 0.97 * np.cos(w)) / 512 @ mel_filterbank(P) + P.log_delta)
    first = np.log(np.full(257, amp**2 / 512) @ mel_filterbank(P) + P.log_delta)
    # frame j covers [80 + 160 j, 480 + 160 j): j=48 ends at 8160 (holds n0 only), 49..50 hold both
    np.testing.assert_allclose(out[48], first, atol=LOG_ATOL)
    np.testing.assert_allclose(out[49], both, atol=LOG_ATOL)
    np.testing.assert_allclose(out[50], both, atol=LOG_ATOL)
    silent = np.r_[0:48, 51:98]
    np.testing.assert_allclose(out[silent], LN_DELTA, rtol=1e-7)


def test_framing_frame_j_covers_80_plus_160j():
    """Noise only inside [80 + 160 j, 480 + 160 j) lights up frame j and its overlapping
    neighbours, never a frame that does not overlap it."""
    rng = np.random.default_rng(0)
    for j in (0, 37, 97):
        x = np.zeros(16000)
        x[80 + 160 * j + 1 : 480 + 160 * j] = rng.normal(0, 1000, 399)  # +1: pre-emphasis spill-in
        lit = np.flatnonzero(logmel(x).max(axis=1) > LN_DELTA + 1)
        assert j in lit
        assert set(lit) <= set(range(j - 2, j + 3))  # windows are 2.5 hops long


# ---------------------------------------------------------------- reference libraries


def reference_logmel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(librosa, python_speech_features) log-mel of one clip, float64, our filterbank.

    Pre-emphasis by librosa with x[-1] = 0 (zi=0). librosa centres the 400-sample boxcar in a
    512-sample frame (56 zeros each side): starting at y[24] puts frame j at
    [80 + 160 j, 480 + 160 j). python_speech_features frames y[80:] directly.
    """
    import librosa  # the test extra: required references, never skipped
    from python_speech_features import sigproc

    y = librosa.effects.preemphasis(x.astype(np.float64), coef=0.97, zi=0.0)
    s = librosa.stft(np.pad(y[24:], (0, 56)), n_fft=512, hop_length=160, win_length=400,
                     window="boxcar", center=False)
    p_librosa = (np.abs(s) ** 2 / 512).T  # [frames, bins]
    p_psf = sigproc.powspec(sigproc.framesig(y[80:], 400, 160, winfunc=lambda n: np.ones(n)), 512)
    fb = mel_filterbank(P)
    return np.log(p_librosa @ fb + P.log_delta), np.log(p_psf @ fb + P.log_delta)


def test_real_clips_match_librosa_and_python_speech_features():
    for name, x in real_clips(10):
        ours = logmel(x)
        ref_librosa, ref_psf = reference_logmel(x)
        assert ref_librosa.shape == ours.shape == ref_psf.shape == (98, 32), name
        np.testing.assert_allclose(ours, ref_librosa, atol=LOG_ATOL, err_msg=name)
        np.testing.assert_allclose(ours, ref_psf, atol=LOG_ATOL, err_msg=name)


@pytest.mark.parametrize("window", ["hamming", "hann"])
def test_windows_match_numpy_reference(window):
    q = FeatureParams(window=window)
    x = real_clips(1)[0][1].astype(np.float64)
    y = np.concatenate([[x[0]], x[1:] - 0.97 * x[:-1]])
    w = np.hamming(400) if window == "hamming" else np.hanning(400)
    frames = np.stack([y[80 + 160 * j : 480 + 160 * j] * w for j in range(98)])
    ref = np.log(np.abs(np.fft.rfft(frames, 512)) ** 2 / 512 @ mel_filterbank(q) + q.log_delta)
    np.testing.assert_allclose(logmel(x, q), ref, atol=LOG_ATOL)


def numpy_reference(x: np.ndarray, q: FeatureParams) -> np.ndarray:
    """The definition in float64 with plain numpy, one frame at a time, any FeatureParams."""
    x = np.pad(np.asarray(x, np.float64), (0, max(0, q.clip_samples - len(x))))[: q.clip_samples]
    y = np.concatenate([[x[0]], x[1:] - q.preemphasis * x[:-1]])
    w = {"rectangular": np.ones, "hamming": np.hamming, "hann": np.hanning}[q.window](q.window_size)
    out = []
    for j in range(q.n_frames):
        end = (q.first_block + j) * q.hop  # the window ends with the block just fed
        spec = np.abs(np.fft.rfft(y[end - q.window_size : end] * w, q.fft_size))
        p = spec**2 / q.fft_size if q.power_spec else spec
        out.append(np.log(p @ mel_filterbank(q) + q.log_delta))
    return np.array(out)


def test_other_params_match_numpy_reference():
    """Sizes that change the framing (window not a multiple of hop) and reuse of scratch
    buffers across parameter sets: each call matches the plain definition."""
    x = real_clips(1)[0][1]
    for q in (
        FeatureParams(window_size=256),
        FeatureParams(),
        FeatureParams(window_size=300, hop=128, fft_size=512, n_mels=20, clip_samples=12800),
        FeatureParams(window_size=256, window="hann", preemphasis=0.0),
        FeatureParams(fmin=100, fmax=7000, n_mels=24),
    ):
        want = numpy_reference(x, q)
        assert logmel(x, q).shape == want.shape == (q.n_frames, q.n_mels)
        np.testing.assert_allclose(logmel(x, q), want, atol=LOG_ATOL, err_msg=str(q))
        np.testing.assert_allclose(stream(np.pad(x, (0, max(0, q.clip_samples - 16000)))[: q.clip_samples], q),
                                   want, atol=LOG_ATOL, err_msg=str(q))


def test_magnitude_option():
    q = FeatureParams(power_spec=False)
    x = real_clips(1)[0][1].astype(np.float64)
    y = np.concatenate([[x[0]], x[1:] - 0.97 * x[:-1]])
    frames = np.stack([y[80 + 160 * j : 480 + 160 * j] for j in range(98)])
    ref = np.log(np.abs(np.fft.rfft(frames, 512)) @ mel_filterbank(q) + q.log_delta)
    np.testing.assert_allclose(logmel(x, q), ref, atol=LOG_ATOL)


# ---------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(f=st.floats(300, 7600), amp=st.floats(100, 20000), phase=st.floats(0, 2 * np.pi))
def test_pure_tone_lands_in_its_band(f, amp, phase):
    """The loudest band of a steady tone is one of the two filters covering its FFT bin."""
    t = np.arange(16000) / 16000
    out = logmel(amp * np.sin(2 * np.pi * f * t + phase))
    k = int(round(f * 512 / 16000))
    covering = set(np.flatnonzero(mel_filterbank(P)[k]))
    loudest = set(np.argmax(out[5:-5], axis=1).tolist())
    assert loudest <= covering, (f, k, loudest, covering)


@settings(max_examples=30, deadline=None)
@given(g=st.floats(0.05, 20), seed=st.integers(0, 2**16))
def test_gain_shifts_log_by_2_ln_g(g, seed):
    """Power is quadratic in amplitude: logmel(g x) = logmel(x) + 2 ln g (bands well above delta)."""
    x = np.random.default_rng(seed).normal(0, 1000, 16000)
    np.testing.assert_allclose(logmel(g * x), logmel(x) + 2 * math.log(g), atol=LOG_ATOL)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.int16, st.integers(0, 17000)))
def test_streaming_equals_batch_on_any_input(x):
    """Feeding the padded/cropped clip in 160-sample blocks gives exactly logmel's frames."""
    clip = np.pad(x, (0, max(0, 16000 - len(x))))[:16000]
    np.testing.assert_allclose(stream(clip), logmel(x), atol=STREAM_ATOL, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(x=arrays(np.int16, st.integers(0, 5000)))
def test_frames_from_stream_equals_streaming_any_length(x):
    want = stream(x)
    got = frames_from_stream(x)
    assert got.shape == want.shape == (max(0, len(x) // 160 - 2), 32)
    np.testing.assert_allclose(got, want, atol=STREAM_ATOL, rtol=1e-6)


# ---------------------------------------------------------------- real clips, all paths


def test_real_clips_batch_streaming_logmel_agree():
    clips = real_clips(12)
    batch = logmel_batch(np.stack([x for _, x in clips]))
    assert batch.shape == (12, 98, 32) and batch.dtype == np.float32
    for (name, x), b in zip(clips, batch):
        one = logmel(x)
        np.testing.assert_array_equal(one, b, err_msg=name)  # same code path, same chunking
        np.testing.assert_allclose(stream(x), one, atol=STREAM_ATOL, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(frames_from_stream(x), one, atol=STREAM_ATOL, rtol=1e-6, err_msg=name)


def test_batch_features_do_not_depend_on_batch_size():
    """A clip's features are bit-equal whatever it is batched with (the dataset cache and
    `logmel` must agree exactly). Before the per-clip mel GEMM, OpenBLAS's Haswell/Zen
    kernels (OPENBLAS_CORETYPE=Haswell) gave 1720 differing values here."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((21, 16000)) * 3000).astype(np.int16)
    singles = np.stack([logmel(c) for c in x])
    for n in (1, 2, 3, 7, 8, 9, 21):
        np.testing.assert_array_equal(logmel_batch(x[:n]), singles[:n], err_msg=f"batch of {n}")


def test_frames_from_stream_long_recording_crosses_chunks():
    """9 s of real speech (> one internal chunk of 784 frames) with a partial last block."""
    x = np.concatenate([c for _, c in real_clips(9)] + [np.arange(100, dtype=np.int16)])
    got = frames_from_stream(x)
    assert got.shape == (9 * 100 - 2, 32)
    np.testing.assert_allclose(got, stream(x), atol=STREAM_ATOL, rtol=1e-6)


def test_reset_starts_a_new_clip():
    (_, a), (_, b) = real_clips(2)
    s = StreamingFeaturizer(P)
    for blk in a.reshape(100, 160):
        s.step(blk)
    s.reset()
    frames = [s.step(blk) for blk in b.reshape(100, 160)]
    assert frames[0] is None and frames[1] is None
    np.testing.assert_allclose(np.stack(frames[2:]), logmel(b), atol=STREAM_ATOL, rtol=1e-6)
    # without reset, pre-emphasis and the window carry over (the seed's behaviour): the first
    # block of b already completes a frame, the one over a's tail and b's first block
    s2 = StreamingFeaturizer(P)
    for blk in a.reshape(100, 160):
        s2.step(blk)
    carried = s2.step(b[:160])
    assert carried is not None
    np.testing.assert_allclose(carried, frames_from_stream(np.concatenate([a, b[:160]]))[-1],
                               atol=STREAM_ATOL, rtol=1e-6)
    assert np.abs(carried - logmel(b)[0]).max() > 1.0  # not b's own first frame


def test_batch_accepts_short_and_long_clips():
    x = real_clips(1)[0][1]
    np.testing.assert_array_equal(logmel(np.concatenate([x, x[:3000]])), logmel(x))
    short = x[:9000]
    np.testing.assert_allclose(logmel(short), stream(np.pad(short, (0, 7000))), atol=STREAM_ATOL, rtol=1e-6)
    mixed = logmel_batch(np.stack([x[:12000], np.zeros(12000, np.int16)]))
    np.testing.assert_array_equal(mixed[0], logmel(x[:12000]))


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    s = StreamingFeaturizer(P)
    with pytest.raises(TinyKWSError, match="block of 160"):
        s.step(np.zeros(161))
    with pytest.raises(TinyKWSError, match="block of 160"):
        s.step(np.zeros((2, 80)))
    bad = np.zeros(160)
    bad[3] = np.nan
    with pytest.raises(TinyKWSError, match="NaN"):
        s.step(bad)
    with pytest.raises(TinyKWSError, match="NaN"):
        logmel(np.r_[np.zeros(100), np.inf])
    with pytest.raises(TinyKWSError, match="dtype"):
        logmel(np.zeros(16000, complex))
    with pytest.raises(TinyKWSError, match="dtype"):
        logmel(np.array(["a"] * 10))
    with pytest.raises(TinyKWSError, match="1-D"):
        logmel(np.zeros((2, 16000)))
    with pytest.raises(TinyKWSError, match=r"\[N, samples\]"):
        logmel_batch(np.zeros(16000))
