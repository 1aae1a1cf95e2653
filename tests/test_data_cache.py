"""The user cache's negatives sets: which are stale, what `data cache --clean` removes and
keeps, and the pipeline's one-line notice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinykws import cli
from tinykws.data import cache
from tinykws.data.negatives import _MANIFEST, _VERSION, NegativesConfig, cached_negatives_dir


def _fake_set(folder: Path, version, complete: bool = True, size: int = 1000) -> Path:
    """A folder shaped like a negatives set: its manifest and one clip of `size` bytes."""
    (folder / "word").mkdir(parents=True)
    (folder / "word" / "a.wav").write_bytes(b"\0" * size)
    if version is not None:
        (folder / _MANIFEST).write_text(json.dumps({"params": {"version": version}, "complete": complete}))
    return folder


@pytest.fixture()
def root(tmp_path, monkeypatch) -> Path:
    """A user cache with a current set, a partial current set, a stale set and a stray folder."""
    monkeypatch.setenv("TINYKWS_CACHE", str(tmp_path / "c"))
    neg = cache.negatives_cache()
    _fake_set(cached_negatives_dir(NegativesConfig()), _VERSION, size=3000)
    _fake_set(neg / "partial", _VERSION, complete=False, size=100)
    _fake_set(neg / "old", _VERSION - 1, size=5000)
    _fake_set(neg / "stray", None, size=7)
    _fake_set(neg / "newer", _VERSION + 1, size=11)  # another venv's later tinykws: not ours to remove
    return neg


def test_cache_root_is_the_makers_folder(root):
    """The folder listed is the one `cached_negatives_dir` (the pipeline's default) writes to."""
    assert cached_negatives_dir(NegativesConfig()).parent == root


def test_sets_are_described(root):
    sets = {s.path.name: s for s in cache.cached_sets()}
    assert sorted(sets) == sorted(["newer", "old", "partial", "stray", cached_negatives_dir(NegativesConfig()).name])
    assert [n for n, s in sets.items() if s.stale] == ["old"]
    assert {n: s.status for n, s in sets.items() if n in ("newer", "partial", "stray")} == {
        "newer": "newer", "partial": "current", "stray": "unknown"}
    assert sets["old"].version == _VERSION - 1 and sets["old"].complete
    assert not sets["partial"].complete and not sets["partial"].stale
    assert sets["stray"].version is None and not sets["stray"].stale
    assert (sets["old"].bytes, sets["stray"].bytes) == (5000 + len((root / "old" / _MANIFEST).read_text()), 7)


def test_clean_removes_only_stale_sets(root):
    removed, busy = cache.clean_cache(dry_run=True)
    assert [s.path.name for s in removed] == ["old"] and busy == []
    assert (root / "old").is_dir()  # a dry run removes nothing
    removed, busy = cache.clean_cache()
    assert [s.path.name for s in removed] == ["old"] and removed[0].bytes > 5000  # measured before
    assert not (root / "old").exists()
    assert len(cache.cached_sets()) == 4 and (root / "newer").is_dir() and cache.stale_notice() is None


def test_clean_all_keeps_a_set_being_made(root):
    with cache.set_lock(root / "partial"):  # as `NegativesPlan.make` holds it
        removed, busy = cache.clean_cache(every=True)
    assert [s.path.name for s in busy] == ["partial"]
    assert len(removed) == 4
    assert [p.name for p in root.iterdir() if p.is_dir()] == ["partial"]


def test_a_missing_cache_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYKWS_CACHE", str(tmp_path / "none"))
    assert cache.cached_sets() == [] and cache.clean_cache() == ([], []) and cache.stale_notice() is None


def test_stale_notice_names_the_command(root):
    notice = cache.stale_notice()
    assert notice is not None and "1 set(s)" in notice and "tinykws data cache --clean" in notice


def test_cli_lists_and_cleans(root, capsys):
    assert cli.run(["data", "cache"]) == 0
    err = capsys.readouterr().err
    assert "5 negatives set(s)" in err and "no: stale" in err and "no: a newer tinykws" in err
    assert cli.run(["data", "cache", "--clean"]) == 0
    err = capsys.readouterr().err
    assert "removed old" in err and "1 set(s)" in err
    assert not (root / "old").exists() and (root / "stray").is_dir() and (root / "newer").is_dir()


def test_cli_all_needs_clean(root, capsys):
    assert cli.run(["data", "cache", "--all"]) == 2
    assert capsys.readouterr().err.startswith("error: --all and --dry-run go with --clean")
    assert (root / "old").is_dir()
