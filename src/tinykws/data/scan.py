"""Reading a dataset in the Speech Commands layout: who spoke a clip (`speaker_of`), which
split the dataset's hash rule puts it in (`which_set`), and a scan of a data folder's
word folders, background noise and list files (`scan_dataset`).

`data/speech_commands.py` makes and reads the list files from these scans.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tinykws.data.audio import is_audio_name
from tinykws.data.layout import BACKGROUND
from tinykws.errors import TinyKWSError

# TensorFlow's speech_commands/input_data.py `which_set`: the bucket of a speaker id.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M
_NOHASH = re.compile(r"_nohash_.*$")


def speaker_of(name: str | Path) -> str:
    """The speaker id of a clip: the file name with `_nohash_...` removed.

    `yes/0a7c2a8d_nohash_0.wav` -> `0a7c2a8d`. A name without `_nohash_` is its own speaker
    (its stem), which is also what the dataset's hash rule does with it.
    """
    base = Path(name).name
    return _NOHASH.sub("", base) if "_nohash_" in base else Path(base).stem


def which_set(name: str | Path, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The split of a clip by the dataset's own rule (TensorFlow `which_set`).

    SHA-1 of the speaker id -> a stable percentage in [0, 100]; the first
    `validation_percentage` go to validation, the next `testing_percentage` to testing.
    All clips of a speaker land in the same split.
    """
    hash_name = _NOHASH.sub("", Path(name).name)
    hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


# ------------------------------------------------------------------ scanning a dataset


@dataclass(frozen=True)
class DatasetScan:
    """What is in a Speech Commands-layout folder."""

    data_dir: Path
    words: dict[str, list[str]]  # word -> sorted clip paths relative to data_dir
    noise_files: list[Path]  # _background_noise_/*.wav
    split_lists: dict[str, set[str]] | None  # validation/testing lists when the dataset has them
    outside_links: tuple[str, ...] = ()  # skipped: links (folders, clips) that lead outside data_dir

    def split_of(self, rel: str) -> str:
        """The clip's split: the dataset's lists when present, else its hash rule."""
        if self.split_lists is None:
            return which_set(rel)
        for split in ("validation", "testing"):
            if rel in self.split_lists[split]:
                return split
        return "training"


def scan_dataset(data_dir: Path | str) -> DatasetScan:
    """Find the word folders, clips and background noise of a dataset folder.

    Symlinks (word folders, clips, noise files) whose target lies outside the dataset
    are skipped and counted in `outside_links`, not followed: a link to `/etc/passwd` or
    to another dataset's folder would otherwise be listed as a clip of that word (and
    opened by featurize). Skipped rather than refused, so one stray link does not stop a
    dataset of 100,000 clips; `data lists` prints the count. Links inside the dataset are
    followed as before.
    """
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise TinyKWSError(f"data folder {data_dir} does not exist")
    words: dict[str, list[str]] = {}
    outside: list[str] = []
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("_") or entry.name.startswith("."):
            continue
        if entry.is_symlink() and not _inside(entry.path, data_dir):
            outside.append(entry.name + "/")
            continue
        clips = []
        for f in os.scandir(entry.path):
            if not (is_audio_name(f.name) and f.is_file()):  # not a folder named x.wav
                continue
            if f.is_symlink() and not _inside(f.path, data_dir):
                outside.append(f"{entry.name}/{f.name}")
                continue
            clips.append(f"{entry.name}/{f.name}")
        if clips:
            words[entry.name] = sorted(clips)
    if not words:
        skipped = f" ({len(outside)} link(s) leading outside it skipped)" if outside else ""
        raise TinyKWSError(f"{data_dir} has no word folders with audio files (Speech Commands layout expected){skipped}")
    noise = []
    for p in sorted(q for q in (data_dir / BACKGROUND).glob("*") if is_audio_name(q.name)):
        if p.is_symlink() and not _inside(p, data_dir):
            outside.append(f"{BACKGROUND}/{p.name}")
        elif p.is_file():
            noise.append(p)
    lists = None
    if (data_dir / "validation_list.txt").is_file() or (data_dir / "testing_list.txt").is_file():
        lists = {s: _read_lines(data_dir / f"{s}_list.txt") for s in ("validation", "testing")}
    return DatasetScan(data_dir, words, noise, lists, tuple(outside))


def _inside(path: str | Path, root: Path) -> bool:
    """Does `path`, links resolved, lie inside the resolved folder `root`?"""
    return Path(os.path.realpath(path)).is_relative_to(root)


def _read_lines(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}
