"""How the stream phase lays its words: augmentation (tinykws.stream_clips.augment_word,
resample_axis) and pseudo-word negatives (StreamMaker with `pseudo_share`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinykws.errors import TinyKWSError
from tinykws.stream_clips import ClipPool, augment_word, resample_axis, word_bounds
from tinykws.stream_maker import StreamMaker
from tinykws.stream_training import StreamTrainConfig

LOG_PER_DB = math.log(10) / 10


def _word(seed: int = 0, frames: int = 80, speech=(20, 60)) -> np.ndarray:
    """[frames, 32] log-mel: a floor, and speech (a loud block in bands 4-11) in `speech`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-12.0, 0.5, (frames, 32)).astype(np.float32)
    x[speech[0]:speech[1], 4:12] += 10.0
    return x


@pytest.mark.parametrize("factor", [0.8, 0.93, 1.0, 1.17])
@pytest.mark.parametrize("axis", [0, 1])
def test_resample_axis_is_numpys_interpolation_at_i_over_factor(axis, factor):
    x = _word(1)
    n_out = round(x.shape[axis] * factor) if axis == 0 else x.shape[1]
    got = resample_axis(x, axis, factor, n_out)
    # independent: np.interp on every line, positions past the end reading the last entry
    lines = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    pos = np.arange(n_out) / factor
    want = np.stack([np.interp(pos, np.arange(x.shape[axis]), line) for line in lines])
    want = np.moveaxis(want.reshape(*np.moveaxis(x, axis, -1).shape[:-1], n_out), -1, axis)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_augment_word_with_nothing_asked_leaves_word_and_generator_alone():
    x, rng = _word(), np.random.default_rng(3)
    state = rng.bit_generator.state
    seg, on, end, shift = augment_word(x, 20, 60, rng, 0.0, 0.0, 0.0)
    assert seg is x and (on, end, shift) == (20, 60, 0.0) and rng.bit_generator.state == state


def test_augment_word_stretch_moves_the_speech_bounds_with_the_frames():
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(40):
        seg, on, end, shift = augment_word(_word(), 20, 60, rng, 0.2, 0.0, 0.0)
        f = len(seg) / 80
        lengths.add(len(seg))
        assert 0.8 - 1 / 80 <= f <= 1.2 + 1 / 80 and shift == 0.0
        assert abs(on - 20 * f) <= 1 and abs(end - 60 * f) <= 1
        # the loud block is where the bounds say (energy, as the stream phase finds words)
        first, last = word_bounds(seg[None], log_per_db=LOG_PER_DB)
        assert abs(int(first[0]) - on) <= 1 and abs(int(last[0]) - end) <= 1
    assert len(lengths) > 10  # the rate differs word to word


def test_augment_word_warp_moves_the_formant_and_gain_shifts_the_level():
    rng = np.random.default_rng(1)
    x = _word()
    centres, shifts = [], []
    for _ in range(40):
        seg, on, end, _ = augment_word(x, 20, 60, rng, 0.0, 0.1, 0.0)
        assert seg.shape == x.shape and (on, end) == (20, 60)
        band_power = np.exp(seg[20:60]).mean(0)
        centres.append(float((band_power * np.arange(32)).sum() / band_power.sum()))
        seg, _, _, shift = augment_word(x, 20, 60, rng, 0.0, 0.0, 6 * LOG_PER_DB)
        np.testing.assert_allclose(seg - x, shift, atol=1e-5)
        shifts.append(shift)
    # the block's centre (band 7.5, at +-10 %: 6.75-8.25, blurred a little by the interpolation)
    # goes up with a factor > 1, down with one < 1
    assert 6.6 < min(centres) < 7.2 and 7.9 < max(centres) < 8.7
    assert max(np.abs(shifts)) <= 6 * LOG_PER_DB and min(shifts) < 0 < max(shifts)


def test_stream_maker_lays_augmented_words_with_their_targets_after_them():
    xs = np.stack([_word(s, 98, (30, 60)) for s in range(40)])
    xs[30:] = np.random.default_rng(9).normal(-12.0, 0.5, (10, 98, 32))  # silence
    ys = np.repeat([0, 1, 2, 3], 10)
    pool = ClipPool.from_arrays(xs, ys, ["yes", "no", "_unknown_", "_silence_"], LOG_PER_DB)
    plain = StreamTrainConfig(batch=2, chunk_frames=1500, gap_frames=(60, 120))
    aug = StreamTrainConfig(batch=2, chunk_frames=1500, gap_frames=(60, 120), word_stretch=0.3,
                            word_warp=0.1, word_gain_db=6.0)
    x0, t0, *_ = StreamMaker(pool, plain, np.random.default_rng(2)).next_chunk()
    x1, t1, *_ = StreamMaker(pool, aug, np.random.default_rng(2)).next_chunk()
    assert x1.shape == x0.shape and not np.array_equal(x0.numpy(), x1.numpy())
    # every keyword window opens `target_lead` frames before its word's energy ends
    energy = np.logaddexp.reduce(x1.numpy(), axis=2)
    opened = 0
    for row_t, row_e in zip(t1.numpy(), energy):
        for start in np.flatnonzero(np.isin(row_t, (0, 1)) & ~np.isin(np.roll(row_t, 1), (0, 1))):
            if start < 3:
                continue
            loud = row_e[start - 40:start + 10] > row_e.min() + 5.0
            last_loud = start - 40 + int(np.flatnonzero(loud)[-1])
            assert abs(last_loud + 1 - (start + aug.target_lead)) <= 2
            opened += 1
    assert opened >= 4
    for bad in ({"word_stretch": 1.0}, {"word_warp": -0.1}, {"word_gain_db": -1.0}):
        with pytest.raises(TinyKWSError, match="word_"):
            StreamTrainConfig(**bad)


def _negative_regions(cfg: StreamTrainConfig):
    """(frames [n, 32], targets [n]) of every other-word region a toy stream lays: yes in
    bands 0-7, no in 8-15, other words in 16-23, each a 30-frame loud block."""
    rng = np.random.default_rng(4)
    xs = rng.normal(-12.0, 0.5, (40, 98, 32)).astype(np.float32)
    for i in range(30):
        xs[i, 30:60, 8 * (i // 10):8 * (i // 10) + 8] += 10.0
    cats = ["yes", "no", "_unknown_", "_silence_"]
    pool = ClipPool.from_arrays(xs, np.repeat([0, 1, 2, 3], 10), cats, LOG_PER_DB)
    x, t, _, region, rclass = StreamMaker(pool, cfg, np.random.default_rng(6)).next_chunk()
    out = []
    for row in range(x.shape[0]):
        for rid in np.unique(region[row].numpy()):
            sel = (region[row] == int(rid)).numpy() & (rclass[row] == 2).numpy()
            if rid % 2 == 1 and sel.any():
                out.append((x[row].numpy()[sel], t[row].numpy()[sel]))
    return out[1:-1]  # the first and last may be cut by the chunk's edges


def test_pseudo_words_are_a_keyword_run_into_another_words_end_and_never_a_keyword():
    base = dict(batch=2, chunk_frames=3000, keyword_prob=0.3, gap_frames=(40, 80), snr_db=(40.0, 40.0))
    plain = _negative_regions(StreamTrainConfig(**base))
    assert len(plain) >= 10
    assert all(f[:, :16].mean(1).max() < -8 for f, _ in plain)  # other words say no keyword
    pseudo = _negative_regions(StreamTrainConfig(**base, pseudo_share=1.0, pseudo_frames=(6, 12)))
    assert len(pseudo) >= 10
    for frames, target in pseudo:
        kw = np.flatnonzero(frames[:, :16].mean(1) > -8)  # the keyword's loud frames
        other = np.flatnonzero(frames[:, 16:24].mean(1) > -8)  # the other word's ending
        assert len(kw) >= 25 and 6 <= len(other) <= 13
        assert other[0] >= kw[-1] and other[0] - kw[-1] <= 2  # straight on, no gap
        assert set(np.unique(target)) <= {2}  # _unknown_ (or nothing): never the keyword
    for bad in ({"pseudo_share": 1.5}, {"pseudo_frames": (0, 4)}, {"pseudo_frames": (9, 4)}):
        with pytest.raises(TinyKWSError, match="pseudo"):
            StreamTrainConfig(**bad)
