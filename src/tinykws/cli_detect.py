"""`tinykws detect` and `tinykws train-verifier`: detection in recordings (or live), and
the classifier of the detector's second look (`tinykws.second_look`).

`tinykws.cli` adds these commands to the main app. As there, each command imports its
stage inside its function (fast `--help`; a missing extra fails only its command).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tinykws.errors import TinyKWSError

console = Console(stderr=True)


def detect(
    run_dir: Path = typer.Argument(..., help="Run folder with train/best.pt."),
    audio: Optional[Path] = typer.Argument(None, help="WAV file (any length); omit with --live."),
    threshold: Optional[float] = typer.Option(
        None, help="Smoothed score a keyword must reach [default: the run's detector.json "
        "operating point, else 0.7]."),
    smoothing_ms: Optional[float] = typer.Option(
        None, help="Moving average of the scores [default: the run's, else 300]."),
    refractory_ms: Optional[float] = typer.Option(
        None, help="No detection this long after one [default: the run's, else 1000]."),
    mode: Optional[str] = typer.Option(
        None, help="auto | rolling | window | reset [default: the run's, else auto]."),
    second_look: Optional[float] = typer.Option(
        None, help="Have the run's verifier (`tinykws train-verifier`) confirm each detection: "
        "the probability of its keyword it must give [default: the run's, else off]."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of detections."),
    live: bool = typer.Option(False, "--live", help="Listen to the microphone (extra `live`)."),
) -> None:
    """Streaming keyword detection in a recording (or live), with timestamps."""
    import contextlib
    import json as _json

    from tinykws.detect import detect_file, detect_live
    from tinykws.detector_config import load_detector_config

    def show(d) -> None:
        if json_out:
            typer.echo(_json.dumps(d.to_dict()))
        else:
            typer.echo(f"{d.time_s:9.2f} s  {d.label:<10} {d.confidence:.3f}")

    if live and audio is not None:
        raise TinyKWSError("give AUDIO or --live, not both")
    config = (None if second_look is None
              else load_detector_config(run_dir).replace(second_look=second_look))
    if live:
        detect_live(run_dir, threshold, smoothing_ms, refractory_ms, mode, on_detection=show,
                    on_start=lambda: console.print("listening (Ctrl-C to stop)..."), config=config)
        return
    if audio is None:
        raise TinyKWSError("give an AUDIO.wav file, or --live for the microphone")
    with contextlib.redirect_stdout(sys.stderr if json_out else sys.stdout):  # stdout: JSON only
        found = detect_file(run_dir, audio, threshold, smoothing_ms, refractory_ms, mode, config=config)
    if json_out:
        typer.echo(_json.dumps([d.to_dict() for d in found]))
        return
    for d in found:
        show(d)
    console.print(f"{len(found)} detection(s) in {audio}")


def train_verifier_cmd(
    run_dir: Path = typer.Argument(..., help="Run folder after its stream phase (features/negatives.npz)."),
    unknown_weight: float = typer.Option(
        0.05, help="Loss weight of `_unknown_` (most rows are the negatives)."),
    threads: int = typer.Option(1, help="Torch threads."),
) -> None:
    """Train the detector's second-look classifier: the clip recipe on the run's clips and
    its negatives, into RUN_DIR/train/verifier.pt. Use it with `tinykws detect --second-look P`,
    or `tinykws pipeline --out RUN_DIR --second-look P`, which also chooses the threshold again
    with it (and trains it when missing)."""
    import math

    from tinykws.run import RunDir
    from tinykws.second_look import train_verifier

    if threads < 1:
        raise TinyKWSError("--threads must be >= 1")
    if not (math.isfinite(unknown_weight) and unknown_weight >= 0):
        raise TinyKWSError(f"--unknown-weight must be a finite number >= 0, not {unknown_weight}")
    if not run_dir.is_dir():
        raise TinyKWSError(f"no such run folder: {run_dir}")
    with RunDir(run_dir).lock():
        path = train_verifier(run_dir, unknown_weight=unknown_weight, threads=threads)
    console.print(f"verifier -> {path}", soft_wrap=True)
