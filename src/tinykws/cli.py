"""The `tinykws` command line: one subcommand per pipeline stage, nothing else.

Every command is a thin wrapper over a plain function in the stage's module, so tests and
users can call the same code from Python. Errors meant for the user (TinyKWSError) are
printed as one line and exit with status 2; they never show a traceback.

Layout: each stage owns one clearly marked section below. Each command imports its stage
inside its function, on purpose: `tinykws --help` and the light commands start without
loading torch, onnx or the emulator, and a missing optional extra fails only the command
that needs it (tests/test_imports.py lets it and cli_data.py alone do so).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tinykws import cli_detect
from tinykws.cli_data import data_app
from tinykws.config import TrainConfig
from tinykws.errors import TinyKWSError, check_seed

app = typer.Typer(
    name="tinykws",
    help="Speech recordings -> keyword spotter on a Cortex-M4, every step checked.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")  # `tinykws data ...`: tinykws.cli_data
app.command()(cli_detect.detect)  # `tinykws detect` and `train-verifier`: tinykws.cli_detect
app.command("train-verifier")(cli_detect.train_verifier_cmd)

console = Console(stderr=True)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: exit with `run`'s status."""
    sys.exit(run(argv))


def run(argv: Optional[list[str]] = None) -> int:
    """Run the CLI on `argv` (default: sys.argv[1:]) and return its exit status.

    0 done; 1 a check failed (`verify`); 2 bad input or usage (one line `error: ...` on
    stderr, never a traceback); 130 interrupted. Only typer's public API is used: typer
    vendors click, so `import click` is not guaranteed to work.
    """
    try:
        rv = app(args=argv, prog_name="tinykws", standalone_mode=False)
    except TinyKWSError as e:
        return _error(str(e))
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted()
    except typer.TyperException as e:  # usage errors: unknown command, bad option value...
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `tinykws`: help already shown
            return 0
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return _error(e.format_message() + hint, e.exit_code)
    except ModuleNotFoundError as e:  # an optional dependency (pyproject extras) is missing
        extra = _EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        return _error(f"this command needs {e.name}, which is not installed: "
                      f"pip install 'tinykws[{extra}]'")
    except OSError as e:  # the environment: permission denied, disk full, no such file
        where = f": {e.filename}" if e.filename else ""
        return _error(f"{e.strerror or e}{where}")
    # standalone_mode=False returns typer.Exit's code (verify's failed check) or the
    # command's return value (None); typer turns Ctrl-C inside a command into Exit(130)
    if rv == 130:
        return _interrupted()
    return rv if isinstance(rv, int) else 0


def _interrupted() -> int:
    """Say that Ctrl-C stopped the command (typer exits 130 silently); return 130."""
    console.print("[yellow]interrupted[/]", highlight=False)
    return 130


# top-level module -> the pyproject extra that installs it
_EXTRAS = {"torch": "train", "onnx": "export", "onnxruntime": "export", "unicorn": "device",
           "elftools": "device", "ziglang": "device", "sounddevice": "live",
           "espeakng_loader": "synth"}


def _error(message: str, status: int = 2) -> int:
    """Print `error: message` as one line on stderr; return `status`."""
    line = " ".join(message.split())  # one line, whatever the message holds
    # soft_wrap: one line however narrow the terminal; escape: messages may hold [brackets]
    console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, highlight=False)
    return status


def _run_lock(run_dir: Path, create: bool = False):
    """The run folder's write lock (`RunDir.lock`) for a command that writes a run; under
    torchrun only rank 0 takes it (its peers write through rank 0). Without `create`, a
    missing folder is left missing (the command reports it)."""
    import contextlib
    import os

    from tinykws.run import RunDir

    if os.environ.get("RANK", "0") != "0" or not (create or Path(run_dir).is_dir()):
        return contextlib.nullcontext()
    return RunDir(run_dir).lock()


# ---------------------------------------------------------------- featurize (issue 4)


@app.command()
def featurize(
    data_dir: Path = typer.Argument(..., help="Speech Commands-layout folder the lists point into."),
    lists: Path = typer.Option(..., help="Folder with categories.txt and the *_list.txt files."),
    out: Path = typer.Option(..., help="Folder for training.npz, validation.npz, testing.npz."),
    window_size: int = typer.Option(98, help="Frames per dataset row (98 = one 1-s clip)."),
    shift: int = typer.Option(98, help="Frames between rows cut from one clip."),
    noise_dir: Optional[Path] = typer.Option(None, help="Folder of background-noise .wav files, mixed into training clips only."),
    max_noise_ratio: float = typer.Option(0.1, help="Noise gain is drawn uniformly from [0, this]."),
    noise_selection: float = typer.Option(1.0, help="Fraction of training clips that get noise."),
    workers: Optional[int] = typer.Option(None, help="Worker threads (default: one per CPU core)."),
    seed: int = typer.Option(0, help="Seed for the noise draws."),
    window: str = typer.Option("rectangular", help="Analysis window: rectangular (the seed's) | hamming | hann."),
    on_error: str = typer.Option("raise", help="raise | skip: what to do with an unreadable clip (skip lists them at the end)."),
) -> None:
    """Log-mel features of every listed clip -> <split>.npz (the seed's make_dataset.py). Cached."""
    from tinykws.dataset import FeaturizeConfig, featurize_lists
    from tinykws.features import FeatureParams

    featurize_lists(data_dir, lists, out, FeaturizeConfig(
        FeatureParams(window=window), noise_dir=noise_dir, max_noise_ratio=max_noise_ratio,
        noise_selection=noise_selection, window_size=window_size, shift=shift, workers=workers,
        seed=seed, on_error=on_error))


# ---------------------------------------------------------------- train / export (issue 5)


# `tinykws train` options: one per TrainConfig field, default from TrainConfig (written
# once, there); here only their flags and help. A field missing here fails a test.
TRAIN_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "epochs": ((), "Training epochs."),
    "learning_rate": (("--learning-rate", "-lr"), "Peak learning rate."),
    "lr_min": ((), "Lowest learning rate of the cosine schedule."),
    "lr_scheduler": ((), "cosine (per iteration) | constant."),
    "lr_peaks": ((), "Warm restarts of the cosine schedule."),
    "batch_size": (("--batch-size", "-bs"), "Clips per step (all processes)."),
    "architecture": ((), "fastgrnn | fastrnn | gru | lstm."),
    "hidden_units": (("--hidden-units", "-hu"), "Hidden units per layer."),
    "num_layers": ((), "Recurrent layers (1-3)."),
    "wrank": ((), "Rank of W (FastGRNN/FastRNN); default full."),
    "urank": ((), "Rank of U (FastGRNN/FastRNN); default full."),
    "w_sparsity": ((), "Fraction of W kept by hard thresholding."),
    "u_sparsity": ((), "Fraction of U kept by hard thresholding."),
    "frame_stride": ((), "Frames per recurrent step, stacked (1 = every frame, as the seed)."),
    "normalize": (("--normalize/--no-normalize",), "Training mean/std in the model."),
    "rolling": ((), "Seed's rolling training for streaming (state carried across clips)."),
    "max_rolling_length": ((), "Epochs of rolling warm-up at most (seed's meaning)."),
    "optimizer": ((), "sgd (Nesterov, EdgeML) | adam."),
    "momentum": ((), "SGD momentum (Nesterov when > 0)."),
    "weight_decay": ((), "L2 weight decay."),
    "time_shift": ((), "Augment: max shift in frames."),
    "gain_db": ((), "Augment: random gain within +-dB."),
    "noise_prob": ((), "Augment: chance to mix in background noise."),
    "noise_db": ((), "Augment: level range LO HI of the mixed noise, dB re its recording."),
    "time_masks": ((), "Augment: SpecAugment time masks."),
    "time_mask_width": ((), "Augment: widest time mask, frames."),
    "freq_masks": ((), "Augment: SpecAugment frequency masks."),
    "freq_mask_width": ((), "Augment: widest frequency mask, bands."),
    "time_stretch": ((), "Augment: max relative change of speaking rate (0.1: 0.9-1.1x)."),
    "freq_warp": ((), "Augment: max relative stretch of the mel axis (VTLP)."),
    "label_smoothing": ((), "Label smoothing of the cross-entropy."),
    "unknown_weight": ((), "Loss weight of the _unknown_ class (1: plain cross-entropy)."),
    "distill_weight": ((), "Share of the loss matching --teacher's softened outputs (0: off)."),
    "distill_temperature": ((), "Softmax temperature of the distillation term."),
    "seed": ((), "Random seed."),
    "device": ((), "auto | cpu | cuda."),
    "threads": ((), "CPU threads (0 = one per core; 1 is often fastest on a busy machine)."),
}


def config_options(cls: type, options: dict[str, tuple[tuple[str, ...], str]]):
    """Decorator: add one typer option per `options` field of the dataclass `cls` (flags,
    help; type and default from the dataclass) to a command, which receives them as one
    `cls` instance in its `config` parameter."""
    import functools
    import inspect
    import typing
    from dataclasses import MISSING, fields

    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    def wrap(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != "config"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[name],
                              default=typer.Option(defaults[name], *flags, help=help))
            for name, (flags, help) in options.items()
        ]  # fmt: skip

        @functools.wraps(fn)
        def command(**kwargs):
            config = cls(**{name: kwargs.pop(name) for name in options})
            return fn(**kwargs, config=config)

        command.__signature__ = sig.replace(parameters=own + added)
        return command

    return wrap


@app.command()
@config_options(TrainConfig, TRAIN_OPTIONS)
def train(
    features: Optional[Path] = typer.Option(
        None, "--features", help="Folder with training.npz, validation.npz (testing.npz)."
    ),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Speech Commands-layout folder: make lists and features first."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder; writes RUN_DIR/train/."),
    task: str = typer.Option("google12", help="With --data: google12 | all | WORD,WORD,..."),
    resume: bool = typer.Option(False, help="Continue RUN_DIR/train/last.pt with its saved config."),
    init: Optional[Path] = typer.Option(
        None, "--init", help="Checkpoint to start from (its weights; same model, classes and "
        "features), e.g. RUN/pretrain/train/best.pt of a pipeline run."
    ),
    teacher: Optional[Path] = typer.Option(
        None, "--teacher", help="Checkpoint to distil from (with --distill-weight), e.g. "
        "RUN/train/best.pt of a full-size run: a small model learns its softened outputs."
    ),
    config: TrainConfig = None,  # type: ignore[assignment]  # the options of TRAIN_OPTIONS
) -> None:
    """Train a keyword spotter (the seed's options and defaults)."""
    from tinykws.train import train as train_fn

    if (features is None) == (data is None):
        raise TinyKWSError("give exactly one of --features DIR or --data DIR")
    with _run_lock(out, create=True):
        if data is not None:
            features = _lists_and_features(data, out, task)
        res = train_fn(features, out, config, resume=resume, init=init, teacher=teacher)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        test = "" if res.test_acc is None else f", testing {res.test_acc:.4f}"
        console.print(
            f"best validation accuracy {res.best_val_acc:.4f} (epoch {res.best_epoch + 1}){test}"
            f" -> {res.best_path}"
        )


def _lists_and_features(data: Path, run_dir: Path, task: str) -> Path:
    """`train --data`: the lists and featurize stages with their defaults into RUN_DIR,
    said before they run (they are stages of their own: `tinykws data lists`, `tinykws
    featurize`)."""
    from tinykws.data.speech_commands import make_lists
    from tinykws.dataset import featurize_lists
    from tinykws.run import RunDir

    rd = RunDir(run_dir)
    console.print(f"train --data: running `tinykws data lists {data} --task {task} --out "
                  f"{rd.lists}` and `tinykws featurize` into {rd.features} first",
                  soft_wrap=True, highlight=False)
    make_lists(data, task, rd.lists)
    featurize_lists(data, rd.lists, rd.features)
    return rd.features


@app.command("train-stream")
def train_stream_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt (the clip model)."),
    features: Optional[Path] = typer.Option(
        None, help="Folder with training.npz (default RUN_DIR/features)."
    ),
    negatives: Optional[Path] = typer.Option(
        None, help="`tinykws data negatives` folder: its training speech joins the streams as "
        "_unknown_ words (featurized once into RUN_DIR/features/negatives.npz)."
    ),
    iterations: int = typer.Option(1500, help="Training steps of 32 streams x 2 s."),
    seed: int = typer.Option(0, help="Seed for the streams and the clip batches."),
    workers: int = typer.Option(2, help="Processes that share every step, one a CPU core (must divide 32)."),
    wave_share: float = typer.Option(
        1.0, help="Share of the streams laid in waveform from the clips' audio files, as `pipeline` "
        "does (0: all in log-mel space from the features alone)."),
) -> None:
    """Second training phase on long streams: one model step per 10-ms frame on one state
    that is never reset (bounded), as the Cortex-M4 runs it; resumes after a kill."""
    from tinykws.run import RunDir
    from tinykws.stream_training import StreamTrainConfig, negative_features, train_stream

    if iterations < 1:
        raise TinyKWSError("--iterations must be >= 1")
    check_seed(seed)
    feats = features or RunDir(run_dir).features
    with _run_lock(run_dir):
        extra = negative_features(negatives, feats, run_dir) if negatives is not None else None
        cfg = StreamTrainConfig(iterations=iterations, seed=seed, workers=workers, wave_share=wave_share)
        path = train_stream(feats, run_dir, cfg, extra_negatives=None if extra is None else extra.features,
                            extra_negative_paths=None if extra is None else list(extra.paths))
    console.print(f"stream model -> {path} (the clip model is kept as {RunDir(run_dir).clip})")


@app.command()
def export(run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt.")) -> None:
    """Write RUN_DIR/export/model.onnx (clip) and model_step.onnx (streaming)."""
    from tinykws.export import export_run

    for name, path in export_run(run_dir).items():
        console.print(f"{name}: {path}")


# ---------------------------------------------------------------- quantize (issue 11)


@app.command()
def quantize(
    run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt and features/."),
    qat_epochs: int = typer.Option(
        0, "--qat-epochs", help="Also fine-tune with int8 weights in the loop for N epochs; "
        "the integer model that is better on validation is kept."
    ),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="One weight scale per matrix "
                                    "instead of one per row."),
    as_json: bool = typer.Option(False, "--json", help="Print quant.json."),
) -> None:
    """Quantize the trained model to int8 weights / int16 states (calibrated on the training
    features); writes RUN_DIR/quant/ and prints integer vs float accuracy."""
    import json as _json

    from tinykws.quant.calibrate import format_quant_report, quantize_run

    if qat_epochs < 0:
        raise TinyKWSError(f"--qat-epochs must be >= 0, got {qat_epochs}")
    with _run_lock(run_dir):
        rep = quantize_run(run_dir, qat_epochs=qat_epochs, per_row=not per_tensor)
    print(_json.dumps(rep.to_dict(), indent=2) if as_json else format_quant_report(rep))


# ---------------------------------------------------------------- compile / verify (issue 6)


@app.command(name="compile")
def compile_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt."),
    target: str = typer.Option("cortex-m4", "--target", help="Target CPU (cortex-m4)."),
    float_abi: str = typer.Option(
        "hard", "--float-abi",
        help="hard (FPv4-SP FPU, e.g. STM BlueCoin), softfp (FPU inside, soft-float calling "
        "convention: links with -mfloat-abi=soft firmware, e.g. MXChip AZ3166) or soft (no FPU).",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder; default RUN_DIR/device/<abi> (float), "
        "RUN_DIR/device/int8 (int8, soft ABI) or RUN_DIR/device/int8-<abi>."
    ),
    libm: bool = typer.Option(False, "--libm", help="Use libm's expf/logf/tanhf instead of tinykws' own."),
    precision: str = typer.Option(
        "float", "--precision", help="float, or int8: integer featurizer and model (int8 "
        "weights; for cores without an FPU; quantizes the run first if needed)."
    ),
) -> None:
    """Write featurizer, model and detector .{h,c,S} (ELL-compatible C API) for the Cortex-M4."""
    from tinykws.codegen import compile_run

    with _run_lock(run_dir):
        r = compile_run(run_dir, out_dir=out, target=target, float_abi=float_abi, use_libm=libm,
                        precision=precision)
    console.print(f"[bold]compiled[/] {r.target} {r.precision}, float ABI {r.float_abi} with "
                  f"{r.toolchain} -> {r.out_dir}")
    for name in ("featurizer.h", "featurizer.S", "model.h", "model.S"):
        print(r.files[name])


@app.command()
def verify(
    compiled: Path = typer.Argument(..., help="A compiled folder, e.g. RUN_DIR/device/hard."),
    run: Optional[Path] = typer.Option(None, "--run", help="Run folder; default: the one DIR was compiled from (DIR/run.json)."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Verify on every WAV under this folder instead of the test list."
    ),
    max_clips: int = typer.Option(50, "--max-clips", help="Clips to run (evenly spaced)."),
    as_json: bool = typer.Option(False, "--json", help="Print verify.json instead of a summary."),
    qemu: bool = typer.Option(
        False, "--qemu", help="Cross-check the instruction counts with qemu-system-arm."
    ),
    reference: str = typer.Option(
        "torch", "--reference", help="Compare with torch (train/best.pt) or onnx (export/); "
        "an int8 build is checked against its integer reference, and measured against the "
        "float checkpoint it was quantized from (quant/qat.pt after fine-tuning)."
    ),
    stream: Optional[Path] = typer.Option(
        None, "--stream", help="A recording (WAV, any length): run featurizer + model + "
        "detector over it and compare the detections with `tinykws detect`'s (an int8 "
        "build: features, scores and detections with the integer reference's, bit for bit; "
        "the float model's detections are counted beside)."
    ),
) -> None:
    """Run the compiled featurizer + model on an emulated Cortex-M4 and check every score
    (with --stream: the whole keyword spotter over a recording, against `tinykws detect`,
    or for an int8 build against the Python integer reference)."""
    import json as _json

    from tinykws.device import VerifyConfig, format_report
    from tinykws.device import verify as run_verify

    if stream is not None:
        from tinykws.device.verify_stream import format_stream_report, verify_stream

        rs = verify_stream(compiled, stream, run_dir=run, progress=not as_json)
        print(_json.dumps(rs.to_dict(), indent=2) if as_json else format_stream_report(rs))
        if not rs.ok:
            raise typer.Exit(1)
        return

    r = run_verify(compiled, VerifyConfig(run_dir=run, data_dir=data, max_clips=max_clips,
                                          progress=not as_json, qemu=qemu, reference=reference))
    if as_json:
        print(_json.dumps(r.to_dict(), indent=2))
    else:
        print(format_report(r))
    if not r.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- evaluate / detect (issue 7)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt."),
    data: Path = typer.Option(..., "--data", help="Speech Commands folder or Google-12 test layout."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    backend: str = typer.Option(
        "torch", help="torch | onnx | int8 (the integer path in Python) | device (emulated M4)"
    ),
    max_clips: Optional[int] = typer.Option(None, help="Evaluate an evenly spaced subset."),
    split: str = typer.Option("testing", help="Split of a Speech Commands layout."),
    build: str = typer.Option(
        "hard", "--build", help="With --backend device: the build to run, hard | soft | int8 "
        "(RUN_DIR/device/<build>, compiled when missing)."
    ),
) -> None:
    """Accuracy and per-class precision/recall/F1 on 1-s clips; writes RUN_DIR/eval/."""
    import contextlib
    import json as _json

    from tinykws.evaluate import evaluate as run_eval
    from tinykws.evaluate import evaluation_files

    with contextlib.redirect_stdout(sys.stderr if json_out else sys.stdout):  # stdout: JSON only
        result = run_eval(run_dir, data, backend=backend, split=split, max_clips=max_clips,
                          log=None if json_out else console.print, build=build)
    if json_out:
        typer.echo(_json.dumps(result.to_dict()))
    else:
        typer.echo(result.table())
        json_path, png_path = evaluation_files(run_dir, backend, build, partial=result.partial_of is not None)
        console.print(f"wrote {json_path} and {png_path.name}", soft_wrap=True, highlight=False)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="Run folder.")) -> None:
    """Write RUN_DIR/report.md (data, training, confusion, DET curve, device table)."""
    from tinykws.report import damaged_files, write_report

    path = write_report(run_dir)
    for rel, reason in damaged_files(run_dir):
        console.print(f"[yellow]warning:[/] skipped damaged {escape(rel)} ({escape(reason)})", soft_wrap=True)
    console.print(f"report: {path}")


# ---------------------------------------------------------------- pipeline


@app.command()
def pipeline(
    data: Optional[list[Path]] = typer.Option(
        None, help="Speech Commands-layout folder; default: synthesize the embedded set (no download). "
        "Repeat for several folders: clips from all, validation/testing from those with lists."
    ),
    out: Path = typer.Option(Path("runs/default"), help="Run folder for every stage's output."),
    task: str = typer.Option("google12", help="google12 | all | WORD,WORD,..."),
    epochs: Optional[int] = typer.Option(None, help="Override the training recipe's epochs."),
    quick: bool = typer.Option(False, help="Tiny sizes everywhere: a smoke test in a few minutes."),
    seed: int = typer.Option(0, help="Seed for data synthesis, lists, noise and training."),
    per_word: Optional[int] = typer.Option(None, help="Synthesized clips per word (default 200; 8 with --quick)."),
    verify_clips: Optional[int] = typer.Option(None, help="Clips run on the emulated Cortex-M4 (default 20)."),
    streaming: bool = typer.Option(
        True, help="Train on long streams with synthesized non-keyword speech after the clips: "
        "one model step per 10-ms frame on one never-reset state, as the Cortex-M4 runs it. "
        "--no-streaming: the clip model alone, detected with a sliding 1-s window (10 steps a "
        "frame, Python only; see docs/benchmarks.md, Streaming)."
    ),
    negatives: Optional[Path] = typer.Option(
        None, help="`tinykws data negatives` folder for the stream phase (made there if missing; "
        "default: a folder of the user cache, $TINYKWS_CACHE or ~/.cache/tinykws, shared by runs "
        "with the same keywords, seed and sizes)."
    ),
    negative_utterances: Optional[int] = typer.Option(
        None, help="Non-keyword utterances to synthesize (default 20000; 150 with --quick)."
    ),
    stream_steps: Optional[int] = typer.Option(
        None, help="Stream-phase training steps of 32 streams (default 1500 times the frame stride "
        "times 1.5: 4500; times 2 with --data: 6000; 1500 with --preset tiny; 40 with --quick). More is "
        "slower and, measured, better (4500 against 3000 on the embedded default: +4 to +12 points at "
        "issue 19's acceptance point; docs/benchmarks.md, Issue 19, seventeenth round)."
    ),
    stream_workers: Optional[int] = typer.Option(
        None, help="Processes that share the stream phase's steps, one a CPU core (default 2; 1 "
        "with --quick). Must divide 32 (8 with --quick); another count trains on other streams, "
        "so its model differs."
    ),
    pretrain: bool = typer.Option(
        False, help="With --data: train on the embedded synthesized voices first (RUN/pretrain) "
        "and start the real training from that model (higher clip accuracy, but more confident "
        "false alarms on the dev keyword stream; docs/benchmarks.md, Issue 10, fifth round)."
    ),
    preset: str = typer.Option(
        "full", help="full: a step every 2 frames; on the embedded data a 2 x 72 GRU (int8 ~80 KB flash, "
        "~48,000 instructions a frame, ~95,000 at most), with --data a 2 x 128 FastGRNN (~75 KB, ~46,000, ~90,000) "
        "| tiny: 2 x 56 FastGRNN, U rank 12, twice the epochs (int8 ~16 KB, ~20,000), "
        "for the smallest M4 parts (see docs/device-guide.md, Choosing a preset)."
    ),
    frame_stride: Optional[int] = typer.Option(
        None, help="Frames per recurrent step, stacked (default: full 2, with twice the stream steps; "
        "tiny 1). 1 is the seed's model: its full int8 build fits in 72 KB of flash, 2 needs ~76 KB."
    ),
    second_look: Optional[float] = typer.Option(
        None, help="After the stream phase, train a verifier on the clips and the negatives "
        "(RUN/train/verifier.pt) that must give a detection's keyword this probability for it to "
        "stand (0.9 measured; default off). Python only so far: the C runs the first stage."
    ),
) -> None:
    """Run every stage, data to device report, into one run folder (resumes where it stopped)."""
    from tinykws.pipeline import PipelineConfig, run_pipeline

    check_seed(seed)

    with _run_lock(out, create=True):
        run_pipeline(
            PipelineConfig(
                data=tuple(data) if data else None, out=out, task=task, epochs=epochs, quick=quick, seed=seed,
                per_word=per_word, verify_clips=verify_clips, streaming=streaming,
                negatives=negatives, negative_utterances=negative_utterances, pretrain=pretrain,
                preset=preset, stream_steps=stream_steps, stream_workers=stream_workers,
                frame_stride=frame_stride, second_look=second_look,
            )  # fmt: skip
        )


if __name__ == "__main__":
    main()
