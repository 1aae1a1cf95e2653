"""`processes.fresh_processes`: each job in a new process, and a stop that leaves none behind."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tinykws.processes import JobFailed, fresh_processes

CTX = mp.get_context("spawn")  # the tests' job functions are imported by name in the child


def _job(arg: float | str) -> int:
    """A number: sleep that long and return the pid. A string: fail that way."""
    if arg == "raise":
        raise ValueError("bad job 7")
    if arg == "exit":
        os._exit(3)  # a crash in C code, or a kill: no result, no exception
    if arg == "unpicklable":
        return lambda: None  # type: ignore[return-value]
    time.sleep(float(arg))
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_every_job_runs_once_in_a_process_of_its_own() -> None:
    with fresh_processes(_job, [0.0] * 5, 2, CTX) as results:
        pids = list(results)
    assert len(pids) == 5 and len(set(pids)) == 5 and os.getpid() not in pids
    assert not mp.active_children()


def test_no_more_than_workers_jobs_run_at_once() -> None:
    """Four 0.5-s jobs on two workers take two rounds, not one (and not four)."""
    t0 = time.monotonic()
    with fresh_processes(_job, [0.5] * 4, 2, CTX) as results:
        assert len(list(results)) == 4
    assert 1.0 <= time.monotonic() - t0 < 4 * 0.5 + 3  # 3 s for four process starts


@pytest.mark.parametrize("kind, error, match", [
    ("raise", ValueError, "bad job 7"),
    ("exit", JobFailed, "exit code 3"),
    ("unpicklable", JobFailed, "pickle"),
])
def test_a_failed_job_raises_in_the_parent_and_stops_the_others(kind, error, match) -> None:
    t0 = time.monotonic()
    with pytest.raises(error, match=match) as info:
        with fresh_processes(_job, [30.0, 30.0, kind], 3, CTX) as results:
            list(results)
    assert time.monotonic() - t0 < 20  # the two 30-s jobs were stopped, not waited for
    assert not mp.active_children()
    if kind == "raise":  # the job's own traceback rides along
        assert "in the job process" in "".join(getattr(info.value, "__notes__", []))


def test_leaving_the_loop_early_terminates_the_jobs_in_flight() -> None:
    t0 = time.monotonic()
    with fresh_processes(_job, [0.0, 30.0, 30.0], 3, CTX) as results:
        next(results)  # the quick one; the two 30-s jobs are still running
        running = [p.pid for p in mp.active_children()]
    assert len(running) == 2 and not mp.active_children()
    assert all(not _alive(pid) for pid in running)
    assert time.monotonic() - t0 < 20


_SIGINT_CHILD = textwrap.dedent("""
    import multiprocessing as mp, os, sys, time
    from tinykws.processes import fresh_processes

    def job(seconds):
        time.sleep(seconds)
        return os.getpid()

    if __name__ == "__main__":
        ctx = mp.get_context("forkserver")
        try:
            print("ready", flush=True)
            for stage in ([0.2] * 6, [0.1] * 3):  # two stages, as `data negatives` runs them
                with fresh_processes(job, stage, 1, ctx) as results:
                    for pid in results:
                        print("done", pid, flush=True)
        except KeyboardInterrupt:
            print("stopped", [p.pid for p in mp.active_children()], flush=True)
            sys.exit(1)
        print("finished", flush=True)
""")


@pytest.mark.parametrize("delay", [0.0, 0.25, 0.6, 1.1, 1.6, 2.1])
def test_sigint_stops_it_at_once_at_any_point(tmp_path, delay) -> None:
    """What the pipeline does to its background negatives maker: SIGINT to the parent
    alone, at various points (a job running, one just ended, between the two stages). The
    parent ends through its handler within seconds, and no job process is left."""
    script = tmp_path / "sigint_child.py"
    script.write_text(_SIGINT_CHILD)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=tmp_path)
    assert p.stdout.readline() == "ready\n", p.communicate()
    time.sleep(delay)
    if p.poll() is None:
        os.kill(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=15)  # a hang (the pool's) would fail here
    lines = out.splitlines()
    assert lines and lines[-1] in ("stopped []", "finished"), (out, err)
    assert p.returncode == (1 if lines[-1] == "stopped []" else 0), err
    assert "Traceback" not in err, err
    pids = [int(line.split()[1]) for line in lines if line.startswith("done")]
    assert all(not _alive(pid) for pid in pids)
