"""`tinykws pipeline`: every stage in order, into one run folder.

Each stage is a plain function of its own module; this file only decides the order, the
folders, and the defaults of the embedded job. Stages that are already done are not
redone: the synthesized data and the features carry cache keys, training resumes from
`train/last.pt` after a kill, and a finished training run is kept.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

from tinykws.config import PRESETS, TrainConfig
from tinykws.errors import TinyKWSError
from tinykws.run import (
    PIPELINE_BUILDS, Build, RunDir, atomic_write_text, cache_json, features_stamp, file_sha256,
    read_features, read_marker, run_changes, same_run,
)

from tinykws.pipeline_negatives import NegativesPlan, finish_negatives, start_negatives, stop_negatives

# The stages' imports wait inside the steps that run them: a stage loads (torch, onnx, the
# emulator) when its step runs. The background negatives maker is `tinykws.pipeline_negatives`.
console = Console(stderr=True)

# Synthesized non-keyword utterances the pipeline makes for the stream phase. 20,000 (of the
# `data negatives` default 50,000) keeps `pipeline --data DIR` within 30 minutes on 2 cores;
# the stream phase draws ~30,000 negative words, so each is heard about 1.5 times.
NEGATIVE_UTTERANCES = 20_000
NEGATIVE_BACKGROUND = 2_000

# Voices per word of the synthesized set a real-data (`--data`) run is pretrained on. The
# clip phase then starts from that model instead of from random weights (docs/benchmarks.md,
# "Issue 10, fifth round: pretraining on synthesized speech").
PRETRAIN_PER_WORD = 400
# The stream phase of the embedded default (the full preset on the embedded data) and of a
# --data run: StreamTrainConfig's steps x the frame stride x these, what their 10- and 15-minute
# budgets allow (x 1.5 raised recall at issue 19's acceptance point from 26 / 33 to 38 / 38 %, x 2
# the dev keyword stream's at <= 6 FA/h from 31 / 30 to 44 / 39 %). The embedded default also
# decides later: target_delay 35 raised its acceptance point from 23.0 / 32.5 to 36.3 / 37.4 % and lowered
# the dev stream's, 41.0 -> 37.9 % (one seed; docs/benchmarks.md, Issue 19, 17th and 14th rounds)
SYNTHESIZED_STREAM_STEPS, REAL_DATA_STREAM_STEPS = 1.5, 2
# Its keyword window (target_lead + target_frames) is as long as the detector's 300-ms mean
# (`DetectorConfig.smoothing_ms`: 30 frames): with 15 frames a keyword's class was >= 0.9 on
# a median of 26 score steps (seed 0), so the mean fell short of what the raw scores knew (86
# of 235 keywords under 0.97 smoothed had raw peaks >= 0.98). 30 frames put the keywords' share at
# >= 0.98 from 0.24-0.31 to 0.57-0.59 on six paired seeds, and recall at issue 19's acceptance
# point by 4.6 points on their mean (SE 3.7; up on four of six), at <= 6 FA/h on both streams
# by 6.3 (SE 2.2) (docs/benchmarks.md, Issue 19, 29th round)
SYNTHESIZED_DECISION = {"target_delay": 35, "target_frames": 30}
# Every pipeline's stream phase lays its rows in waveform, as the measured streams are made
# (`tinykws.stream_waves`): on the embedded default it raised recall at issue 19's acceptance
# point by 6.0 points on the mean of eight paired runs (standard error 4.3: likely, not beyond
# doubt; the keywords' peaks rose on all eight), on the dev data at <= 6 FA/h on both seeds
# (24.8 / 22.5 -> 33.4 / 26.6 %), for a stream phase 1.34x as long (docs/benchmarks.md, Issue
# 19, 28th round)
STREAM_WAVES = {"wave_share": 1.0}


@dataclass(frozen=True)
class PipelineConfig:
    """What the user chose; everything else is each stage's own default."""

    # None: synthesize the embedded default dataset. Several folders (a tuple): clips from
    # all of them, validation/testing from those with lists (`make_lists`); the first is
    # the main one (background noise, evaluation).
    data: Optional[Path | tuple[Path, ...]] = None
    out: Path = Path("runs/default")
    task: str = "google12"
    epochs: Optional[int] = None  # None: the recipe's choice for the training-set size
    quick: bool = False  # tiny sizes everywhere: the CI smoke path
    seed: int = 0
    # Synthesized clips (= voices) per word; None: 8 quick, 200 full (60 -> 200 voices: 47 ->
    # ~60 % on real speech, 400 nothing more; docs/benchmarks.md, "Generalisation ...")
    per_word: Optional[int] = None
    verify_clips: Optional[int] = None  # clips on the emulated device a build; None: 4 quick, 20 full
    stream_minutes: Optional[float] = None  # streaming check length; None: 0.5 quick, 3 full
    # Second training phase on long streams (tinykws.train_stream) with synthesized
    # non-keyword speech, for one never-reset state as the Cortex-M4 runs it. On the dev data
    # it fires 3-6x less on held-apart speech at equal recall than the clip model in `window`
    # mode (docs/benchmarks.md, "Streaming"); False: the clip model alone, in `window` mode.
    streaming: bool = True
    # The stream phase's non-keyword speech: a `data negatives` folder (made or finished there);
    # None: the user cache's folder for the set's parameters (`cached_negatives_dir`)
    negatives: Optional[Path] = None
    negative_utterances: Optional[int] = None  # None: NEGATIVE_UTTERANCES (quick: 150)
    # Stream-phase steps; None: StreamTrainConfig's 1500 x the frame stride x SYNTHESIZED_ or
    # REAL_DATA_STREAM_STEPS (quick: quick_stream_config's); the largest lever measured
    stream_steps: Optional[int] = None
    # Processes sharing the stream phase's steps, one a core; None: StreamTrainConfig's 2
    # (quick: 1). Another count draws other streams, so its model differs
    stream_workers: Optional[int] = None
    # With --data: train on the embedded synthesized set first (RUN/pretrain). Off: on the
    # dev data it raised clip accuracy but lowered keyword-stream recall in all three runs
    # (docs/benchmarks.md, "Issue 10, fifth round")
    pretrain: bool = False
    # The model (`config.PRESETS`): "full" (2 x 72 GRU; --data: `RECORDED_FULL`) or "tiny"
    preset: str = "full"
    # Frames per recurrent step; None: the preset's (full 2, tiny 1). 1 is the seed's model,
    # whose int8 build fits in 72 KB of flash (docs/device-guide.md, "Choosing a preset")
    frame_stride: Optional[int] = None
    # After the stream phase, train a verifier (`tinykws.second_look`) and have it confirm each
    # detection at this probability; None: off. Python only so far: the C runs the first stage
    second_look: Optional[float] = None


@dataclass
class StageTimer:
    """Wall time of each stage, for the closing summary and `pipeline.json`."""

    rows: list[tuple[str, float, str]] = dataclasses.field(default_factory=list)

    def run(self, name: str, fn: Callable[[], Any], note: Callable[[Any], str] = lambda _: "") -> Any:
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        result = fn()
        self.rows.append((name, time.perf_counter() - t0, note(result)))
        return result


def _synth(cfg: PipelineConfig, out: Path) -> Path:
    """The embedded default dataset (espeak-ng), made once per run folder."""
    from tinykws.data.synth import synthesize

    per_word = cfg.per_word or (8 if cfg.quick else 200)
    synthesize(out, per_word=per_word, seed=cfg.seed)
    return out


def _train(cfg: PipelineConfig, run: Path, init: Optional[Path] = None,
           epochs: Optional[int] = None, threads: int = 0) -> Any:
    """Train with the pipeline recipe (from the weights of `init` when given) on `threads`
    torch threads (0: torch's default); resume a killed run, keep a finished one (same
    recipe, start and features: `train/done.json`)."""
    from tinykws.train import train

    rd = RunDir(run)
    n_train = _rows(rd.features_file("training"))  # labels only: features may be GBs
    recipe = dataclasses.replace(_recipe(cfg, n_train), seed=cfg.seed, threads=threads,
                                 **({} if epochs is None else {"epochs": epochs}))
    marker = {"config": recipe.to_dict(), "init": None if init is None else file_sha256(init),
              # the data it learns from: other lists (--data, a new default) train anew
              "features": [features_stamp(rd.features_file(s)) for s in ("training", "validation")]}
    done = rd.train_done
    if rd.best.is_file():
        state = read_marker(done)
        if same_run(state, marker, TrainConfig):
            console.print(f"training already finished ({rd.best}); delete {done} to train again")
            return None
        if state is not None:
            console.print(f"training again: {run_changes(state, marker, TrainConfig)}")
    resume = False
    # last.pt of another recipe, start or data (a finished run's, before the data changed): no run to resume
    if rd.last.is_file() and same_run(read_marker(rd.train_started), marker, TrainConfig):
        from tinykws.checkpoint import load_checkpoint

        resume = load_checkpoint(rd.last).train_config == recipe
        if resume:
            console.print(f"resuming the killed training run from {rd.last}")
    for stale in (rd.clip, rd.stream_last, rd.stream_done, rd.stream_log):
        stale.unlink(missing_ok=True)  # a new clip model: stream anew
    rd.train.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rd.train_started, json.dumps(marker, indent=2))
    result = train(rd.features, run, recipe, resume=resume, init=init)
    atomic_write_text(done, json.dumps(marker, indent=2))
    return result


def _recipe(cfg: PipelineConfig, n_train: int) -> Any:
    """The clip phase's `TrainConfig` for n_train clips: the preset's, with --frame-stride."""
    from tinykws.train import pipeline_recipe

    recipe = pipeline_recipe(n_train, quick=cfg.quick, preset=cfg.preset, recorded=cfg.data is not None)
    return recipe if cfg.frame_stride is None else dataclasses.replace(recipe, frame_stride=cfg.frame_stride)


def _threads_beside(maker) -> int:
    """Torch threads for training beside the background negatives maker `maker`: one while
    it works on the other core, where two threads wait on each other at every all-steps
    GEMM (the clip phase ran 1.91x slower on two beside it; alone, two are ~12 % faster, so
    0, torch's default, when it is done: `bench/clip_threads.py`)."""
    return 1 if maker is not None and maker.is_alive() else 0


def _pretrain_data(cfg: PipelineConfig, run: Path) -> Optional[Path]:
    """With --data: the embedded synthesized set with the real run's classes, listed and
    featurized in RUN/pretrain. None when it cannot have the same classes (a task whose
    words espeak-ng cannot make into the same class list)."""
    from tinykws.data.speech_commands import BACKGROUND, make_lists, read_categories
    from tinykws.data.synth import OTHER_WORDS, synthesize
    from tinykws.dataset import FeaturizeConfig, featurize_lists
    from tinykws.labels import NON_KEYWORDS

    pre, categories = RunDir(run / "pretrain"), read_categories(RunDir(run).lists)
    keywords = [c for c in categories if c not in NON_KEYWORDS]
    words = keywords + [w for w in OTHER_WORDS if w not in keywords]
    synthesize(pre.data, words=words, per_word=8 if cfg.quick else PRETRAIN_PER_WORD, seed=cfg.seed)
    try:
        make_lists(pre.data, cfg.task, pre.lists, seed=cfg.seed)
    except TinyKWSError as e:
        console.print(f"no pretraining: the synthesized set cannot be listed as task {cfg.task!r} ({e})")
        return None
    if read_categories(pre.lists) != categories:
        console.print(f"no pretraining: the synthesized set's classes {read_categories(pre.lists)} "
                      f"differ from the run's {categories}")
        return None
    noise = pre.data / BACKGROUND
    featurize_lists(pre.data, pre.lists, pre.features,
                    FeaturizeConfig(noise_dir=noise if noise.is_dir() else None, seed=cfg.seed))
    return run / "pretrain"


def data_dirs(cfg: PipelineConfig) -> tuple[Path, ...]:
    """The `--data` folders (empty for the embedded synthesized set)."""
    if cfg.data is None:
        return ()
    return (Path(cfg.data),) if isinstance(cfg.data, (str, Path)) else tuple(Path(d) for d in cfg.data)


def _check_options(cfg: PipelineConfig) -> None:
    """Refuse bad options up front, not after minutes of synthesis and training (and never
    read 0 as 'the default')."""
    from tinykws.data.speech_commands import task_has_unknown

    counts = {"--epochs": cfg.epochs, "--per-word": cfg.per_word,
              "--verify-clips": cfg.verify_clips, "--negative-utterances": cfg.negative_utterances,
              "--stream-steps": cfg.stream_steps, "--stream-workers": cfg.stream_workers,
              "--frame-stride": cfg.frame_stride}
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise TinyKWSError(f"{flag} must be >= 1, not {value}")
    if cfg.stream_steps is not None and not cfg.streaming:
        raise TinyKWSError("--stream-steps sets the stream phase's length: drop --no-streaming, or the steps")
    if cfg.stream_workers is not None and not cfg.streaming:
        raise TinyKWSError("--stream-workers shares the stream phase: drop --no-streaming, or the workers")
    if cfg.second_look is not None and not cfg.streaming:
        raise TinyKWSError("--second-look's verifier learns from the stream phase's negatives: drop --no-streaming")
    if cfg.second_look is not None and not task_has_unknown(cfg.task):
        raise TinyKWSError("--second-look's verifier learns from negatives as `_unknown_`, and "
                           "--task all has no `_unknown_` class: name the keywords, or drop --second-look")
    if cfg.second_look is not None and not 0 <= cfg.second_look <= 1:  # NaN too
        raise TinyKWSError(f"--second-look is a probability in [0, 1], not {cfg.second_look}")
    if cfg.preset not in PRESETS:
        raise TinyKWSError(f"unknown --preset {cfg.preset!r}; use one of {', '.join(PRESETS)}")
    _stream_config(cfg) if cfg.streaming else _recipe(cfg, 0)  # refused here, not after the data
    if cfg.negatives is not None and cfg.negatives.exists() and not cfg.negatives.is_dir():
        raise TinyKWSError(f"--negatives {cfg.negatives} is a file, not a folder")


def negatives_plan(cfg: PipelineConfig, run: Path) -> Optional[NegativesPlan]:
    """The negatives set of this run (from its lists' keywords), or None for a task without
    an `_unknown_` class (every word is a keyword: there is nothing to call a negative)."""
    from tinykws.data.negatives import NegativesConfig, cached_negatives_dir
    from tinykws.data.speech_commands import read_categories
    from tinykws.labels import NON_KEYWORDS, UNKNOWN

    categories = read_categories(RunDir(run).lists)
    if UNKNOWN not in categories:
        return None
    keywords = tuple(c for c in categories if c not in NON_KEYWORDS)
    if cfg.quick:
        sizes = dict(utterances=cfg.negative_utterances or 150, words=60, phrases=10,
                     near_miss_count=2, voices=24, background=30, noise_seconds=5.0)
    else:
        sizes = dict(utterances=cfg.negative_utterances or NEGATIVE_UTTERANCES,
                     background=NEGATIVE_BACKGROUND)
    # default: the user cache, shared by every run with the same keywords, seed and sizes
    config = NegativesConfig(keywords=keywords, seed=cfg.seed, **sizes)
    folder = cfg.negatives or cached_negatives_dir(config)
    return NegativesPlan(Path(folder), config)


def _negatives(cfg: PipelineConfig, run: Path, proc=None) -> Optional[Path]:
    """Make (or reuse, or finish after stopping the background maker `proc`) the synthesized
    non-keyword speech and featurize its training part (RUN/features/negatives.npz).

    Returns the negatives folder, or None for a task without an `_unknown_` class.
    """
    from tinykws.data.cache import stale_notice
    from tinykws.dataset import featurize_spare
    from tinykws.labels import UNKNOWN
    from tinykws.stream_training import negative_features

    rd = RunDir(run)
    plan = negatives_plan(cfg, run)
    if plan is None:
        console.print(f"task {cfg.task!r} has no {UNKNOWN} class: the stream phase uses no negatives")
        return None
    console.print(f"negatives: {plan.folder}")
    finish_negatives(plan, proc)
    if cfg.negatives is None and (notice := stale_notice()):  # an upgrade's left-overs in the cache
        console.print(notice)
    negative_features(plan.folder, rd.features, run)  # featurized once, checked against training.npz
    params = read_features(rd.features_file("training"), features=False).params
    if featurize_spare(rd.lists, rd.spare_features, params) is None:  # no spare real clips
        rd.spare_features.unlink(missing_ok=True)
        cache_json(rd.spare_features).unlink(missing_ok=True)
    return plan.folder


def _stream_config(cfg: PipelineConfig) -> Any:
    """The stream phase's `StreamTrainConfig` for these options (refused when the workers
    do not divide a step's streams and clips)."""
    from tinykws.stream_training import StreamTrainConfig, check_chunk_stride, quick_stream_config
    from tinykws.stream_workers import split_count

    scfg = quick_stream_config() if cfg.quick else StreamTrainConfig()
    stride = _recipe(cfg, 0).frame_stride  # s x the steps in about the same time
    default = not cfg.quick and cfg.data is None and cfg.preset != "tiny"  # the embedded default
    more = REAL_DATA_STREAM_STEPS if cfg.data is not None and not cfg.quick else SYNTHESIZED_STREAM_STEPS if default else 1
    scfg = dataclasses.replace(scfg, **(SYNTHESIZED_DECISION if default else {}), **STREAM_WAVES, seed=cfg.seed,
                               workers=cfg.stream_workers or scfg.workers,
                               iterations=cfg.stream_steps or round(scfg.iterations * stride * more))
    for total, what in ((scfg.batch, "a step's streams"), (scfg.clip_batch, "a step's clips")):
        split_count(total, scfg.workers, what)
    check_chunk_stride(scfg.chunk_frames, stride)
    return scfg


def _train_stream(cfg: PipelineConfig, run: Path, with_negatives: bool) -> Any:
    """The stream phase after the clip phase; a finished one is kept (`stream_done.json`:
    its config and the stamps of the negatives' features)."""
    from tinykws.stream_training import StreamTrainConfig, train_stream

    scfg = _stream_config(cfg)
    rd = RunDir(run)
    feats, spare = rd.negative_features, rd.spare_features
    key = {"config": scfg.to_dict(), "negatives": None if not with_negatives else
           features_stamp(feats), "spare": features_stamp(spare) if with_negatives else None}
    done = rd.stream_done
    state = read_marker(done)
    if same_run(state, key, StreamTrainConfig):
        console.print(f"stream training already finished; delete {done} to train again")
        return None
    if state is not None:
        console.print(f"stream training again: {run_changes(state, key, StreamTrainConfig)}")
    extra = read_features(feats) if with_negatives else None  # [N, 98, 32], all _unknown_
    real = read_features(spare) if with_negatives and spare.is_file() else None  # [R, 98, 32]
    path = train_stream(run / "features", run, scfg, extra_negatives=None if extra is None else extra.features,
                        real_negatives=None if real is None else real.features,
                        real_negative_words=None if real is None else real.words,
                        real_negative_paths=None if real is None else list(real.paths),
                        extra_negative_paths=None if extra is None else list(extra.paths))
    atomic_write_text(done, json.dumps(key, indent=2))
    return path


def _train_verifier(cfg: PipelineConfig, run: Path) -> Optional[Path]:
    """The second look's verifier (RUN/train/verifier.pt); None when the one there is current
    (the same recipe on the same rows: `second_look.verifier_is_current`)."""
    from tinykws.second_look import train_verifier, verifier_is_current

    quick = dict(epochs=2, hidden_units=16, batch_size=32) if cfg.quick else {}
    if verifier_is_current(run, **quick):
        return None
    return train_verifier(run, threads=2, **quick)


def _set_second_look(run: Path, value: Optional[float]) -> None:
    """The run's detector with (or without) the second look, before its threshold is chosen."""
    from tinykws.detector_config import load_detector, save_detector

    config, op = load_detector(run)
    if config.second_look != value:
        save_detector(run, dataclasses.replace(config, second_look=value), op)


def _verify(run: Path, build: Build, clips: int) -> Any:
    from tinykws.device import VerifyConfig, format_report, verify

    report = verify(RunDir(run).device(build), VerifyConfig(run_dir=run, max_clips=clips))
    console.print(format_report(report))
    if not report.ok:
        raise TinyKWSError(
            f"the emulated Cortex-M4 ({build.name} build) disagrees with its Python reference; "
            f"see {RunDir(run).verify_report(build)}"
        )
    return report


def _operating_point_line(op: Any) -> str:
    """The pipeline table's line for the chosen threshold."""
    neg = ("" if op.negative_fa_per_hour is None
           else f", {op.negative_fa_per_hour:.1f}/h on validation negatives")
    return (f"threshold {op.threshold:.4f}: {op.recall:.0%} recall at {op.fa_per_hour:.1f} false "
            f"alarms/h on validation speakers{neg}" + ("" if op.met else " (target not met)"))


def _compile(run: Path, build: Build) -> Any:
    from tinykws.codegen import compile_run

    return compile_run(run, RunDir(run).device(build), float_abi=build.float_abi,
                       precision=build.precision)


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run every stage into `cfg.out`; returns the path of the report."""
    from tinykws.data.speech_commands import make_lists

    run, rd = cfg.out, RunDir(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]tinykws pipeline[/] -> {run}")
    t = StageTimer()

    _check_options(cfg)  # before any work
    if cfg.data is None:
        data = t.run("data synth", lambda: _synth(cfg, rd.data), lambda p: str(p))
    else:
        dirs = data_dirs(cfg)
        for d in dirs:
            if not d.is_dir():
                raise TinyKWSError(f"--data {d} is not a folder")
        data = dirs[0]
    t.run(
        "data lists",
        lambda: make_lists(data_dirs(cfg) or data, cfg.task, rd.lists, seed=cfg.seed),
        lambda s: f"{len(s.categories)} classes, "
        + ", ".join(f"{k} {s.total(k)}" for k in ("training", "validation", "testing")),
    )
    # the negatives set is made in the background while the clip phase trains
    maker = start_negatives(negatives_plan(cfg, run), run) if cfg.streaming else None
    try:
        return _after_lists(cfg, run, data, t, maker)
    finally:
        stop_negatives(maker)


def _after_lists(cfg: PipelineConfig, run: Path, data: Path, t: "StageTimer", maker) -> Path:
    """The stages after the lists (`run_pipeline`); `maker`: the background negatives maker."""
    from tinykws.data.speech_commands import BACKGROUND
    from tinykws.dataset import FeaturizeConfig, featurize_lists
    from tinykws.evaluate import evaluate
    from tinykws.export import export_run
    from tinykws.quant.calibrate import quantize_run
    from tinykws.report import write_report
    from tinykws.stream_eval import choose_threshold, stream_metrics

    rd = RunDir(run)
    noise = data / BACKGROUND
    t.run(
        "featurize",
        lambda: featurize_lists(
            data, rd.lists, rd.features,
            FeaturizeConfig(noise_dir=noise if noise.is_dir() else None, seed=cfg.seed),
        ),  # fmt: skip
        lambda paths: ", ".join(f"{k} {_rows(p)}" for k, p in paths.items()) + " rows [N, 98, 32]",
    )
    init = None  # the pretrained checkpoint the clip phase starts from
    if cfg.data is not None and cfg.pretrain:
        pre = t.run("pretrain data", lambda: _pretrain_data(cfg, run),
                    lambda p: "skipped" if p is None
                    else f"synthesized training {_rows(RunDir(p).features_file('training'))}")
        if pre is not None:
            t.run("pretrain", lambda: _train(cfg, pre, threads=_threads_beside(maker)),
                  lambda r: "kept the finished run" if r is None
                  else f"best validation {r.best_val_acc:.3f} (synthesized voices)")
            init = RunDir(pre).best
    t.run(
        "train",
        lambda: _train(cfg, run, init=init, epochs=cfg.epochs, threads=_threads_beside(maker)),
        lambda r: "kept the finished run" if r is None else f"best validation {r.best_val_acc:.3f}",
    )
    negatives_dir = None  # the negatives folder, when the stream phase made one
    if cfg.streaming:
        negatives_dir = t.run(
            "data negatives", lambda: _negatives(cfg, run, maker),
            lambda p: "none (no _unknown_ class)" if p is None
            else f"{_rows(rd.negative_features)} training utterances",
        )
        t.run("train streaming", lambda: _train_stream(cfg, run, negatives_dir is not None),
              lambda r: "kept the finished run" if r is None else "one never-reset state")
    if cfg.second_look is not None and negatives_dir is not None:
        t.run("train verifier", lambda: _train_verifier(cfg, run),
              lambda r: "kept the finished one" if r is None else f"{r.name}, second look at {cfg.second_look:g}")
    _set_second_look(run, cfg.second_look if negatives_dir is not None else None)
    # the detector threshold for <= 1 false alarm an hour on validation speakers and <= 2 on
    # an hour of validation negatives (detector.json, read by detect, the report and the
    # generated C detector)
    t.run(
        "operating point",
        lambda: choose_threshold(run, minutes=1.0 if cfg.quick else 10.0, seed=cfg.seed,
                                 negatives=negatives_dir,
                                 negative_minutes=1.0 if cfg.quick else 60.0),
        _operating_point_line,
    )
    t.run("export", lambda: export_run(run), lambda d: ", ".join(p.name for p in d.values()))
    clips = cfg.verify_clips or (4 if cfg.quick else 20)
    t.run("quantize", lambda: quantize_run(run),
          lambda r: "integer vs float on validation: argmax agreement "
          f"{r.ptq.validation.argmax_agreement:.1%}")  # fmt: skip
    for build in PIPELINE_BUILDS:
        t.run(f"compile ({build.name})", lambda b=build: _compile(run, b), lambda r: r.toolchain)
        t.run(f"verify ({build.name})", lambda b=build: _verify(run, b, clips),
              lambda r: f"{r.n_clips} clips match")  # fmt: skip
    t.run(
        "evaluate",
        lambda: evaluate(run, data, backend="torch"),
        lambda r: f"testing accuracy {r.accuracy:.3f} on {r.n} clips",
    )
    t.run(
        "evaluate (int8)",
        lambda: evaluate(run, data, backend="int8"),
        lambda r: f"testing accuracy {r.accuracy:.3f} on {r.n} clips (integer path)",
    )
    minutes = cfg.stream_minutes or (0.5 if cfg.quick else 3.0)
    t.run(
        "stream",
        lambda: stream_metrics(run, minutes=minutes, seed=cfg.seed, negatives=negatives_dir,
                               negative_minutes=1.0 if cfg.quick else 10.0),
        lambda d: f"recall {d.at_threshold.recall:.0%} at {d.at_threshold.fa_per_hour:.0f} false "
        f"alarms/h (threshold {d.at_threshold.threshold:.4f})",
    )
    _save_stages(t, run)  # the report's stage table is this run's, not the previous one's
    report = t.run("report", lambda: write_report(run), lambda p: str(p))

    _summary(t, run)
    console.print(f"\n[bold green]report:[/] {report}")
    print(report)
    return report


def _rows(npz: Path) -> int:
    """Rows of a feature file, without loading its features."""
    return len(read_features(npz, features=False))


def _summary(t: StageTimer, run: Path) -> None:
    """Print the stage timings and keep them in `pipeline.json`."""
    table = Table(title="tinykws pipeline")
    for col in ("stage", "seconds", "result"):
        table.add_column(col)
    for name, secs, note in t.rows:
        table.add_row(name, f"{secs:.1f}", note)
    console.print(table)
    _save_stages(t, run)


def _save_stages(t: StageTimer, run: Path) -> None:
    """The stages run so far, with their times and results, into `pipeline.json`."""
    atomic_write_text(
        RunDir(run).pipeline_json,
        json.dumps([{"stage": n, "seconds": round(s, 2), "result": r} for n, s, r in t.rows], indent=2)
    )
