"""`tinykws pipeline`: every stage in order, into one run folder.

Stages are added here as they land; each is a plain function of the stage's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rich.console import Console

console = Console(stderr=True)


@dataclass(frozen=True)
class PipelineConfig:
    """What the user chose; everything else is each stage's own default."""

    data: Optional[Path] = None  # None: synthesize the embedded default dataset
    out: Path = Path("runs/default")
    task: str = "google12"
    epochs: Optional[int] = None
    quick: bool = False  # tiny sizes everywhere: the CI smoke path


def run_pipeline(cfg: PipelineConfig) -> Path:
    """Run the stages that exist so far; returns the run folder."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]tinykws pipeline[/] -> {cfg.out}")
    return cfg.out
