"""Stream training: teach a clip-trained model to run on one never-reset state.

A model trained on 1-s clips from a zero state knows nothing about what comes before a
word; run on one state for minutes it drifts and locks onto one class (docs/benchmarks.md,
"Streaming"). This second training phase shows it what the detector will show it:

- **long streams**, made in feature space from the training clips: words (keywords, other
  words, extra negatives) cut to their speech plus a little margin, gaps of background
  noise between them, a continuous noise bed under everything at 5-40 dB SNR (mixed in the
  power domain: `logaddexp`). Each batch row is one endless stream; the recurrent state is
  carried from chunk to chunk (truncated backpropagation through time) and reset only
  rarely, so the model learns to stay stable over hours, not over one clip.
- **per-frame targets**: a word's class from just before its end (found by energy) until
  `target_frames` after it, `_silence_` elsewhere; frames inside a keyword are not scored
  (the model may be unsure until the word is over), frames inside other words count as
  `_unknown_` at a lower weight (no keyword may fire in the middle of "upper").
- **class weights**: keyword frames, other-word frames and background frames each carry a
  weight, so the rare word ends are not drowned by hours of background.
- **the clip loss kept**: every step also trains on a batch of augmented clips from a zero
  state (last-frame cross-entropy, as the clip phase), so clip accuracy does not drop.
- the losses are in `tinykws.stream_losses`; several processes can share the steps
  (`StreamTrainConfig.workers`, `tinykws.stream_workers`).
- **hard-negative mining**: every `mine_every` steps the model scores every negative clip
  inside a stream context; clips on which a keyword score rose above `mine_threshold` are
  drawn `mine_boost` times more often afterwards.

`train_stream(features_dir, run_dir, StreamTrainConfig())` reads the clip model
`RUN_DIR/train/best.pt` (kept as `train/clip.pt`), writes the stream model to
`train/best.pt` with `stream_config` in the checkpoint (the detector then runs it on one
state, `mode="rolling"`), `train/stream_log.csv`, and `train/stream_last.pt` for resume.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tinykws.augment import augment_batch
from tinykws.checkpoint import load_model, load_torch
from tinykws.data.speech_commands import BACKGROUND
from tinykws.dataset import featurize_negatives, noise_files
from tinykws.errors import TinyKWSError
from tinykws.evaluate import run_data_dir
from tinykws.labels import SILENCE, UNKNOWN
from tinykws.models.sparsity import fix_support
from tinykws.progress import progress_bar
from tinykws.run import RunDir, atomic_torch_save, check_splits_agree, read_features, read_json, split_file
from tinykws.stream_clips import ClipPool, clip_pool
from tinykws.stream_garbage import garbage_targets, raw_masks, with_garbage
from tinykws.stream_losses import inside_keyword, peak_loss, stream_loss
from tinykws.stream_maker import StreamMaker
from tinykws.stream_waves import WaveSource
from tinykws.stream_mining import Miner
from tinykws.stream_state import bound_state
from tinykws.stream_workers import Group, check_workers, join, rank_seeds, share, split_count, worker_env, workers
from tinykws.train import class_weights, pipeline_recipe
from tinykws.tuning import torch_threads, tune_for_training


@dataclass(frozen=True)
class StreamTrainConfig:
    """The stream phase's choices (saved in the checkpoint as `stream_config`)."""

    # 1500 steps of 32 x 2 s = 27 h of stream, shared by 2 processes (`workers`); measured on
    # the dev data with 39k synthesized negatives, 800 steps of 16 reached 14 % recall at <= 6
    # false alarms an hour, 3000 of 16 reached 31 % (docs/benchmarks.md, "Streaming"); 1500 of
    # 32 at twice the learning rate matched or beat 3000 of 16 on the embedded default (two
    # seeds) and matched it at <= 6 false alarms an hour on the dev data (lower at <= 1), in
    # 0.56x the time on 2 cores (docs/benchmarks.md, "Issue 19, seventh round")
    iterations: int = 1500
    # peak and final learning rate (cosine): 4e-3 against 2e-3 raised recall at issue 19's
    # acceptance point on the embedded default from 25 to 36-42 % (two seeds each), 8e-3 did
    # not (docs/benchmarks.md, "Issue 19, sixteenth round")
    learning_rate: float = 4e-3
    lr_min: float = 2e-4
    batch: int = 32  # streams trained side by side (batch / workers a process)
    chunk_frames: int = 200  # frames per truncated-BPTT step (2 s)
    reset_prob: float = 0.02  # chance a stream's state restarts from zero at a chunk
    # what a stream holds
    keyword_prob: float = 0.45  # of the words; the rest are negatives
    # of the negatives, the share drawn from the real other-word clips of training.npz when
    # synthesized ones are added (0: in proportion to their numbers, ~1 % for 179 real among
    # 20,000): real voices are what a stream model must learn to reject
    real_negative_share: float = 0.0
    # draw the real negatives evenly over their words instead of clip by clip (the extra
    # folder's other words are 95 % bed, cat and happy), their total share unchanged
    real_negative_balance: bool = False
    gap_frames: tuple[int, int] = (5, 200)  # background between two words
    margin_frames: tuple[int, int] = (3, 25)  # kept around a word's speech
    snr_db: tuple[float, float] = (5.0, 40.0)
    # each word made new as it is laid in (0: off; `stream_clips.augment_word`): speaking
    # rate (its frames stretched by a factor in [1 - word_stretch, 1 + word_stretch]),
    # vocal tract (the mel axis, [1 - word_warp, 1 + word_warp]) and level (+-word_gain_db).
    # Off, every stream word is a training clip verbatim: over the embedded default's 4500
    # steps each keyword clip is heard about 47 times, each negative about 7. Off: 0.15 /
    # 0.08 / 6 dB moved neither regime beyond its seed spread (docs/benchmarks.md, Issue 19,
    # nineteenth round)
    word_stretch: float = 0.0
    word_warp: float = 0.0
    word_gain_db: float = 0.0
    # of the negatives, the share that are pseudo-words: a keyword run straight into the
    # last `pseudo_frames` of another word's speech, as "rites" is "right" + "s" (0: off).
    # The held-apart negative hour's highest peaks are such words ("rites", "rights",
    # "writes" as right; "oft" as off), which no training negative says. Off: 0.15 lowered
    # the keywords' peaks more than the negatives' (Issue 19, nineteenth round)
    pseudo_share: float = 0.0
    pseudo_frames: tuple[int, int] = (6, 25)
    # targets and weights
    target_lead: int = 3  # frames before a word's end that already take its class
    target_frames: int = 40  # frames after a word's end that keep its class
    # frames after a word's end before a keyword's class is asked for (its window shifts by
    # as much; the frames before it are not scored): a causal model that must answer at the
    # energy end of "stop" cannot tell it from "stopper" or "store". 35 quiets the held-apart
    # near misses and lowers the keyword peaks: a gain on synthesized voices, a loss on the
    # dev data, so off here and on for the pipeline's embedded default, with target_frames 30
    # (`pipeline.SYNTHESIZED_DECISION`; docs/benchmarks.md, Issue 19, 5th, 17th, 29th rounds)
    target_delay: int = 0
    keyword_weight: float = 3.0  # the word ends are rare: make them count
    unknown_weight: float = 1.0
    inside_unknown_weight: float = 0.3  # frames inside another word
    silence_weight: float = 0.3
    # frames inside a keyword (unscored above) may not lean to *another* keyword:
    # -log(1 - sum of the other keywords' probabilities), at this weight (0: off). The
    # detector fires on the first crossing, so a wrong keyword that rises mid-word takes
    # the event and the refractory time suppresses the right one
    inside_wrong_weight: float = 0.0
    # the stream loss's frames scaled by (1 - p)^gamma (0: off). Off: gamma 2 compressed every
    # peak and lost at the acceptance point in both seeds (docs/benchmarks.md, twentieth round)
    focal_gamma: float = 0.0
    # the detector's own statistic, trained directly (0: off): scores averaged over
    # `peak_smooth_frames` as the detector does; each keyword's best smoothed own score in
    # its target window -> -log(it); every word's and gap's best smoothed score of a keyword
    # it is not -> -log(1 - it). Per-frame cross-entropy asks for a plateau everywhere; the
    # detector only ever looks at the peaks
    peak_weight: float = 0.0
    peak_smooth_frames: int = 30  # = DetectorConfig's 300 ms at 10 ms a frame
    clip_weight: float = 1.0  # the clip loss beside the stream loss
    clip_batch: int = 64  # clips of the clip loss a step (clip_batch / workers a process)
    # of the clip loss's batch, the share drawn from the negatives (the real spare and the
    # synthesized clips, as `_unknown_`) instead of the training split: whole-clip practice
    # at rejecting near misses from a zero state. Off: 0.5 cost clip recall (0.855 -> 0.724)
    # and stream recall on the embedded default (docs/benchmarks.md, Issue 19, ninth round)
    clip_negative_share: float = 0.0
    # the saved model is an exponential moving average of the weights at this decay (torch's
    # `AveragedModel`; 0: off, the last step's). Off: 0.998 gave no gain on two seeds
    # (docs/benchmarks.md, Issue 19, eleventh round)
    ema_decay: float = 0.0
    # decoupled weight decay of the stream phase's optimiser (AdamW; 0: Adam). Off: 0.05 lost
    # on the dev data's two stream seeds (docs/benchmarks.md, Issue 19, twenty-third round)
    weight_decay: float = 0.0
    # garbage outputs, one per keyword (0: off; `tinykws.stream_garbage`): a negative clip the
    # clip model scores as keyword k at least this much is trained as "like k, not k"
    garbage_threshold: float = 0.0
    # of a step's stream rows, the share laid in waveform (`stream_waves`: whole clips over
    # the data's recorded noise, each at its own SNR in `snr_db`, featurized as the device
    # hears them, as the measured streams are made) instead of in log-mel space (0: off).
    # Needs the clips' audio files; its words are never made new (`word_*`, `pseudo_share`)
    wave_share: float = 0.0
    bounded_state: bool = True  # FastGRNN: σ(nu) -> 0, so |h| <= max(|h0|, σ(zeta)) <= 1
    # hard-negative mining: every `mine_every` steps the next `mine_clips` negatives (all of
    # them when 0; in turn, so each round is as cheap as the first) are scored in a stream
    # context; a negative is drawn `mine_boost` times as often while its latest score is
    # >= `mine_threshold` and, with `mine_top` > 0, among the highest `mine_top` share of
    # the scores so far (a fixed threshold boosts most clips once the model is wary of
    # every word: at 0.3, 73 % of the pipeline's negatives after the stream phase)
    mine_every: int = 500
    mine_threshold: float = 0.3
    mine_boost: float = 4.0
    mine_clips: int = 0
    mine_top: float = 0.0
    # a negative's score: its highest keyword probability frame by frame (0), or of their
    # `mine_smooth_frames` mean, the statistic the detector fires on. Off: 30 boosted 27-39 %
    # of the negatives (the raw score 76 %) and lowered the keywords' peaks on every seed, the
    # negative hour's top not at all (docs/benchmarks.md, Issue 19, 30th round)
    mine_smooth_frames: int = 0
    seed: int = 0
    # processes that share every step (`tinykws.stream_workers`: batch / workers streams and
    # clip_batch / workers clips each, gradients averaged). A step of 16 streams costs 0.74x
    # one of 32 (per-frame op overheads), so 2 processes of 16 train 1.78x the frames a second
    # of 1 (bench/stream_workers.py)
    workers: int = 2

    def __post_init__(self) -> None:
        check_workers(self.workers)
        d = self.target_delay
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise TinyKWSError(f"target_delay is a whole number of frames >= 0, not {self.target_delay!r}")
        if self.iterations < 1 or self.batch < 1 or self.chunk_frames < 1:
            raise TinyKWSError("stream training needs iterations, batch and chunk_frames >= 1")
        if not 0.0 < self.keyword_prob < 1.0:
            raise TinyKWSError("keyword_prob must be in (0, 1)")
        if not 0.0 <= self.real_negative_share <= 1.0:
            raise TinyKWSError("real_negative_share must be in [0, 1]")
        if not 0.0 <= self.clip_negative_share < 1.0:
            raise TinyKWSError(f"clip_negative_share must be in [0, 1), not {self.clip_negative_share!r}")
        if not self.focal_gamma >= 0.0:
            raise TinyKWSError(f"focal_gamma must be >= 0, not {self.focal_gamma!r}")
        if not 0.0 <= self.ema_decay < 1.0 or not self.weight_decay >= 0.0:
            raise TinyKWSError(f"ema_decay must be in [0, 1) and weight_decay >= 0, not {self.ema_decay!r}, "
                               f"{self.weight_decay!r}")
        if not (0.0 <= self.word_stretch < 1.0 and 0.0 <= self.word_warp < 1.0 and self.word_gain_db >= 0):
            raise TinyKWSError("word_stretch and word_warp must be in [0, 1), word_gain_db >= 0")
        lo, hi = self.pseudo_frames
        if not 0.0 <= self.pseudo_share <= 1.0 or not 1 <= lo <= hi:
            raise TinyKWSError("pseudo_share must be in [0, 1] and pseudo_frames 1 <= lo <= hi")
        if not 0.0 <= self.mine_top <= 1.0 or self.mine_clips < 0:
            raise TinyKWSError("mine_top must be in [0, 1] and mine_clips >= 0")
        m = self.mine_smooth_frames
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise TinyKWSError(f"mine_smooth_frames is a whole number of frames >= 0, not {m!r}")
        if not 0.0 <= self.wave_share <= 1.0:
            raise TinyKWSError(f"wave_share must be in [0, 1], not {self.wave_share!r}")
        if not 1 <= self.gap_frames[0] <= self.gap_frames[1]:
            raise TinyKWSError(f"gap_frames must be 1 <= lo <= hi, not {self.gap_frames!r}")
        if self.wave_share > 0 and (self.pseudo_share or self.word_stretch or self.word_warp or self.word_gain_db):
            raise TinyKWSError("waveform stream rows (wave_share > 0) lay every clip as recorded: "
                               "set pseudo_share and word_stretch / word_warp / word_gain_db to 0")
        if not 0.0 <= self.garbage_threshold <= 1.0:
            raise TinyKWSError(f"garbage_threshold must be in [0, 1], not {self.garbage_threshold!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StreamTrainConfig":
        names = {f.name: f for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def check_chunk_stride(chunk_frames: int, stride: int) -> None:
    """Chunks end on whole groups of frames: only the recurrent state carries on between them."""
    if chunk_frames % stride:
        raise TinyKWSError(f"stream chunks of {chunk_frames} frames need a frame stride that divides them, not {stride}")


def quick_stream_config() -> StreamTrainConfig:
    """The CI smoke configuration (seconds, not minutes)."""
    return StreamTrainConfig(iterations=20, batch=8, chunk_frames=100, clip_batch=16,
                             mine_every=10, learning_rate=1e-3, workers=1)


# ---------------------------------------------------------------------------- training


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _reset_rows(state, rows: Tensor):
    if isinstance(state, tuple):
        return tuple(_reset_rows(s, rows) for s in state)
    return torch.where(rows.view(1, -1, 1), torch.zeros_like(state), state)


def _lr(i: int, cfg: StreamTrainConfig) -> float:
    return cfg.lr_min + (cfg.learning_rate - cfg.lr_min) * (1 + math.cos(math.pi * i / cfg.iterations)) / 2


def negative_features(negatives_dir: Path | str, features_dir: Path | str, run_dir: Path | str):
    """The training speech of a `data negatives` folder as features made like
    `features_dir/training.npz` (featurized once into RUN_DIR/features/negatives.npz, cached).

    Returns a `run.FeatureSplit` whose clips are all `_unknown_`, for `extra_negatives`.
    """
    training = read_features(split_file(features_dir, "training"), features=False)
    path = featurize_negatives(negatives_dir, RunDir(run_dir).negative_features,
                               training.categories, training.params)
    extra = read_features(path)
    check_splits_agree(training, extra)
    return extra


def train_stream(
    features_dir: Path | str, run_dir: Path | str, cfg: StreamTrainConfig = StreamTrainConfig(),
    *, extra_negatives: Optional[np.ndarray] = None, real_negatives: Optional[np.ndarray] = None,
    real_negative_words: Optional[Sequence[str]] = None, threads: int = 1,
    real_negative_paths: Optional[Sequence[str]] = None, extra_negative_paths: Optional[Sequence[str]] = None,
) -> Path:
    """Stream-train `RUN_DIR/train/best.pt` (the clip model) into a new `best.pt`.

    `extra_negatives` `[M, T, F]`: more non-keyword clips (log-mel, same features) mixed
    into the streams as `_unknown_` words (synthesized); `real_negatives` `[R, T, F]`: real
    recordings of other words (the lists' spare `_unknown_` clips), counted with the
    training clips as real for `real_negative_share`, and the word each says
    (`real_negative_words`, for `real_negative_balance`). `*_paths`: the audio file of each
    of those clips, for the rows laid in waveform (`cfg.wave_share`). With `cfg.workers` > 1 the steps are
    shared by that many processes (`tinykws.stream_workers`), `threads` torch threads each.
    Resumes from `train/stream_last.pt`. Returns the path of the stream model.
    """
    features_dir, run = Path(features_dir), RunDir(run_dir)
    tune_for_training()  # as the clip phase: keep the steps' big blocks in the heap
    clip_path, best_path = run.clip, run.best
    if not clip_path.is_file():
        if not best_path.is_file():
            raise TinyKWSError(f"{best_path} missing: train the clip model first")
        shutil.copyfile(best_path, clip_path)
    clip_model, clip = load_model(clip_path)
    split = read_features(split_file(features_dir, "training"))
    if split.categories != list(clip.categories):
        raise TinyKWSError("training.npz and the clip model have different categories")
    check_chunk_stride(cfg.chunk_frames, clip.model_config.frame_stride)
    log_per_db = math.log(10) / (10 if split.params.power_spec else 20)
    pool, n_real = clip_pool(split, real_negatives, extra_negatives, log_per_db, real_negative_words)
    for total, what in ((cfg.batch, "a step's streams (batch)"), (cfg.clip_batch, "a step's clips (clip_batch)")):
        split_count(total, cfg.workers, what)
    waves = None
    if cfg.wave_share > 0:  # refused here, before any scoring or spawning, when the audio is not at hand
        waves = wave_source(run, split, (real_negatives, real_negative_paths), (extra_negatives, extra_negative_paths))
        waves.check(np.concatenate([pool.keyword_ids, pool.indices(UNKNOWN)]))
    if cfg.garbage_threshold > 0:
        pool = dataclasses.replace(pool, targets=garbage_targets(clip_model, pool, cfg.garbage_threshold))
    args: tuple = (str(run.root), cfg, pool, len(split.labels), n_real, threads, waves)
    if cfg.workers > 1:  # the children see the clip pool's frames without a copy
        shared = share(pool.features)
        pool = dataclasses.replace(pool, features=shared.numpy())
        args = (str(run.root), cfg, dataclasses.replace(pool, features=np.zeros(0, np.float32)),
                len(split.labels), n_real, threads, waves, shared)
    t0 = time.perf_counter()
    with workers(cfg.workers, _worker_main, args) as group:
        model = _train_rank(group, run, cfg, pool, len(split.labels), n_real, threads, waves)
    model.eval()
    stream_model = dataclasses.replace(
        clip, state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()}, model_config=model.config,
        stream_config=cfg.to_dict(), stream_seconds=round(time.perf_counter() - t0, 1))
    atomic_torch_save(stream_model.to_dict(), best_path)
    return best_path


WITHOUT_WAVES = "set wave_share 0 (`train-stream --wave-share 0`)"  # how to do without waveform rows


def wave_source(run: RunDir, split: Any, *more: tuple[Optional[np.ndarray], Optional[Sequence[str]]]
                ) -> WaveSource:
    """The audio of the stream phase's clips (the training split, then each of `more`'s
    (features, paths) that has clips, in `clip_pool`'s order) and the data's recorded noise
    (the lists' `noise_files`, as the lists stage found them; else the data folder's
    `_background_noise_` WAV files)."""
    n = split.params.n_frames
    paths = list(split.paths)
    if len(paths) != len(split.labels):
        raise TinyKWSError(f"waveform stream rows need the clips' audio, and training.npz names no source files: "
                           f"featurize again with this tinykws, or {WITHOUT_WAVES}")
    for k, (feats, names) in enumerate([(split.features, split.paths)] + list(more)):
        if feats is None or not len(feats):
            continue
        if names is None or len(names) != len(feats):
            raise TinyKWSError("waveform stream rows need the audio file of every negative clip "
                               f"(real_negative_paths / extra_negative_paths), or {WITHOUT_WAVES}")
        if feats.shape[1] != n:  # rows cut from clips (featurize --window-size): bounds not the clip's
            raise TinyKWSError(f"waveform stream rows lay whole clips and need whole-clip features "
                               f"({n} frames a row, not {feats.shape[1]}); featurize without --window-size, "
                               f"or {WITHOUT_WAVES}")
        paths += list(names) if k else []
    if not run.lists_json.is_file():
        raise TinyKWSError(f"{run.lists_json} not found: waveform stream rows lay the run's clips over its data "
                           f"folder's noise; make the lists (`tinykws data lists`), or {WITHOUT_WAVES}")
    listed = [Path(p) for p in read_json(run.lists_json, "remake the lists").get("noise_files") or []]
    if not listed or not all(p.is_file() for p in listed):  # lists of an older tinykws, or moved
        try:
            listed = list(noise_files(run_data_dir(run.lists) / BACKGROUND))
        except TinyKWSError:  # no noise folder, or no recordings in it
            listed = []
    if not listed:
        print(f"waveform stream rows: no background noise recordings for {run.lists}; white noise instead",
              file=sys.stderr)
    return WaveSource(paths, split.params, listed)


def _worker_main(rank: int, world: int, store: str, run_root: str, cfg: StreamTrainConfig,
                 pool: ClipPool, n_train: int, n_real: int, threads: int, waves: Optional[WaveSource],
                 shared: Tensor) -> None:
    """A spawned worker (`stream_workers.workers`): the same loop on its share of the steps."""
    worker_env()
    tune_for_training()
    group = join(rank, world, store)
    pool = dataclasses.replace(pool, features=shared.numpy())
    _train_rank(group, RunDir(run_root), cfg, pool, n_train, n_real, threads, waves)


def _train_rank(group: Group, run: RunDir, cfg: StreamTrainConfig, pool: ClipPool, n_train: int,
                n_real: int, threads: int, waves: Optional[WaveSource] = None) -> Any:
    """One worker's training loop; returns its model (identical on every worker). The
    pool's first `n_train` clips are the training split, whose clip loss runs beside."""
    model, _ = load_model(run.clip)
    if pool.targets is not None:  # garbage outputs (`stream_garbage`): trained on the raw outputs
        model = with_garbage(model, pool.categories)
    if cfg.bounded_state:
        bound_state(model)
    model.train()
    mine = dataclasses.replace(cfg, batch=cfg.batch // group.world, clip_batch=cfg.clip_batch // group.world)
    rng, gen = rank_seeds(cfg.seed, group.rank)
    maker = StreamMaker(pool, mine, rng, n_real=n_real, waves=waves)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay) if cfg.weight_decay > 0
           else torch.optim.Adam(params, lr=cfg.learning_rate))
    fix_support(model, opt)  # a sparse clip model stays sparse: its zeros are re-zeroed every step
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
    start, miner = _resume(run.stream_last, cfg, model, opt, maker, ema)
    all_x = torch.from_numpy(pool.features)
    all_y = torch.from_numpy(pool.labels if pool.targets is None else pool.targets)
    tr_x, tr_y = all_x[:n_train], all_y[:n_train]
    n_neg_clips = round(mine.clip_batch * cfg.clip_negative_share) if len(all_y) > n_train else 0
    recipe = pipeline_recipe(len(tr_y))  # the clip phase's augmentation and class weights
    kw_mask, clip_weight = raw_masks(pool.categories, model.config.garbage_classes,
                                     class_weights(recipe, pool.categories))
    noise = tr_x[tr_y == pool.categories.index(SILENCE)]
    state = model.init_state(mine.batch)
    rows: list[dict[str, Any]] = []
    with torch_threads(threads), progress_bar(enabled=group.leader) as bar:
        task = bar.add_task("stream train", total=cfg.iterations, completed=start)
        for it in range(start, cfg.iterations):
            for g in opt.param_groups:
                g["lr"] = _lr(it, cfg)
            x, target, weight, region, rclass = maker.next_chunk()
            state = _reset_rows(_detach(state), torch.from_numpy(rng.random(mine.batch) < cfg.reset_prob))
            logits, state = model.forward_sequence(x, state, raw=True)
            loss_s = stream_loss(logits, target, weight, inside_keyword(target, rclass, kw_mask),
                                 kw_mask, cfg.inside_wrong_weight, cfg.focal_gamma)
            if cfg.peak_weight > 0:
                loss_s = loss_s + cfg.peak_weight * peak_loss(
                    logits, target, region, rclass, kw_mask, cfg.peak_smooth_frames)
            loss, loss_c = loss_s, torch.zeros(())
            if cfg.clip_weight > 0:
                idx = _clip_draw(gen, n_train, len(all_y), mine.clip_batch, n_neg_clips)
                xb = augment_batch(all_x[idx], recipe, gen, noise, pool.log_per_db)
                loss_c = F.cross_entropy(model(xb, raw=True), all_y[idx], weight=clip_weight,
                                         label_smoothing=recipe.label_smoothing)
                loss = loss + cfg.clip_weight * loss_c
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ls, lc = group.average_grads(params, [loss_s.item(), loss_c.item()])
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            rows.append({"iteration": it + 1, "stream_loss": f"{ls:.4f}", "clip_loss": f"{lc:.4f}",
                         "state_max": f"{float(state.detach().abs().max()):.3f}"
                         if isinstance(state, Tensor) else ""})
            mined = ""
            if cfg.mine_every and (it + 1) % cfg.mine_every == 0 and len(maker.neg):
                if it + 1 < cfg.iterations:  # after the last step no draw would use the scores
                    mined = f" mined {miner.mine(model, maker, cfg, group)}/{len(miner.scores)}"
                    group.check_same(params)
                if group.leader:
                    _append_log(run.stream_log, rows)  # log first, as train.py
                    _save_last(run, model, opt, it + 1, cfg, maker, miner, ema)
                rows = []
            bar.update(task, advance=1, description=f"stream train {it + 1} loss {ls:.3f}/{lc:.3f}{mined}")
    group.check_same(params)
    if group.leader:
        _append_log(run.stream_log, rows)
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    return model


def _clip_draw(gen: torch.Generator, n_train: int, n_pool: int, batch: int, n_neg: int) -> Tensor:
    """The pool indices of one step's clip batch: `batch - n_neg` from the training split
    (the first `n_train`), `n_neg` from the negatives after it. With none, the draw is
    exactly the one of earlier versions, so their runs repeat."""
    idx = torch.randint(0, n_train, (batch - n_neg,), generator=gen)
    if n_neg == 0:
        return idx
    return torch.cat([idx, n_train + torch.randint(0, n_pool - n_train, (n_neg,), generator=gen)])


def _save_last(run: RunDir, model: Any, opt: Any, iteration: int, cfg: StreamTrainConfig,
               maker: "StreamMaker", miner: "Miner", ema: Optional[AveragedModel] = None) -> None:
    """`train/stream_last.pt`: what `_resume` needs to go on from `iteration` (the weights
    there are the last step's, not their average)."""
    atomic_torch_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                       "iteration": iteration, "stream_config": cfg.to_dict(),
                       "negative_weights": maker.neg_weight.tolist(),
                       "negative_scores": miner.scores.tolist(), "mine_pos": miner.pos,
                       "ema": ema.state_dict() if ema is not None else None}, run.stream_last)


def _resume(last_path: Path, cfg: StreamTrainConfig, model: Any, opt: Any,
            maker: "StreamMaker", ema: Optional[AveragedModel] = None) -> tuple[int, "Miner"]:
    """(first iteration, miner): where a killed stream phase with the same config stopped
    (`train/stream_last.pt`: weights, optimizer, negative weights and mining state), else
    the start."""
    miner = Miner.for_maker(maker)
    if not last_path.is_file():
        return 0, miner
    ck = load_torch(last_path)
    saved = ck.get("stream_config")  # compared as a config: a field added since takes its default
    if not isinstance(saved, dict) or StreamTrainConfig.from_dict(saved) != cfg:
        return 0, miner
    model.load_state_dict(ck["state_dict"])
    opt.load_state_dict(ck["optimizer"])
    maker.set_negative_weights(np.asarray(ck["negative_weights"]))
    if "negative_scores" in ck:
        miner = Miner(np.asarray(ck["negative_scores"], np.float64), int(ck["mine_pos"]))
    if ema is not None:
        ema.load_state_dict(ck["ema"])  # the same config, so it was saved with one
    return int(ck["iteration"]), miner


def _append_log(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
