"""The `tinykws` command line: one subcommand per pipeline stage, nothing else.

Every command is a thin wrapper over a plain function in the stage's module, so tests and
users can call the same code from Python. Errors meant for the user (TinyKWSError) are
printed as one line and exit with status 2; they never show a traceback.

Layout: each stage owns one clearly marked section below.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tinykws.errors import TinyKWSError

app = typer.Typer(
    name="tinykws",
    help="Speech recordings -> keyword spotter on a Cortex-M4, every step checked.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Get and organise speech data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console(stderr=True)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into clean exits."""
    try:
        app(standalone_mode=False)
    except TinyKWSError as e:
        console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except Exception as e:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


# ---------------------------------------------------------------- data (issue 3)


# ---------------------------------------------------------------- featurize (issue 4)


# ---------------------------------------------------------------- train / export (issue 5)


# ---------------------------------------------------------------- compile / verify (issue 6)


@app.command()
def verify(
    compiled: Path = typer.Argument(..., help="A compiled folder, e.g. RUN_DIR/device/hard."),
    run: Optional[Path] = typer.Option(None, "--run", help="Run folder; default: DIR/../.."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Verify on every WAV under this folder instead of the test list."
    ),
    max_clips: int = typer.Option(50, "--max-clips", help="Clips to run (evenly spaced)."),
    as_json: bool = typer.Option(False, "--json", help="Print verify.json instead of a summary."),
) -> None:
    """Run the compiled featurizer + model on an emulated Cortex-M4 and check every score."""
    import json as _json

    from tinykws.device import format_report
    from tinykws.device import verify as run_verify

    r = run_verify(compiled, run_dir=run, data_dir=data, max_clips=max_clips, progress=not as_json)
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
    backend: str = typer.Option("torch", help="torch | onnx | device"),
    max_clips: Optional[int] = typer.Option(None, help="Evaluate an evenly spaced subset."),
    split: str = typer.Option("testing", help="Split of a Speech Commands layout."),
) -> None:
    """Accuracy and per-class precision/recall/F1 on 1-s clips; writes RUN_DIR/eval/."""
    import json as _json

    from tinykws.evaluate import evaluate as run_eval

    result = run_eval(run_dir, data, backend=backend, split=split, max_clips=max_clips,
                      log=None if json_out else console.print)
    if json_out:
        typer.echo(_json.dumps(result.to_dict()))
    else:
        typer.echo(result.table())
        console.print(f"wrote {run_dir / 'eval' / 'evaluation.json'} and confusion.png")


@app.command()
def detect(
    run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt."),
    audio: Optional[Path] = typer.Argument(None, help="WAV file (any length); omit with --live."),
    threshold: float = typer.Option(0.7, help="Smoothed score a keyword must reach."),
    smoothing_ms: float = typer.Option(300.0, help="Moving average of the scores."),
    refractory_ms: float = typer.Option(1000.0, help="No detection this long after one."),
    mode: str = typer.Option("auto", help="auto | rolling | window | reset"),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of detections."),
    live: bool = typer.Option(False, "--live", help="Listen to the microphone (extra `live`)."),
) -> None:
    """Streaming keyword detection in a recording (or live), with timestamps."""
    import json as _json

    from tinykws.detect import detect_file, detect_live

    def show(d) -> None:
        if json_out:
            typer.echo(_json.dumps(d.to_dict()))
        else:
            typer.echo(f"{d.time_s:9.2f} s  {d.label:<10} {d.confidence:.3f}")

    if live:
        console.print("listening (Ctrl-C to stop)...")
        detect_live(run_dir, threshold, smoothing_ms, refractory_ms, mode, on_detection=show)
        return
    if audio is None:
        raise TinyKWSError("give an AUDIO.wav file, or --live for the microphone")
    found = detect_file(run_dir, audio, threshold, smoothing_ms, refractory_ms, mode)
    if json_out:
        typer.echo(_json.dumps([d.to_dict() for d in found]))
        return
    for d in found:
        show(d)
    console.print(f"{len(found)} detection(s) in {audio}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="Run folder.")) -> None:
    """Write RUN_DIR/report.md (data, training, confusion, DET curve, device table)."""
    from tinykws.report import write_report

    path = write_report(run_dir)
    console.print(f"report: {path}")


# ---------------------------------------------------------------- pipeline


@app.command()
def pipeline(
    data: Optional[Path] = typer.Option(
        None, help="Speech Commands-layout folder; default: synthesize the embedded set."
    ),
    out: Path = typer.Option(Path("runs/default"), help="Run folder for every stage's output."),
    task: str = typer.Option("google12", help="google12 | all | WORD,WORD,..."),
    epochs: Optional[int] = typer.Option(None, help="Override the training recipe's epochs."),
    quick: bool = typer.Option(False, help="A tiny, fast configuration (smoke test)."),
) -> None:
    """Run every stage, data to device report, into one run folder."""
    from tinykws.pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(data=data, out=out, task=task, epochs=epochs, quick=quick)
    run_pipeline(cfg)


if __name__ == "__main__":
    main()
