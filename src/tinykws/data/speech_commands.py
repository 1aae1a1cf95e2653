"""The Speech Commands layout: word folders, speakers, splits, and the list files.

Layout (v0.02 and every dataset tinykws makes): `DATA/<word>/<speaker>_nohash_<n>.wav`,
`DATA/_background_noise_/*.wav`, optionally `DATA/validation_list.txt` and
`DATA/testing_list.txt`. List files (see docs/architecture.md "Lists") hold one clip a line,
relative to the data folder, except `_silence_/...` lines, which are relative to the lists
folder. `read_list` and `read_categories` are the one reader every stage uses.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tinykws.errors import TinyKWSError

SPLITS = ("training", "validation", "testing")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND = "_background_noise_"
GOOGLE12_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

# TensorFlow's speech_commands/input_data.py `which_set`: the bucket of a speaker id.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M
_NOHASH = re.compile(r"_nohash_.*$")


@dataclass(frozen=True, slots=True)
class Example:
    """One clip of a list: where it is, its class, and who spoke it."""

    path: Path  # absolute (or as resolved against data_dir / lists_dir)
    label: str
    label_index: int  # index into read_categories()
    speaker: str


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


# ------------------------------------------------------------------ reading lists


def read_categories(lists_dir: Path | str) -> list[str]:
    """The class names in class-index order, from `lists_dir/categories.txt`."""
    path = Path(lists_dir) / "categories.txt"
    if not path.is_file():
        raise TinyKWSError(f"{path} not found: make lists first (`tinykws data lists`)")
    cats = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not cats:
        raise TinyKWSError(f"{path} is empty")
    return cats


def read_list(lists_dir: Path | str, split: str, data_dir: Path | str | None = None) -> list[Example]:
    """The clips of one split (`training`, `validation` or `testing`).

    `data_dir` defaults to the one recorded in `lists_dir/lists.json`. A clip's label is its
    parent folder when that is a category, else `_unknown_`.
    """
    lists_dir = Path(lists_dir)
    if split not in SPLITS:
        raise TinyKWSError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if data_dir is None:
        data_dir = _recorded_data_dir(lists_dir)
    data_dir = Path(data_dir)
    categories = read_categories(lists_dir)
    index = {c: i for i, c in enumerate(categories)}
    list_path = lists_dir / f"{split}_list.txt"
    if not list_path.is_file():
        raise TinyKWSError(f"{list_path} not found: make lists first (`tinykws data lists`)")
    examples = []
    for line in list_path.read_text().splitlines():
        rel = line.strip()
        if not rel:
            continue
        folder = rel.split("/", 1)[0]
        base = lists_dir if folder == SILENCE else data_dir
        label = folder if folder in index else UNKNOWN
        if label not in index:
            raise TinyKWSError(
                f"{list_path}: {rel!r} is not in a category and there is no {UNKNOWN} class"
            )
        examples.append(Example(base / rel, label, index[label], speaker_of(rel)))
    return examples


def _recorded_data_dir(lists_dir: Path) -> Path:
    meta = lists_dir / "lists.json"
    if not meta.is_file():
        raise TinyKWSError(f"{meta} not found: pass the data folder explicitly or remake the lists")
    return Path(json.loads(meta.read_text())["data_dir"])
