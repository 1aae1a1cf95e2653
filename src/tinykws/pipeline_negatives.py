"""The pipeline's background negatives maker: the synthesized non-keyword speech of the
stream phase made in a child process while the clip phase trains (`start_negatives`), then
stopped and finished in the foreground (`finish_negatives`).

A module of its own because the child process (started with `spawn`) imports it: it must
load neither torch nor the rest of the pipeline. The stages' imports wait inside the
functions that run them for that reason.
"""

from __future__ import annotations

import faulthandler
import multiprocessing as mp
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from rich.console import Console

from tinykws.run import RunDir

if TYPE_CHECKING:
    from tinykws.data.negatives import NegativesConfig

console = Console(stderr=True)


@dataclass(frozen=True)
class NegativesPlan:
    """Which synthesized negatives set the stream phase uses, and with which parameters."""

    folder: Path
    config: NegativesConfig  # the set's keywords, seed and sizes

    def make(self, workers: Optional[int] = None) -> None:
        """Make (or finish, or reuse) the set, one maker at a time: a second pipeline (or
        the background maker, `start_negatives`) holding the same set's lock is waited for,
        and its finished set reused."""
        from tinykws.data.cache import set_lock
        from tinykws.data.negatives import make_negatives

        with set_lock(self.folder):  # `data cache --clean` leaves a set alone while it is held
            make_negatives(self.folder, self.config, workers=workers)


def _stop_requested(signum: int, frame: Any) -> None:
    """The background maker's SIGTERM handler: stop like a Ctrl-C (between two jobs' results,
    the jobs in flight terminated, the finished ones logged)."""
    raise KeyboardInterrupt


def _background_maker(plan: NegativesPlan, log: str) -> None:
    """The child process of `start_negatives`: quiet, its output in `log`, one worker (the
    clip phase trains on the other core). Stopped by SIGTERM: a pipeline run by a script in
    the background has SIGINT ignored, and so has this child (docs/architecture.md)."""
    os.environ["TINYKWS_NO_PROGRESS"] = "1"
    with open(log, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # stop_negatives: where it hangs
        signal.signal(signal.SIGTERM, _stop_requested)  # before this, SIGTERM ends it quietly
        try:
            plan.make(workers=1)
        except KeyboardInterrupt:  # stop_negatives (or a Ctrl-C): the "data negatives" stage takes over
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping already: a second request waits
            print("background negatives: stopped; the foreground finishes the set", file=sys.stderr)
            sys.exit(1)
        except BaseException as e:  # the foreground stage redoes what is missing and reports
            print(f"background negatives stopped: {e!r}", file=sys.stderr)
            sys.exit(1)


def start_negatives(plan: Optional[NegativesPlan], run: Path):
    """Start making the negatives set in a child process while the clip phase trains (they
    do not depend on each other; on 2 cores this hides the set's minutes on a first run).
    Returns the process (None when there is nothing to make: no set, or a finished one).
    The "data negatives" stage stops it when the clip phase ends (`finish_negatives`) and
    makes the rest, as it does whatever a failed or killed child left (the set resumes job
    by job)."""
    from tinykws.data.negatives import is_complete

    if plan is None or is_complete(plan.folder):
        return None
    log = RunDir(run).root / "negatives_background.log"
    proc = mp.get_context("spawn").Process(target=_background_maker, args=(plan, str(log)), name="tinykws-negatives")
    proc.start()
    proc.log = log  # named by stop_negatives should it have to kill it
    console.print(f"negatives: making {plan.folder} in the background (log: {log})")
    return proc


STOP_SECONDS = 10  # a background maker ends within a second of its SIGTERM (tests/test_pipeline.py)


def stop_negatives(proc) -> None:
    """Stop a background maker still running (the clip phase is over, or the pipeline failed or was
    interrupted): SIGTERM, which a started maker turns into a clean stop (its finished jobs stay
    logged) and which ends one still importing at once, quietly. One still alive after
    STOP_SECONDS dumps its stacks into its log (SIGUSR1, `proc.log`) and is killed."""
    if proc is None or not proc.is_alive():
        return
    proc.terminate()
    proc.join(STOP_SECONDS)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGUSR1)
        proc.join(1)
        proc.kill()
        proc.join(5)
        console.print(f"negatives: the background maker did not stop within {STOP_SECONDS} s and was "
                      f"killed; its stacks are in {getattr(proc, 'log', 'its log')}")


def finish_negatives(plan: NegativesPlan, proc=None) -> None:
    """Finish the set now that the clip phase is over: the background maker `proc` (one
    worker, so as to leave the clip phase a core) is stopped and the rest is made here on
    every core. Waiting for it left a core idle: 100 s of a 15-minute main job. The set
    resumes job by job, and a clip depends only on the seed, not on who made it."""
    stop_negatives(proc)
    plan.make()  # reuses a finished set, or finishes it (a second pipeline's lock is waited for)
