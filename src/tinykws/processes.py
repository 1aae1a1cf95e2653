"""Each job in a fresh process: the worker model of `data synth` and `data negatives`.

espeak carries state from one utterance to the next, so every job of those two stages runs
in a process of its own: a clip then depends only on its seed, never on which worker did
what before it. `multiprocessing.Pool(maxtasksperchild=1)` did this before. Stopping a pool
goes through `Pool.terminate`: it takes the task queue's lock, which the worker processes
share with the parent, and joins three helper threads. One SIGINT to the pipeline's
background negatives maker (issue 19, fourteenth round) did not end it: it never reached its
handler, a job process outlived it, and it was killed 20 s later, leaking the pool's
semaphores. Here the parent shares nothing with a job but the job's own pipe, and waits in
`connection.wait` (a select, which a signal interrupts). A stop (Ctrl-C, SIGINT, an
exception, or the caller leaving its loop) terminates the job processes still running and
joins them; there is no lock a dead process could hold.
"""

from __future__ import annotations

import signal
import traceback
from contextlib import contextmanager
from multiprocessing import connection
from typing import Any, Callable, Iterable, Iterator


class JobFailed(RuntimeError):
    """A job's process died without a result (killed, or it crashed in C code)."""


def _child(fn: Callable[[Any], Any], job: Any, send: connection.Connection) -> None:
    """A job process: run `fn(job)` and send `(True, result)` or `(False, error, traceback)`.

    Ctrl-C reaches the whole process group; the parent handles it (and stops this process),
    so the job ignores it instead of printing a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        message = (True, fn(job), "")
    except Exception as e:  # handed to the parent, which raises it there
        message = (False, e, traceback.format_exc())
    try:
        send.send(message)
    except Exception as e:  # an unpicklable result or error: say what it was
        send.send((False, JobFailed(f"{type(e).__name__}: {e}"), traceback.format_exc()))
    send.close()


def _receive(recv: connection.Connection, proc) -> Any:
    """The result of a finished job; raises the job's error (its traceback as a note)."""
    try:
        ok, value, tb = recv.recv()
    except EOFError:
        proc.join()
        raise JobFailed(f"a job process ended without a result (exit code {proc.exitcode})") from None
    except Exception as e:  # a result or error that pickled but does not unpickle
        proc.join()
        raise JobFailed(f"a job's result could not be read: {e!r}") from e
    finally:
        recv.close()
    proc.join()
    if not ok:
        value.add_note(f"in the job process:\n{tb}")
        raise value
    return value


@contextmanager
def fresh_processes(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int, ctx) -> Iterator[Iterator[Any]]:
    """`with fresh_processes(fn, jobs, workers, ctx) as results:` runs `fn(job)` for every
    job, each in a new process of the multiprocessing context `ctx`, at most `workers` at
    once, started in the jobs' order; `results` yields each result as its job ends (in any
    order). Leaving the block (done, an error, Ctrl-C) terminates and joins the job
    processes still running. `fn`, the jobs and the results must pickle."""
    pending = list(jobs)[::-1]  # pop() from the end takes them in order
    running: dict[connection.Connection, Any] = {}

    def results() -> Iterator[Any]:
        while pending or running:
            while pending and len(running) < max(1, workers):
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(fn, pending.pop(), send), daemon=True)
                proc.start()
                send.close()  # the child holds the writing end: its death reads as EOF here
                running[recv] = proc
            for recv in connection.wait(list(running)):
                yield _receive(recv, running.pop(recv))

    try:
        yield results()
    finally:
        for proc in running.values():
            proc.terminate()
        for recv, proc in running.items():
            proc.join()
            recv.close()
