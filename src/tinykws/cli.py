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


# ---------------------------------------------------------------- evaluate / detect (issue 7)


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
