"""Process tuning (tinykws.tuning): the thread-count context manager restores what it
changed, also on an exception, and the training tuning runs once."""

from __future__ import annotations

import sys

import pytest
import torch

from tinykws import tuning


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with tuning.torch_threads(1):
        assert torch.get_num_threads() == 1
        with tuning.torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_exception():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with tuning.torch_threads(1 if before != 1 else 2):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("n", [None, 0])
def test_torch_threads_none_leaves_the_count(n):
    with tuning.torch_threads(1):
        with tuning.torch_threads(n):
            assert torch.get_num_threads() == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_for_training_runs_once(monkeypatch):
    monkeypatch.setattr(tuning, "_MALLOC_TUNED", False)
    monkeypatch.delenv("TINYKWS_NO_MALLOC_TUNING", raising=False)
    first = tuning.tune_for_training()
    assert first is True  # Linux with glibc: mallopt accepted both thresholds
    assert tuning.tune_for_training() is False  # idempotent: nothing to do the second time


def test_tune_for_training_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(tuning, "_MALLOC_TUNED", False)
    monkeypatch.setenv("TINYKWS_NO_MALLOC_TUNING", "1")
    assert tuning.tune_for_training() is False
