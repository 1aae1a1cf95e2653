"""Audio loading: every kind of input lands as 16 kHz mono int16, and bad files fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tinykws.data.audio import AudioStats, load_audio, load_many, save_wav, stream_audio, try_load_audio
from tinykws.errors import AudioError

from realdata import REAL as DEV  # the dev set, or the committed mini set


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_plain_16k_clip_is_returned_unchanged(tmp_path):
    x = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
    save_wav(tmp_path / "a.wav", x)
    y, info = load_audio(tmp_path / "a.wav")
    assert y.dtype == np.int16 and y.shape == (16000,)
    np.testing.assert_array_equal(x, y)
    assert not info.changed
    assert (info.source_rate, info.channels, info.source_samples) == (16000, 1, 16000)


def test_short_clip_is_zero_padded_at_the_end(tmp_path):
    x = np.arange(1, 8001, dtype=np.int16)
    save_wav(tmp_path / "short.wav", x)
    y, info = load_audio(tmp_path / "short.wav")
    assert info.padded and not info.cropped
    np.testing.assert_array_equal(y[:8000], x)
    assert not y[8000:].any()


def test_long_clip_is_cropped_to_its_start(tmp_path):
    x = np.arange(24000).astype(np.int16)
    save_wav(tmp_path / "long.wav", x)
    y, info = load_audio(tmp_path / "long.wav")
    assert info.cropped and not info.padded
    np.testing.assert_array_equal(y, x[:16000])


def test_length_none_keeps_the_length(tmp_path):
    save_wav(tmp_path / "long.wav", np.ones(24000, np.int16))
    y, info = load_audio(tmp_path / "long.wav", length=None)
    assert y.shape == (24000,) and not info.cropped and not info.padded


def test_stereo_is_mixed_to_the_channel_mean(tmp_path):
    left = tone(16000, 1.0, amp=0.5)
    right = np.zeros_like(left)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    y, info = load_audio(tmp_path / "st.wav")
    assert info.mixed and info.channels == 2
    expected = np.rint(np.round(left * 32767) / 2)  # PCM_16 stores round(x * 32767)
    assert np.max(np.abs(y.astype(np.float64) - expected)) <= 1.0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_preserving_pitch_and_duration(tmp_path, rate):
    sf.write(tmp_path / "r.wav", tone(rate, 0.5, freq=1000.0), rate, subtype="PCM_16")
    y, info = load_audio(tmp_path / "r.wav", length=None)
    assert info.resampled and info.source_rate == rate
    assert abs(len(y) - 8000) <= 1  # 0.5 s at 16 kHz
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)
    assert abs(peak_hz - 1000.0) < 5.0
    # amplitude survives resampling (middle of the clip, away from filter edges)
    mid = y[1000:7000].astype(np.float64) / 32768
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_float_wav_over_full_scale_is_clipped_and_reported(tmp_path):
    x = tone(16000, 1.0, amp=1.5)
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    y, info = load_audio(tmp_path / "f.wav")
    assert info.clipped and y.max() == 32767 and y.min() == -32768


def test_nan_samples_are_an_audio_error(tmp_path):
    x = tone(16000, 1.0)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        load_audio(tmp_path / "nan.wav")


@pytest.mark.parametrize(
    "name, content",
    [("empty.wav", b""), ("garbage.wav", b"this is not a wav file at all" * 10), ("missing.wav", None)],
)
def test_unreadable_files_raise_audio_error_naming_the_file(tmp_path, name, content):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(AudioError, match=name):
        load_audio(tmp_path / name)


@pytest.mark.parametrize("loader", [load_audio, lambda p: list(stream_audio(p))],
                         ids=["load_audio", "stream_audio"])
def test_missing_file_and_folder_say_so(tmp_path, loader):
    """libsndfile says 'System error.' for a missing file and 'Format not recognised.' for a
    folder; `tinykws detect` printed that for a mistyped path."""
    with pytest.raises(AudioError, match=r"missing.wav: no such file$"):
        loader(tmp_path / "missing.wav")
    (tmp_path / "clips.wav").mkdir()
    with pytest.raises(AudioError, match=r"clips.wav: is a folder, not an audio file$"):
        loader(tmp_path / "clips.wav")


def test_zero_length_wav_is_an_audio_error(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="zero.wav.*no samples"):
        load_audio(tmp_path / "zero.wav")


def test_bulk_loading_skips_and_lists_bad_files(tmp_path):
    good = tmp_path / "good.wav"
    save_wav(good, np.ones(16000, np.int16))
    short = tmp_path / "short.wav"
    save_wav(short, np.ones(100, np.int16))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage")
    paths = [good, bad, short]
    with pytest.raises(AudioError, match="bad.wav"):
        load_many(paths)
    audio, kept, stats = load_many(paths, on_error="skip")
    assert audio.shape == (2, 16000) and kept == [0, 2]
    assert stats.loaded == 2 and stats.padded == 1
    assert [p for p, _ in stats.skipped] == [str(bad)]
    assert "2 clips loaded" in stats.summary() and "1 skipped" in stats.summary()


def test_stats_merge_adds_counts(tmp_path):
    save_wav(tmp_path / "s.wav", np.ones(10, np.int16))
    a, b = AudioStats(), AudioStats()
    try_load_audio(tmp_path / "s.wav", a)
    try_load_audio(tmp_path / "nope.wav", b, on_error="skip")
    a.merge(b)
    assert (a.loaded, a.padded, len(a.skipped)) == (1, 1, 1)
    assert a.as_dict()["skipped"][0]["path"].endswith("nope.wav")


def test_save_wav_rejects_non_int16(tmp_path):
    with pytest.raises(ValueError):
        save_wav(tmp_path / "x.wav", np.zeros(10, np.float32))


def test_real_dev_clips_load_on_the_fast_path():
    files = sorted(DEV.glob("yes/*.wav"))[:20]  # 3 in the mini set
    assert len(files) >= 3, f"no real clips at {DEV}"
    audio, kept, stats = load_many(files)
    assert audio.shape == (len(files), 16000) and stats.loaded == len(files)
    ref = sf.read(files[0], dtype="int16")[0]
    np.testing.assert_array_equal(audio[0, : len(ref)], ref)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40000),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100]),
    channels=st.integers(1, 3),
    length=st.sampled_from([None, 8000, 16000]),
)
def test_property_any_input_gives_mono_int16_of_the_asked_length(tmp_path_factory, n, rate, channels, length):
    path = tmp_path_factory.mktemp("prop") / "x.wav"
    data = np.random.default_rng(n).integers(-20000, 20000, size=(n, channels)).astype(np.int16)
    sf.write(path, data, rate, subtype="PCM_16")
    expected_n = int(np.ceil(n * 16000 / rate))  # resample_poly's output length
    try:
        y, info = load_audio(path, length=length)
    except AudioError as e:  # only when resampling leaves nothing
        assert expected_n == 0 and "too short" in str(e)
        return
    assert y.dtype == np.int16 and y.ndim == 1
    assert len(y) == (expected_n if length is None else length)
    assert info.resampled == (rate != 16000) and info.mixed == (channels > 1)
    assert info.cropped == (length is not None and expected_n > length)
    assert info.padded == (length is not None and expected_n < length)


@pytest.mark.parametrize("rate,channels,subtype", [
    (16000, 1, "PCM_16"), (44100, 2, "FLOAT"), (8000, 1, "PCM_16"), (48000, 1, "PCM_24"),
    (22050, 2, "PCM_16"),
])
def test_stream_audio_chunks_equal_load_audio(tmp_path, rate, channels, subtype):
    """detect reads recordings in chunks: the chunks must be exactly load_audio's samples,
    resampling included, whatever the chunk size."""
    from tinykws.data.audio import stream_audio

    rng = np.random.default_rng(rate)
    x = rng.normal(0, 0.2, (rate * 2 + 17, channels)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, x, rate, subtype=subtype)
    whole = load_audio(path, length=None)[0]
    for chunk in (1000, 4097, 1 << 18):
        parts = list(stream_audio(path, chunk=chunk))
        assert max(len(p) for p in parts) <= 2 * chunk
        np.testing.assert_array_equal(np.concatenate(parts), whole)
