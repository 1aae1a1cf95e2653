"""Where the tests find real speech.

- `DEV_SET`: the 2683-clip Speech Commands dev subset at ../shared/data/speech_commands_dev
  (this project's CI has it; a fresh clone from a public host does not).
- `MINI`: 48 of those clips committed under tests/fixtures/speech_commands_mini
  (CC-BY-4.0, attribution in its README.md), always present.
- `REAL`: the dev set when present, else the mini set: for tests that need *some* real
  clips (parity of features, C and device), so they run on a bare clone too.
- `needs_dev_set`: for tests that need the whole dev set (its counts, speakers, lists):
  a visible skip with the reason when it is absent; under TINYKWS_NO_SKIP=1 (CI) the skip
  is a failure (conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_dev"
MINI = Path(__file__).resolve().parent / "fixtures" / "speech_commands_mini"
REAL = DEV_SET if DEV_SET.is_dir() else MINI
NO_DEV_SET = ("needs the whole Speech Commands dev subset at ../shared/data/speech_commands_dev "
              "(absent here; CI has it)")
needs_dev_set = pytest.mark.skipif(not DEV_SET.is_dir(), reason=NO_DEV_SET)


def require_dev_set() -> None:
    """Inside a fixture or test that needs the whole dev set: skip with the reason."""
    if not DEV_SET.is_dir():
        pytest.skip(NO_DEV_SET)
