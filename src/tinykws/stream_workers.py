"""The stream phase on several CPU cores: one process a worker, data-parallel.

Each of N workers trains `batch / N` streams and `clip_batch / N` clips a step; their
gradients are averaged every step (gloo, over a file store in a temporary folder), so the N
copies of the model take identical optimizer steps and stay identical. Worker 0 is the
calling process: it logs, checkpoints and shows the progress bar; the others are spawned
children that get the clip pool through shared memory (no copy a worker).

Why processes: a stream step is thousands of tiny ops ([B, H] @ [H, H]), so torch's
intra-op threads cost more in barriers than they gain (`tinykws.tuning.torch_threads`),
and Python threads serialise on the GIL between ops. A second process on a second core
does half the frames of every step instead.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from tinykws.errors import TinyKWSError

MAX_WORKERS = 64
# how long a worker waits for the others at a step (and at the start, while they import
# torch); a worker that dies closes its sockets, so its peers fail at once, not after this
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass
class Group:
    """This process's place among the workers (`rank` 0 .. `world` - 1) and their channel."""

    rank: int = 0
    world: int = 1
    pg: Any = None  # torch.distributed.ProcessGroupGloo; None for one worker

    @property
    def leader(self) -> bool:
        """Worker 0: the one that writes files and shows progress."""
        return self.rank == 0

    def average_grads(self, params: list[torch.Tensor], values: list[float]) -> list[float]:
        """Average the gradients of `params` over the workers, in place, with a few scalars
        (the losses, for the log) in the same message; returns the averaged scalars."""
        if self.world == 1:
            return values
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [torch.tensor(values, dtype=grads[0].dtype)])
        self._allreduce(flat)
        flat /= self.world
        off = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[off:off + n].view_as(p).clone()
            off += n
        return flat[off:].tolist()

    def check_same(self, params: list[torch.Tensor]) -> None:
        """Refuse to go on if the workers' copies of the model differ (they must not: equal
        start, equal averaged gradients, equal steps). The float32 values summed in float64
        are exact, so equal copies sum to exactly `world` times each one."""
        if self.world == 1:
            return
        own = torch.cat([p.detach().reshape(-1).double() for p in params])
        total = own.clone()
        self._allreduce(total)
        if not torch.equal(total, own * self.world):
            raise TinyKWSError(f"stream worker {self.rank}: the workers' models differ")

    def gather(self, n: int, mine: np.ndarray) -> np.ndarray:
        """The full `[n]` array of which this worker computed positions rank, rank + world, ..."""
        if self.world == 1:
            return np.asarray(mine, np.float64)
        full = torch.zeros(n, dtype=torch.float64)
        full[self.rank::self.world] = torch.as_tensor(np.asarray(mine, np.float64))
        self._allreduce(full)
        return full.numpy()

    def _allreduce(self, t: torch.Tensor) -> None:
        try:
            self.pg.allreduce([t]).wait()
        except RuntimeError as e:  # a peer died: its sockets closed
            raise TinyKWSError(f"stream worker {self.rank}: another worker stopped ({e})") from e


def share(array: np.ndarray) -> torch.Tensor:
    """`array` copied into shared memory, as a tensor that spawned workers receive without
    a copy (its `.numpy()` is a view of the same memory)."""
    t = torch.empty(array.shape, dtype=torch.from_numpy(array[:0]).dtype).share_memory_()
    t.numpy()[...] = array
    return t


def join(rank: int, world: int, store: str) -> Group:
    """Join the workers' group through the file store `store`."""
    import torch.distributed as dist

    fs = dist.FileStore(store, world)
    try:
        return Group(rank, world, dist.ProcessGroupGloo(fs, rank, world, TIMEOUT))
    except RuntimeError as e:  # a peer died while the group formed: gloo's connect failed
        raise TinyKWSError(f"stream worker {rank}: another worker stopped ({e})") from e


def check_workers(n: int) -> None:
    """A clear error for a worker count that is not one (whether this torch can run several
    is checked when they start, so that a config can be built anywhere)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKERS:
        raise TinyKWSError(f"stream workers must be a whole number in 1..{MAX_WORKERS}, not {n!r}")


@contextlib.contextmanager
def workers(n: int, target: Callable[..., None], args: tuple) -> Iterator[Group]:
    """Start workers 1 .. n-1 as spawned processes running `target(rank, n, store, *args)`
    and yield worker 0's group (this process). On leaving, the children are joined; if the
    block failed (or was interrupted), they are stopped first."""
    check_workers(n)
    if n == 1:
        yield Group()
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        raise TinyKWSError("this torch build has no gloo backend: use one stream worker "
                           "(pipeline --stream-workers 1, train-stream --workers 1)")
    folder = Path(tempfile.mkdtemp(prefix="tinykws-workers-"))
    store = str(folder / "store")
    ctx = torch.multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=(r, n, store, *args), name=f"tinykws-stream-{r}", daemon=True)
             for r in range(1, n)]
    try:
        for p in procs:
            p.start()
        yield join(0, n, store)
        for p in procs:
            p.join()
        bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
        if bad:
            raise TinyKWSError(f"stream workers failed: {bad}")
    finally:
        _stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(procs: list) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        if p.pid is not None:
            p.join(10)


def worker_env() -> None:
    """A child worker's settings: quiet (worker 0 shows progress), and deaf to Ctrl-C, which
    reaches the whole terminal's process group: worker 0 stops the children itself."""
    os.environ["TINYKWS_NO_PROGRESS"] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def rank_seeds(seed: int, rank: int) -> tuple[np.random.Generator, torch.Generator]:
    """The stream maker's and the clip batches' generators of one worker. Worker 0 draws
    exactly as a single-process run does, so one worker repeats earlier runs."""
    if rank == 0:
        return np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    return np.random.default_rng([seed, rank]), torch.Generator().manual_seed(seed + 1_000_003 * rank)


def split_count(total: int, world: int, what: str) -> int:
    """`total` / `world`, refused when it does not divide (every worker does equal work)."""
    if total % world:
        raise TinyKWSError(f"{world} stream workers cannot share {what} ({total}) evenly: "
                           f"use a count that divides {total}")
    return total // world


__all__ = ["Group", "MAX_WORKERS", "check_workers", "join", "rank_seeds", "share", "split_count",
           "worker_env", "workers"]
