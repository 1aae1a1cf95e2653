"""The user cache's negatives sets (`cached_negatives_dir`): list them, and remove the ones no
run will read again.

A set's folder name holds a key of its parameters, tinykws's negatives `_VERSION` among them,
so an upgrade that changes the set (a new split, new voices) makes a new folder beside the
old one (~0.8 GB each) and never reads the old one again. `tinykws data cache` shows them;
`--clean` removes the stale ones (an older version's; a newer tinykws's, from another venv
sharing the cache, is kept), `--clean --all` every set (the next run makes its own again).
A set whose lock a running pipeline holds (it is being made) is never removed.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from tinykws.data.negatives import _MANIFEST, _VERSION, cache_root


@dataclass(frozen=True)
class CachedSet:
    """One folder of the cache's `negatives/`."""

    path: Path
    version: Optional[int]  # the tinykws negatives version that made it; None: no readable manifest
    complete: bool

    @functools.cached_property
    def bytes(self) -> int:
        """What the set holds on disk (walked on first use: ~20,000 files)."""
        return folder_bytes(self.path)

    @property
    def status(self) -> str:
        """"current" (this tinykws reads it), "stale" (an older tinykws made it: no run of this
        one, nor of a later one, reads it again), "newer" (a newer tinykws's, say from another
        venv sharing the cache: kept) or "unknown" (no readable manifest)."""
        if self.version is None:
            return "unknown"
        return "current" if self.version == _VERSION else ("stale" if self.version < _VERSION else "newer")

    @property
    def stale(self) -> bool:
        """What `--clean` removes (`status` "stale")."""
        return self.status == "stale"


def negatives_cache() -> Path:
    """The folder that holds the cached negatives sets."""
    return cache_root() / "negatives"


def lock_path(folder: Path) -> Path:
    """The lock file a maker of `folder` holds (beside it, so removing the set keeps it)."""
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def set_lock(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold `folder`'s lock; with wait=False, yield False at once if another process holds it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(folder), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def cached_sets(root: Optional[Path] = None) -> list[CachedSet]:
    """Every folder of the negatives cache (`root`: default `negatives_cache()`), by name."""
    root = negatives_cache() if root is None else Path(root)
    if not root.is_dir():
        return []
    return [_describe(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.is_symlink()]


def _describe(folder: Path) -> CachedSet:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
        version = int(manifest["params"]["version"])
        complete = bool(manifest.get("complete"))
    except (OSError, ValueError, KeyError, TypeError):
        version, complete = None, False
    return CachedSet(folder, version, complete)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (symlinks not followed)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed while walking
                pass
    return total


def clean_cache(every: bool = False, dry_run: bool = False,
                root: Optional[Path] = None) -> tuple[list[CachedSet], list[CachedSet]]:
    """Remove the stale sets (`every`: all of them) -> (removed, skipped because a maker holds
    their lock). `dry_run`: remove nothing, return what would go. A folder with no readable
    manifest is not known to be a set: only `every` removes it."""
    removed: list[CachedSet] = []
    busy: list[CachedSet] = []
    for s in cached_sets(root):
        if not (every or s.stale):
            continue
        with set_lock(s.path, wait=False) as held:
            if not held:
                busy.append(s)
                continue
            _ = s.bytes  # measured before it goes
            if not dry_run:
                shutil.rmtree(s.path)
            removed.append(s)
    return removed, busy


def stale_notice(root: Optional[Path] = None) -> Optional[str]:
    """One line naming the cache's stale sets and what they hold, or None if there are none."""
    stale = [s for s in cached_sets(root) if s.stale]
    if not stale:
        return None
    gb = sum(s.bytes for s in stale) / 1e9
    return (f"negatives: {len(stale)} set(s) made by an older tinykws in {stale[0].path.parent} "
            f"({gb:.1f} GB) are never read again: `tinykws data cache --clean` removes them")
