"""Training stream rows laid in waveform (tinykws.stream_waves, `StreamTrainConfig.wave_share`)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from tinykws.data.audio import CLIP_SAMPLES, SAMPLE_RATE, save_wav
from tinykws.errors import TinyKWSError
from tinykws.features import FeatureParams, logmel, logmel_batch, mel_bins
from tinykws.keyword_streams import speech_rms
from tinykws.stream_clips import ClipPool
from tinykws.stream_maker import StreamMaker
from tinykws.stream_training import StreamTrainConfig
from tinykws.stream_waves import WaveSource

CATS = ["yes", "no", "_unknown_", "_silence_"]
TONE_HZ = {"yes": 500.0, "no": 2000.0, "_unknown_": 5000.0}  # each class a band of its own
LOG_PER_DB = math.log(10) / 10
SPEECH = (4000, 9000)  # samples of the tone in each clip


def _clip(label: str, rng: np.random.Generator) -> np.ndarray:
    """A 1-s int16 clip: a tone of the class's own pitch in SPEECH (level varies), or zeros."""
    x = np.zeros(CLIP_SAMPLES)
    if label in TONE_HZ:
        t = np.arange(SPEECH[1] - SPEECH[0]) / SAMPLE_RATE
        x[SPEECH[0]:SPEECH[1]] = rng.uniform(2000, 8000) * np.sin(2 * np.pi * TONE_HZ[label] * t)
    return np.rint(x).astype(np.int16)


def _wave_pool(tmp_path, n_per_class: int = 6):
    """(ClipPool from the clips' own features, the clips' paths, a white-noise file)."""
    rng = np.random.default_rng(0)
    paths, labels, clips = [], [], []
    for k, label in enumerate(CATS):
        for i in range(n_per_class):
            x = _clip(label, rng)
            path = tmp_path / label / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_wav(path, x)
            paths.append(str(path))
            labels.append(k)
            clips.append(x)
    noise = tmp_path / "_background_noise_" / "white.wav"
    noise.parent.mkdir()
    save_wav(noise, np.rint(rng.normal(0, 1000, 3 * SAMPLE_RATE)).astype(np.int16))
    feats = logmel_batch(np.stack(clips))
    return ClipPool.from_arrays(feats, np.array(labels), CATS, LOG_PER_DB), paths, noise


def _wave_run(tmp_path):
    """A run folder whose training.npz was featurized from real files, with lists naming
    its data folder and noise: (run folder, pool, paths)."""
    pool, paths, noise = _wave_pool(tmp_path / "data")
    run = tmp_path / "run"
    for sub in ("train", "lists", "features"):
        (run / sub).mkdir(parents=True)
    (run / "lists" / "lists.json").write_text(json.dumps({"data_dir": str(tmp_path / "data"),
                                                          "noise_files": [str(noise)]}))
    np.savez(run / "features" / "training.npz", features=pool.features, labels=pool.labels,
             categories=np.array(CATS), feature_params=FeatureParams().to_json(), paths=np.array(paths))
    return run, pool, paths


def _band(hz: float) -> int:
    """The mel band whose centre (an FFT bin, `mel_bins`) is nearest `hz`."""
    p = FeatureParams()
    return int(np.argmin(np.abs(mel_bins(p)[1:-1] - hz * (p.fft_size + 1) / p.sample_rate)))


def test_a_clip_laid_at_block_p_is_the_clips_own_frames_from_frame_p(tmp_path):
    pool, paths, _ = _wave_pool(tmp_path)
    silent = tmp_path / "silent.wav"
    save_wav(silent, np.zeros(2 * SAMPLE_RATE, np.int16))
    waves = WaveSource(paths, FeatureParams(), [silent])  # no noise at all
    x = waves.lay([(7, 0), (130, 6)], 240, (20.0, 20.0), np.random.default_rng(0))
    assert x.shape == (240, 32) and waves.clip_blocks == 100
    # the same samples in the same windows: bit for bit the clip's features
    np.testing.assert_array_equal(x[7:105], logmel(_clip_at(paths, 0)))
    np.testing.assert_array_equal(x[130:228], logmel(_clip_at(paths, 6)))
    floor = math.log(FeatureParams().log_delta)
    for quiet in (x[:7], x[108:130]):  # nothing before the first clip or between them
        np.testing.assert_allclose(quiet, floor, rtol=1e-6)


def _clip_at(paths, i):
    from tinykws.data.audio import load_audio

    return load_audio(paths[i])[0]


def test_each_clip_sits_snr_db_above_the_noise_around_it(tmp_path):
    pool, paths, noise = _wave_pool(tmp_path)
    waves = WaveSource(paths, FeatureParams(), [noise])
    audio = waves.mix([(50, 2)], 400, (25.0, 25.0), np.random.default_rng(1))
    assert audio.shape == ((400 + 2) * 160,) and audio.dtype == np.float32
    clip = _clip_at(paths, 2).astype(np.float64)
    # one clip: the noise keeps one level everywhere; away from the clip it is all there is
    want = speech_rms(clip) / 10 ** (25 / 20)
    away = audio[200 * 160:]
    assert abs(np.sqrt(np.mean(away.astype(np.float64) ** 2)) / want - 1) < 0.01
    # and the clip is there at its recorded level, the noise under it
    laid = audio[50 * 160:50 * 160 + CLIP_SAMPLES].astype(np.float64)
    assert np.sqrt(np.mean((laid - clip) ** 2)) / want == pytest.approx(1.0, abs=0.03)


def test_wave_rows_hold_each_word_where_its_targets_say(tmp_path):
    pool, paths, noise = _wave_pool(tmp_path)
    cfg = StreamTrainConfig(batch=2, chunk_frames=1200, wave_share=0.5, snr_db=(30.0, 30.0),
                            target_delay=10, target_frames=15)
    maker = StreamMaker(pool, cfg, np.random.default_rng(3), waves=WaveSource(paths, FeatureParams(), [noise]))
    assert maker.n_wave == 1
    x, target, weight, region, rclass = (t.numpy() for t in maker.next_chunk())
    for row in range(2):  # row 0 laid in waveform, row 1 in log-mel space: the same bookkeeping
        words = 0
        for r in np.unique(region[row][rclass[row] != CATS.index("_silence_")]):  # the words
            at = np.flatnonzero(region[row] == r)
            if at[-1] == len(x[row]) - 1:
                continue  # runs on into the next chunk
            cls = CATS[int(rclass[row, at[0]])]
            on = at[0]  # the word's first speech frame: the tone starts there, in its own band
            energy = np.log(np.exp(x[row, on - 4:on + 4].astype(np.float64)).sum(1))
            assert energy[6] - energy[0] > 10 * LOG_PER_DB  # quiet before the word, loud in it
            assert np.bincount(x[row, on:on + 20].argmax(1)).argmax() == pytest.approx(_band(TONE_HZ[cls]), abs=1)
            if cls != "_unknown_":  # the keyword's target window opens after its end, delay included
                scored = np.flatnonzero((target[row] == CATS.index(cls)) & (region[row] == r))
                speech_frames = (SPEECH[1] - SPEECH[0]) // 160
                assert scored[0] - on == pytest.approx(speech_frames + 10 - cfg.target_lead, abs=3)
            words += 1
        assert words >= 4
    # the waveform row's words are whole clips: no two words closer than a clip's own silence
    w0 = [np.flatnonzero(region[0] == r)[0] for r in np.unique(region[0][rclass[0] != CATS.index("_silence_")])]
    assert np.all(np.diff(w0) >= 100 + cfg.gap_frames[0])


def test_wave_share_is_checked_and_refuses_the_log_mel_word_changes():
    with pytest.raises(TinyKWSError, match="wave_share"):
        StreamTrainConfig(wave_share=1.5)
    for bad in ({"pseudo_share": 0.1}, {"word_stretch": 0.1}, {"word_gain_db": 3.0}):
        with pytest.raises(TinyKWSError, match="lay every clip as recorded"):
            StreamTrainConfig(wave_share=0.5, **bad)


def test_a_clip_file_gone_is_named(tmp_path):
    # (train_stream checks every clip a row may lay before any training: tests/test_train_stream.py)
    pool, paths, noise = _wave_pool(tmp_path)
    waves = WaveSource(paths, FeatureParams(), [noise])
    waves.check(np.arange(len(paths)))  # all there
    (tmp_path / "no" / "3.wav").unlink()
    with pytest.raises(TinyKWSError, match=r"no/3\.wav not found"):
        waves.check(np.arange(len(paths)))


def test_waves_need_clips_of_the_speech_commands_shape(tmp_path):
    with pytest.raises(TinyKWSError, match="16000-Hz clips"):
        WaveSource([], FeatureParams(clip_samples=8000), [])


def test_the_envelope_and_noise_are_keyword_streams_own_at_a_fraction_of_the_cost(tmp_path):
    from tinykws.keyword_streams import noise_envelope, noise_pieces
    from tinykws.stream_waves import envelope

    rng = np.random.default_rng(0)
    for _ in range(20):  # clips >= 1 s + 5 frames apart, as the maker lays them
        k = int(rng.integers(1, 8))
        starts = np.cumsum(rng.integers(16800, 48000, k)) - 16000
        n = int(starts[-1] + 16000 + rng.integers(0, 5000))
        levels = rng.uniform(30, 3000, k)
        got = envelope(list(starts), list(levels), n)
        want = noise_envelope(list(starts / SAMPLE_RATE), list(levels), n)
        assert got.dtype == np.float32 and got.shape == (n,)
        # (noise_envelope's middles go through seconds and back: now and then one lands a sample earlier)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * levels.max())
    pool, paths, noise = _wave_pool(tmp_path)
    waves = WaveSource(paths, FeatureParams(), [noise, noise])
    got = waves.noise(200_000, np.random.default_rng(4))
    want = noise_pieces([x.astype(np.float64) for x in waves.noises], 200_000, 1.0, np.random.default_rng(4))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # the same pieces, at RMS 1 each


def test_wave_source_reads_each_pool_clips_own_file_in_clip_pools_order(tmp_path):
    from tinykws.run import RunDir, read_features
    from tinykws.stream_clips import clip_pool
    from tinykws.stream_training import wave_source

    run, _, paths = _wave_run(tmp_path)
    split = read_features(run / "features" / "training.npz")
    real = [i for i, y in enumerate(split.labels) if CATS[y] == "_unknown_"]  # two sets of negatives
    extra = [i for i, y in enumerate(split.labels) if CATS[y] == "no"]  # that differ
    pool, _ = clip_pool(split, split.features[real], split.features[extra], LOG_PER_DB)
    waves = wave_source(RunDir(run), split, (split.features[real], [paths[i] for i in real]),
                        (split.features[extra], [paths[i] for i in extra]))
    assert len(waves.paths) == len(pool.labels) == len(split.labels) + len(real) + len(extra)
    for i in range(len(pool.labels)):
        if CATS[pool.labels[i]] != "_silence_":  # every clip a row may lay: its own file
            np.testing.assert_array_equal(logmel(_clip_at(waves.paths, i)), pool.features[i])
    assert len(waves.noises) == 1  # the noise the lists name
    # lists naming no noise (an older tinykws): the data folder's recordings; none there: white noise
    (run / "lists" / "lists.json").write_text(json.dumps({"data_dir": str(tmp_path / "data")}))
    assert len(wave_source(RunDir(run), split).noises) == 1
    (tmp_path / "data" / "_background_noise_" / "white.wav").unlink()
    assert wave_source(RunDir(run), split).noises == []
    with pytest.raises(TinyKWSError, match="every negative clip"):
        wave_source(RunDir(run), split, (split.features[real], None))


def test_waveform_rows_refuse_what_they_cannot_lay(tmp_path):
    from tinykws.run import RunDir, read_features
    from tinykws.stream_training import wave_source

    run, pool, paths = _wave_run(tmp_path)
    split = read_features(run / "features" / "training.npz")
    # rows cut from clips (featurize --window-size 60): their speech bounds are not the clip's
    cut = dataclasses.replace(split, features=split.features[:, :60])
    with pytest.raises(TinyKWSError, match=r"whole-clip features \(98 frames a row, not 60\)"):
        wave_source(RunDir(run), cut)
    with pytest.raises(TinyKWSError, match="no source files"):
        wave_source(RunDir(run), dataclasses.replace(split, paths=np.array([], str)))
    (run / "lists" / "lists.json").unlink()
    with pytest.raises(TinyKWSError, match="--wave-share 0"):
        wave_source(RunDir(run), split)
    with pytest.raises(TinyKWSError, match="needs the clips' audio"):
        StreamMaker(pool, StreamTrainConfig(batch=2, wave_share=0.5), np.random.default_rng(0))
    with pytest.raises(TinyKWSError, match="gap_frames"):
        StreamTrainConfig(gap_frames=(0, 10))
