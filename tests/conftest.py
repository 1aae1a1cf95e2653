"""Suite-wide settings and fixtures shared by several test modules.

- Progress bars off (`TINYKWS_NO_PROGRESS=1`) for every test, as the modules did one by one.
- Hypothesis keeps no example database, and its caches go to a temporary folder removed at
  the end of the session: tests leave nothing in the work tree.
- `one_torch_thread`: tiny models run on one intra-op thread (xdist already runs a worker
  per core; more threads only add barriers). Modules opt in with
  `pytestmark = pytest.mark.usefixtures("one_torch_thread")`.
- `TINYKWS_NO_SKIP=1` (for CI, where every optional tool is installed) turns any skip into
  a failure, so a missing install cannot hide behind a skipped test.
- An xdist worker ignores SIGINT once its tests are done (`pytest_sessionfinish`): see there.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
# The user cache (shared negatives sets) is this test process's own: never the user's, and
# never shared by two xdist workers making the same set at once.
os.environ["TINYKWS_CACHE"] = tempfile.mkdtemp(prefix="tinykws-cache-")

settings.register_profile("tinykws", database=None)
settings.load_profile("tinykws")
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="tinykws-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)


def pytest_sessionfinish(session):
    """An xdist worker whose tests are done is not interrupted while it cleans up.

    When the last worker reports, the controller shuts the workers down; execnet gives a
    worker 5 s to finish, then sends it SIGINT (and exits it 10 s later). A worker's cleanup
    after its session (pytest's final `gc.collect()` over torch, onnx and hypothesis objects)
    can take longer than 5 s on a loaded machine, and the KeyboardInterrupt then lands in
    hypothesis's gc callback: "PytestUnraisableExceptionWarning ... KeyboardInterrupt" after
    the last test (reproduced with a 7-s cleanup). Nothing is left to interrupt here, so the
    cleanup is left to finish."""
    if hasattr(session.config, "workerinput") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def pytest_unconfigure(config):
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)
    shutil.rmtree(os.environ["TINYKWS_CACHE"], ignore_errors=True)


@pytest.fixture
def one_torch_thread():
    from tinykws.tuning import torch_threads

    with torch_threads(1):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail") and os.environ.get("TINYKWS_NO_SKIP") == "1":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped, but TINYKWS_NO_SKIP=1 forbids skips here: {reason}"
