"""One look for progress bars across the stages (rich)."""

from __future__ import annotations

import os

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(transient: bool = False, extra_columns: tuple = (), enabled: bool = True) -> Progress:
    """A rich Progress with counts, elapsed and remaining time.

    Silent when TINYKWS_NO_PROGRESS=1 (tests) or not `enabled` (e.g. on all but one
    process of a distributed run). On a non-terminal, rich prints only the final state,
    so CI logs stay readable.
    """
    disable = not enabled or os.environ.get("TINYKWS_NO_PROGRESS") == "1"
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        transient=transient,
        disable=disable,
    )
