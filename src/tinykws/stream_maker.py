"""The stream phase's training streams (`tinykws.stream_training`): endless rows of words
and gaps with per-frame targets, served in chunks. A row is laid in log-mel space from
the clips' features (each word cut to its speech and a margin, over one noise level a
block), or, for the first `wave_share` of the rows, in waveform (`tinykws.stream_waves`:
whole clips over recorded noise, each at its own SNR, featurized as the device hears them).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from tinykws.errors import TinyKWSError
from tinykws.labels import SILENCE, UNKNOWN
from tinykws.stream_clips import ClipPool, augment_word, word_balance
from tinykws.stream_losses import IGNORE
from tinykws.stream_waves import WaveSource

# `cfg` is a `stream_training.StreamTrainConfig` (not imported: stream_training imports this module)
StreamTrainConfig = Any


class StreamMaker:
    """Endless training streams, one per batch row, served in chunks of frames.

    `next_chunk()` -> (x [B, T, F] float32, target [B, T] int64, weight [B, T] float32,
    region [B, T] int64, rclass [B, T] int64): each word (its speech and target window) and
    each gap is a region, numbered along the row; `rclass` is the word's class (a keyword,
    `_unknown_`) or `_silence_` for a gap.
    Frames are made `block` at a time per row and consumed in order, so a word, its
    target window and the state that heard it run on across chunk boundaries.
    """

    def __init__(self, pool: ClipPool, cfg: StreamTrainConfig, rng: np.random.Generator,
                 block: int = 1500, n_real: Optional[int] = None, waves: Optional[WaveSource] = None):
        """`n_real`: the pool's first n_real clips are real recordings, the rest synthesized
        negatives (None: all real). `waves`: the clips' audio, for the rows laid in waveform
        (the first round(batch x wave_share) of this maker's; `batch` is one process's share)."""
        self.pool, self.cfg, self.rng, self.block, self.waves = pool, cfg, rng, block, waves
        self.kw = pool.keyword_ids
        self.neg = pool.indices(UNKNOWN)
        self.real_neg = self.neg < (len(pool.labels) if n_real is None else n_real)  # [len(neg)]
        self.noise = pool.indices(SILENCE)
        if len(self.kw) == 0 or len(self.noise) == 0:
            raise TinyKWSError("stream training needs keyword clips and _silence_ clips")
        self.neg_weight = np.ones(len(self.neg))  # mining's
        self.base_weight = np.ones(len(self.neg))
        if cfg.real_negative_balance and pool.words is not None and self.real_neg.any():
            said = pool.words[self.neg[self.real_neg]]
            if all(said):  # every real negative's word known
                self.base_weight[self.real_neg] = word_balance(said)
        self.sil = pool.categories.index(SILENCE)
        self.unk = pool.categories.index(UNKNOWN) if UNKNOWN in pool.categories else self.sil
        self.floor = pool.features.min(axis=(0, 1))  # [F] quietest level of each band
        self.next_region = 0  # region numbers keep growing, so none repeats within a row
        if cfg.wave_share > 0 and waves is None:
            raise TinyKWSError("wave_share > 0 needs the clips' audio (a WaveSource: stream_training.wave_source)")
        self.n_wave = round(cfg.batch * cfg.wave_share) if waves is not None else 0
        self.rows: list[tuple[np.ndarray, ...]] = [self._make_row(r, self.block) for r in range(cfg.batch)]

    def set_negative_weights(self, w: np.ndarray) -> None:
        self.neg_weight = np.asarray(w, np.float64)

    def _draw_negative(self) -> int:
        """A negative clip, by the mining weights; `real_negative_share` of them real."""
        w = self.neg_weight * self.base_weight
        share = self.cfg.real_negative_share
        if share > 0 and self.real_neg.any() and not self.real_neg.all():
            real = self.rng.random() < share
            w = np.where(self.real_neg == real, w, 0.0)
        return int(self.neg[self.rng.choice(len(self.neg), p=w / w.sum())])

    def _pseudo_word(self, i: int, a: int) -> tuple[np.ndarray, int]:
        """Keyword clip i from frame `a` to its speech's end, run straight into the last
        `pseudo_frames` of another word's speech and its margin: a word that is not the
        keyword but starts as it ("right" + "s" = "rites"); -> (frames [T', F], speech end)."""
        pool, cfg, rng = self.pool, self.cfg, self.rng
        j = self._draw_negative()
        k = int(rng.integers(cfg.pseudo_frames[0], cfg.pseudo_frames[1] + 1))
        j_end = int(pool.end[j])
        tail_end = min(pool.features.shape[1], j_end + int(rng.integers(*cfg.margin_frames)))
        tail = pool.features[j, max(int(pool.first[j]), j_end - k):tail_end]
        head = pool.features[i, a:int(pool.end[i])]
        return np.concatenate([head, tail]), len(head) + min(k, j_end - int(pool.first[j]))

    def _noise_bed(self, n: int) -> np.ndarray:
        """[n, F] log-mel of background clips end to end (each at its recorded level)."""
        T = self.pool.features.shape[1]
        picks = self.pool.features[self.rng.choice(self.noise, size=-(-n // T))]
        return picks.reshape(-1, picks.shape[-1])[:n]

    def _make_row(self, r: int, n: int) -> tuple[np.ndarray, ...]:
        return self._make_wave(n) if r < self.n_wave else self._make(n)

    def _class(self, i: int, is_kw: bool, pseudo: bool) -> int:
        """The class clip i is trained as: a keyword's own; a negative's garbage target when
        there are any (`stream_garbage`); `_unknown_` for a pseudo-word, though it is made
        from a keyword clip."""
        pool = self.pool
        return (int(pool.labels[i]) if is_kw else self.unk if pseudo or pool.targets is None
                else int(pool.targets[i]))

    def _make(self, n: int) -> tuple[np.ndarray, ...]:
        """At least n frames of stream laid in log-mel space: (x, target, weight, region,
        rclass), each `[n', ...]`."""
        cfg, pool, rng = self.cfg, self.pool, self.rng
        xs, words = [], []  # words: (start, first speech, end, class, is keyword)
        pos = 0
        peaks = []
        while pos < n:
            gap = int(rng.integers(cfg.gap_frames[0], cfg.gap_frames[1] + 1))
            xs.append(np.broadcast_to(self.floor, (gap, len(self.floor))))
            pos += gap
            is_kw = bool(rng.random() < cfg.keyword_prob) or len(self.neg) == 0
            pseudo = not is_kw and cfg.pseudo_share > 0 and rng.random() < cfg.pseudo_share
            i = int(self.kw[rng.integers(len(self.kw))]) if is_kw or pseudo else self._draw_negative()
            T = pool.features.shape[1]
            a = max(0, int(pool.first[i]) - int(rng.integers(*cfg.margin_frames)))
            b = min(T, int(pool.end[i]) + int(rng.integers(*cfg.margin_frames)))
            word, on, end = pool.features[i, a:b], int(pool.first[i]) - a, int(pool.end[i]) - a
            if pseudo:
                word, end = self._pseudo_word(i, a)
            seg, on, end, shift = augment_word(word, on, end, rng, cfg.word_stretch, cfg.word_warp,
                                               cfg.word_gain_db * pool.log_per_db)
            xs.append(seg)
            words.append((pos, pos + on, pos + end, self._class(i, is_kw, pseudo), is_kw))
            peaks.append(pool.peak[i] + shift)
            pos += len(seg)
        x = np.concatenate(xs).astype(np.float32)
        labelled = self._label(len(x), words)
        # the noise bed: one level for this block, `snr` dB under its words' mean peak
        bed = self._noise_bed(len(x))
        bed_level = float(torch.logsumexp(torch.as_tensor(bed), dim=1).mean())
        snr = rng.uniform(*cfg.snr_db)
        shift = float(np.mean(peaks)) - snr * pool.log_per_db - bed_level
        x = np.logaddexp(x, bed + shift).astype(np.float32)
        return (x, *labelled)

    def _make_wave(self, n: int) -> tuple[np.ndarray, ...]:
        """At least n frames of stream laid in waveform (`stream_waves`): whole clips,
        `gap_frames` of noise between them, each clip at an SNR drawn in `snr_db`."""
        cfg, pool, rng = self.cfg, self.pool, self.rng
        placed, words = [], []  # placed: (hop block, clip)
        pos = 0
        while pos < n:
            pos += int(rng.integers(cfg.gap_frames[0], cfg.gap_frames[1] + 1))
            is_kw = bool(rng.random() < cfg.keyword_prob) or len(self.neg) == 0
            i = int(self.kw[rng.integers(len(self.kw))]) if is_kw else self._draw_negative()
            placed.append((pos, i))
            words.append((pos, pos + int(pool.first[i]), pos + int(pool.end[i]), self._class(i, is_kw, False), is_kw))
            pos += self.waves.clip_blocks
        x = self.waves.lay(placed, pos, cfg.snr_db, rng)
        return (x, *self._label(len(x), words))

    def _label(self, n: int, words: list[tuple[int, int, int, int, bool]]) -> tuple[np.ndarray, ...]:
        """(target, weight, region, rclass) `[n]` of a stream whose words are (start, first
        speech frame, speech end, class, is keyword)."""
        cfg = self.cfg
        target = np.full(n, self.sil, np.int64)
        weight = np.full(n, cfg.silence_weight, np.float32)
        rclass = np.full(n, self.sil, np.int64)
        region = np.zeros(n, np.int64)  # 0: the gap before the first word
        for k, (start, on, end, cls, is_kw) in enumerate(words):
            stop = min(n, end + cfg.target_delay + cfg.target_frames)
            if k + 1 < len(words):
                stop = min(stop, words[k + 1][1])  # the next word's speech takes over
            if is_kw:  # unscored until its window opens: the model may still be unsure
                lo = min(stop, end + cfg.target_delay - cfg.target_lead)
                target[start:lo] = IGNORE
                weight[start:lo] = 0.0
            else:
                target[on:end - cfg.target_lead] = cls
                weight[on:end - cfg.target_lead] = cfg.inside_unknown_weight
                lo = end - cfg.target_lead
            lo = max(on, lo)
            target[lo:stop] = cls
            weight[lo:stop] = cfg.keyword_weight if is_kw else cfg.unknown_weight
            rclass[on:stop] = cls
            region[on:stop] = 2 * k + 1  # odd: the word; even: the gap after it
            region[stop:words[k + 1][1] if k + 1 < len(words) else n] = 2 * k + 2
        region += self.next_region
        self.next_region = int(region.max()) + 1
        return target, weight, region, rclass

    def next_chunk(self) -> tuple[Tensor, ...]:
        T = self.cfg.chunk_frames
        out = []
        for r in range(len(self.rows)):
            row = self.rows[r]
            if len(row[0]) < T:
                row = tuple(np.concatenate([a, b]) for a, b in zip(row, self._make_row(r, self.block)))
            out.append(tuple(a[:T] for a in row))
            self.rows[r] = tuple(a[T:] for a in row)
        return tuple(torch.from_numpy(np.stack(parts)) for parts in zip(*out))
