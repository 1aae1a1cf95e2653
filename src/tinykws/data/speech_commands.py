"""The Speech Commands layout: word folders, speakers, splits, and the list files.

Layout (v0.02 and every dataset tinykws makes): `DATA/<word>/<speaker>_nohash_<n>.wav`
(or any format in `AUDIO_SUFFIXES`, e.g. `.flac`), `DATA/_background_noise_/*.wav`, optionally
`DATA/validation_list.txt` and `DATA/testing_list.txt`. List files (see docs/architecture.md
"Lists") hold one clip a line, relative to the data folder, except `_silence_/...` lines,
which are relative to the lists folder, and `_dataK_/...` lines, relative to the K-th extra
data folder of a list made from several folders. `read_list` and `read_categories` are the
one reader every stage uses.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from tinykws.data.audio import AudioStats, OnError
from tinykws.data.layout import (  # noqa: F401 (BACKGROUND, SILENCE_RMS_RANGE, silence_crop: re-exported)
    BACKGROUND, GOOGLE12_WORDS, NEGATIVES, SILENCE_RMS_RANGE, SPLITS, clear_silence,
    load_background_noise, silence_crop, write_silence,
)
from tinykws.data.negatives import read_negatives
from tinykws.data.scan import (  # noqa: F401 (which_set: re-exported)
    DatasetScan, scan_dataset, speaker_of, which_set,
)
from tinykws.errors import TinyKWSError, check_count, check_seed
from tinykws.labels import SILENCE, UNKNOWN
from tinykws.run import lists_json, read_json

# list lines `_data1_/...`, `_data2_/...` are relative to the extra data folders (lists.json)
_EXTRA = re.compile(r"^_data([1-9][0-9]*)_$")
# training clips of other words that the `_unknown_` cap left out: real non-keyword speech
# for the stream phase (`dataset.featurize_spare`), never in the clip phase's lists
SPARE_LIST = "spare_unknown_list.txt"

@dataclass(frozen=True, slots=True)
class Example:
    """One clip of a list: where it is, its class, and who spoke it."""

    path: Path  # absolute (or as resolved against data_dir / lists_dir)
    label: str
    label_index: int  # index into read_categories()
    speaker: str


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
    return _examples(lists_dir, list_path, data_dir, index)


def read_spare(lists_dir: Path | str, data_dir: Path | str | None = None) -> list[Example]:
    """The spare `_unknown_` training clips (`SPARE_LIST`; empty when the lists have none)."""
    lists_dir = Path(lists_dir)
    path = lists_dir / SPARE_LIST
    if not path.is_file():
        return []
    index = {c: i for i, c in enumerate(read_categories(lists_dir))}
    data_dir = Path(data_dir) if data_dir is not None else _recorded_data_dir(lists_dir)
    return _examples(lists_dir, path, data_dir, index)


def _examples(lists_dir: Path, list_path: Path, data_dir: Path, index: dict[str, int]) -> list[Example]:
    """The clips of one list file (see `read_list`)."""
    examples = []
    negatives_dir: Path | None = None
    extra_dirs: list[Path] | None = None
    for line in list_path.read_text().splitlines():
        rel = line.strip()
        if not rel:
            continue
        if rel.startswith(("/", "\\")) or ".." in rel.replace("\\", "/").split("/"):
            raise TinyKWSError(f"{list_path}: line {rel!r} leads outside the data folder; remake the lists")
        folder = rel.split("/", 1)[0]
        m = _EXTRA.match(folder)
        if m:  # `_dataK_/<word>/<clip>`: a clip of the K-th extra data folder
            extra_dirs = extra_dirs if extra_dirs is not None else _recorded_extra_dirs(lists_dir)
            k, inner = int(m.group(1)), rel.split("/", 1)[1]
            if k > len(extra_dirs):
                raise TinyKWSError(f"{list_path}: {rel!r} names extra data folder {k}, but lists.json records {len(extra_dirs)}")
            word = inner.split("/", 1)[0]
            label = word if word in index else UNKNOWN
            if label not in index:
                raise TinyKWSError(f"{list_path}: {rel!r} is not in a category and there is no {UNKNOWN} class")
            examples.append(Example(extra_dirs[k - 1] / inner, label, index[label], speaker_of(rel)))
            continue
        if folder == NEGATIVES:  # `_negatives_/<item>/...` (unknown) or `_negatives_/_silence_/...`
            negatives_dir = negatives_dir or _recorded_negatives_dir(lists_dir)
            inner = rel.split("/", 1)[1]
            label = SILENCE if inner.startswith(SILENCE + "/") and SILENCE in index else UNKNOWN
            if label not in index:
                raise TinyKWSError(f"{list_path}: {rel!r} is a negative but there is no {UNKNOWN} class")
            examples.append(Example(negatives_dir / inner, label, index[label], speaker_of(rel)))
            continue
        base = lists_dir if folder == SILENCE else data_dir
        label = folder if folder in index else UNKNOWN
        if label not in index:
            raise TinyKWSError(
                f"{list_path}: {rel!r} is not in a category and there is no {UNKNOWN} class"
            )
        examples.append(Example(base / rel, label, index[label], speaker_of(rel)))
    return examples


def _recorded_data_dir(lists_dir: Path) -> Path:
    meta = lists_json(lists_dir)
    if not meta.is_file():
        raise TinyKWSError(f"{meta} not found: pass the data folder explicitly or remake the lists")
    info = _read_lists_json(meta)
    if not isinstance(info.get("data_dir"), str):
        raise TinyKWSError(f"{meta} records no data folder; pass the data folder explicitly or remake the lists")
    recorded = Path(info["data_dir"])
    relative = info.get("data_dir_relative")
    if not recorded.is_dir() and relative is not None and (lists_dir / relative).is_dir():
        return (lists_dir / relative).resolve()  # the run folder was moved or copied
    return recorded


def _recorded_extra_dirs(lists_dir: Path) -> list[Path]:
    """The extra data folders recorded in `lists_dir/lists.json` (also after all moved)."""
    meta = lists_json(lists_dir)
    info = _read_lists_json(meta) if meta.is_file() else {}  # torn: one line, not a traceback
    out = []
    for recorded, relative in zip(info.get("extra_data_dirs") or [], info.get("extra_data_dirs_relative") or []):
        path = Path(recorded)
        if not path.is_dir() and (lists_dir / relative).is_dir():
            path = (lists_dir / relative).resolve()
        out.append(path)
    return out


def _read_lists_json(meta: Path) -> dict:
    info = read_json(meta, "remake the lists (`tinykws data lists`)")
    if not isinstance(info, dict):
        raise TinyKWSError(f"{meta} is not a lists record; remake the lists (`tinykws data lists`)")
    return info


def _recorded_negatives_dir(lists_dir: Path) -> Path:
    """The negatives folder recorded in `lists_dir/lists.json` (also after both moved)."""
    meta = lists_json(lists_dir)
    info = _read_lists_json(meta) if meta.is_file() else {}
    if not isinstance(info.get("negatives_dir"), str) or not info["negatives_dir"]:
        raise TinyKWSError(f"{lists_dir}: the lists name {NEGATIVES} clips but lists.json records no negatives folder")
    recorded = Path(info["negatives_dir"])
    relative = info.get("negatives_dir_relative")
    if not recorded.is_dir() and relative is not None and (lists_dir / relative).is_dir():
        return (lists_dir / relative).resolve()
    return recorded


# ------------------------------------------------------------------ tasks


def task_has_unknown(task: str) -> bool:
    """Do a task's lists get `_unknown_` (and `_silence_`)? Every task but `all`, where every
    word is a keyword."""
    return task.strip() != "all"


def parse_task(task: str, available: list[str]) -> tuple[list[str], bool]:
    """`google12` | `all` | `w1,w2,...` -> (keyword classes, whether unknown+silence are added)."""
    task = task.strip()
    if not task_has_unknown(task):
        return sorted(available), False
    keywords = list(GOOGLE12_WORDS) if task == "google12" else [w.strip() for w in task.split(",")]
    if len(keywords) > 1 and not all(keywords):  # `yes,,no` silently dropped the empty item
        raise TinyKWSError(f"task {task!r} has an empty item; give words separated by single commas")
    keywords = [w for w in keywords if w]
    if not keywords:
        raise TinyKWSError(f"empty task {task!r}: use google12, all, or a comma list of words")
    if len(set(keywords)) != len(keywords):
        raise TinyKWSError(f"task {task!r} names a word twice")
    missing = [w for w in keywords if w not in available]
    if missing:
        raise TinyKWSError(
            f"task {task!r}: no folder for {', '.join(missing)} in the data "
            f"(available: {', '.join(sorted(available))})"
        )
    return keywords, True


# ------------------------------------------------------------------ making lists

DEFAULT_UNKNOWN_SHARE = 1.0  # unknown clips per split = this x the split's mean keyword count
MAX_SHARE = 1e6  # --unknown-share / --negatives-share: beyond it, "all of them" anyway


@dataclass
class ListsSummary:
    """What `make_lists` wrote: counts per split and category, and where things came from."""

    task: str
    data_dir: str
    data_dir_relative: str  # from the lists folder: still found when both move together
    out_dir: str
    categories: list[str]
    counts: dict[str, dict[str, int]]  # split -> category -> clips
    speakers: dict[str, int]  # split -> distinct speakers (silence excluded)
    split_source: str  # "dataset lists" or "hash rule"
    speaker_overlap: int  # speakers found in more than one split (0 = speaker-disjoint)
    noise_files: list[str]
    seed: int
    max_per_class: int | None
    unknown_share: float
    audio: dict  # AudioStats.as_dict() for the noise files
    negatives_dir: str | None = None  # `make_negatives` folder whose clips were added
    negatives_dir_relative: str | None = None
    negatives: dict[str, dict[str, int]] | None = None  # split -> {"speech", "background"} added
    extra_data_dirs: list[str] = field(default_factory=list)  # list lines `_dataK_/...`
    extra_data_dirs_relative: list[str] = field(default_factory=list)
    spare_unknown: int = 0  # training clips in SPARE_LIST
    outside_links: list[str] | None = None  # links leading outside the dataset, skipped
    train_unknown_share: float | None = None  # the training split's share, when not unknown_share

    def total(self, split: str) -> int:
        return sum(self.counts[split].values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def make_lists(
    data_dir: Path | str | Sequence[Path | str],
    task: str,
    out_dir: Path | str,
    *,
    max_per_class: int | None = None,
    unknown_share: float = DEFAULT_UNKNOWN_SHARE,
    train_unknown_share: float | None = None,
    silence_count: int | None = None,
    seed: int = 0,
    on_error: OnError = "raise",
    negatives_dir: Path | str | None = None,
    negatives_share: float | None = None,
) -> ListsSummary:
    """Write categories.txt, {training,validation,testing}_list.txt, lists.json and the
    silence crops (`out_dir/_silence_/*.wav`) for `task` on the dataset in `data_dir`.

    `data_dir` may be several folders: clips come from all of them; a folder with its own
    validation/testing lists is split by them, a folder without gives training clips only
    (when no folder has lists, every folder is split by the hash rule). The first folder
    is the main one (its background noise makes the silence crops); the others' list lines
    read `_dataK_/<word>/<clip>`. Training clips of other words that the `_unknown_` share
    leaves out are written to `SPARE_LIST` (real non-keyword speech for the stream phase).

    - `max_per_class` caps each keyword class of the *training* list (as the seed's `--max`).
    - `unknown_share`: per split, unknown clips = share x the mean keyword-class count,
      drawn evenly over the split's non-keyword words, and within a word evenly over its
      speakers (`balanced_pick`): a folder of thousands of "bed" must not make the
      `_unknown_` class mean "bed". `train_unknown_share`: the training split's alone.
    - `silence_count`: None gives each split as many silence crops as its mean keyword
      class; an int is the total over the splits, shared in proportion to their sizes.
    - `negatives_dir`: a `make_negatives` folder. Its training and validation speech clips
      are added to `_unknown_` and its background clips to `_silence_` of the same split,
      on top of the clips above (the real other-word clips are all kept); its held-apart
      (testing) part is never listed. `negatives_share` caps the speech clips added per
      split at share x the split's mean keyword class (None: all of them), and the
      background clips in the same proportion. List lines: `_negatives_/<item>/<clip>`.
    Deterministic for a given `seed`.
    """
    scans, out_dir = _scan_folders(data_dir, out_dir)
    scan = scans[0]
    _check_list_options(seed, silence_count, unknown_share, negatives_share, max_per_class, train_unknown_share)
    keywords, extra = parse_task(task, sorted({w for sc in scans for w in sc.words}))
    if negatives_dir is not None and not extra:
        raise TinyKWSError(f"--negatives needs a task with an {UNKNOWN} class (google12 or a word list), not {task!r}")
    categories = keywords + ([UNKNOWN, SILENCE] if extra else [])

    chosen, unknown_pool = _split_clips(scans, categories, keywords, extra)
    if max_per_class is not None:
        _cap_training(chosen, keywords, max_per_class, seed)

    stats = AudioStats()
    spare: list[str] = []
    if extra:
        mean_kw, spare = _pick_unknown(chosen, unknown_pool, keywords, unknown_share, train_unknown_share, seed)
        n_sil = _silence_counts(silence_count, mean_kw, {s: sum(map(len, chosen[s].values())) for s in SPLITS})
        if any(n_sil.values()):
            noise = load_background_noise(scan.noise_files, stats, on_error)
            chosen_sil = write_silence(noise, n_sil, out_dir / SILENCE, seed=seed)
            for s in SPLITS:
                chosen[s][SILENCE] = chosen_sil[s]
        else:
            clear_silence(out_dir / SILENCE)
    negatives = None
    if negatives_dir is not None:
        negatives = _add_negatives(chosen, negatives_dir, keywords, mean_kw, negatives_share, seed)

    speakers = {s: {speaker_of(p) for c in categories if c != SILENCE for p in chosen[s][c]} for s in SPLITS}
    _write_list_files(out_dir, categories, chosen, spare)
    summary = ListsSummary(
        task=task,
        data_dir=str(scan.data_dir),
        data_dir_relative=os.path.relpath(scan.data_dir, out_dir),
        out_dir=str(out_dir),
        categories=categories,
        counts={s: {c: len(chosen[s][c]) for c in categories} for s in SPLITS},
        speakers={s: len(speakers[s]) for s in SPLITS},
        split_source="hash rule" if scan.split_lists is None else "dataset lists",
        speaker_overlap=_speaker_overlap(speakers),
        noise_files=[str(p) for p in scan.noise_files],
        seed=seed,
        max_per_class=max_per_class,
        unknown_share=unknown_share, train_unknown_share=train_unknown_share,
        audio=stats.as_dict(),
        extra_data_dirs=[str(sc.data_dir) for sc in scans[1:]],
        extra_data_dirs_relative=[os.path.relpath(sc.data_dir, out_dir) for sc in scans[1:]],
        spare_unknown=len(spare),
        outside_links=[(f"_data{k}_/" if k else "") + o for k, sc in enumerate(scans) for o in sc.outside_links],
    )
    if negatives is not None:
        summary.negatives_dir = str(Path(negatives_dir).resolve())
        summary.negatives_dir_relative = os.path.relpath(summary.negatives_dir, out_dir)
        summary.negatives = negatives
    lists_json(out_dir).write_text(summary.to_json())
    return summary


def _scan_folders(data_dir: Path | str | Sequence[Path | str], out_dir: Path | str
                  ) -> tuple[list[DatasetScan], Path]:
    """The scans of the data folders (the first is the main one) and the resolved lists
    folder; refused when no folder is given, one is given twice, or the lists would land
    in a data folder."""
    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    if not dirs:
        raise TinyKWSError("no data folder given")
    scans = [scan_dataset(d) for d in dirs]
    if len({sc.data_dir for sc in scans}) < len(scans):
        raise TinyKWSError("the same data folder is given twice")
    out_dir = Path(out_dir).resolve()
    if out_dir in {sc.data_dir for sc in scans}:
        raise TinyKWSError("write the lists to their own folder, not into the dataset (it has its own lists)")
    return scans, out_dir


def _speaker_overlap(speakers: dict[str, set[str]]) -> int:
    """Speakers found in more than one split (0: the splits are speaker-disjoint)."""
    t, v, te = speakers["training"], speakers["validation"], speakers["testing"]
    return len((t & v) | (t & te) | (v & te))


def _pick_unknown(chosen: dict[str, dict[str, list[str]]], unknown_pool: dict[str, list[str]],
                  keywords: list[str], unknown_share: float, train_unknown_share: float | None,
                  seed: int) -> tuple[dict[str, float], list[str]]:
    """Fill each split's `_unknown_` class from its pool (`balanced_pick`, share x the mean
    keyword class; the training split's is `train_unknown_share` when given); returns (mean
    keyword-class size per split, the training clips left over: the spare list)."""
    mean_kw = {s: np.mean([len(chosen[s][w]) for w in keywords]) for s in SPLITS}
    for i, s in enumerate(SPLITS):
        pool = unknown_pool[s]
        share = train_unknown_share if s == "training" and train_unknown_share is not None else unknown_share
        n = min(len(pool), int(round(share * mean_kw[s])))
        chosen[s][UNKNOWN] = sorted(balanced_pick(pool, n, np.random.default_rng([seed, 1, i])))
    spare = sorted(set(unknown_pool["training"]) - set(chosen["training"][UNKNOWN]))
    return mean_kw, spare


def _check_list_options(seed: int, silence_count: int | None, unknown_share: float,
                        negatives_share: float | None, max_per_class: int | None,
                        train_unknown_share: float | None = None) -> None:
    """Refuse `make_lists` options out of range, with one line each."""
    check_seed(seed)
    check_count(silence_count, "--silence", 0, 1_000_000)
    for flag, v in (("--unknown-share", unknown_share), ("--negatives-share", negatives_share),
                    ("--train-unknown-share", train_unknown_share)):
        if v is not None and not 0 <= v <= MAX_SHARE:
            raise TinyKWSError(f"{flag} must be a number in [0, {MAX_SHARE}], not {v}")
    if max_per_class is not None and max_per_class < 1:
        raise TinyKWSError("--max must be >= 1")


def _split_clips(scans: list[DatasetScan], categories: list[str], keywords: list[str], extra: bool
                 ) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """Every clip to its split: (split -> keyword -> [list lines], split -> [other-word
    lines], the `_unknown_` pool when the task has one). A folder without lists beside one
    with lists gives training clips only."""
    chosen: dict[str, dict[str, list[str]]] = {s: {c: [] for c in categories} for s in SPLITS}
    unknown_pool: dict[str, list[str]] = {s: [] for s in SPLITS}
    any_lists = any(sc.split_lists is not None for sc in scans)
    for k, sc in enumerate(scans):
        prefix = f"_data{k}_/" if k else ""
        for word, clips in sc.words.items():
            for rel in clips:
                split = sc.split_of(rel) if sc.split_lists is not None or not any_lists else "training"
                if word in keywords:
                    chosen[split][word].append(prefix + rel)
                elif extra:
                    unknown_pool[split].append(prefix + rel)
    return chosen, unknown_pool


def _cap_training(chosen: dict[str, dict[str, list[str]]], keywords: list[str], max_per_class: int,
                  seed: int) -> None:
    """At most `max_per_class` training clips of each keyword (a seeded draw, as `--max`)."""
    rng = np.random.default_rng([seed, 0])
    for word in keywords:
        clips = chosen["training"][word]
        if len(clips) > max_per_class:
            pick = rng.choice(len(clips), max_per_class, replace=False)
            chosen["training"][word] = sorted(clips[i] for i in pick)


def _write_list_files(out_dir: Path, categories: list[str], chosen: dict[str, dict[str, list[str]]],
                      spare: list[str]) -> None:
    """categories.txt, the three split lists and the spare `_unknown_` list."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "categories.txt").write_text("".join(c + "\n" for c in categories))
    for s in SPLITS:
        lines = [p for c in categories for p in chosen[s][c]]
        (out_dir / f"{s}_list.txt").write_text("".join(p + "\n" for p in lines))
    (out_dir / SPARE_LIST).write_text("".join(p + "\n" for p in spare))


def balanced_pick(pool: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` clips of `pool` (list lines `[_dataK_/]<word>/<clip>`) spread evenly over words,
    then over each word's speakers: round robin over the words (in a random order), each
    word giving its clips round robin over its speakers (random orders), so every word
    gives min(its clips, ~n / words) and no speaker repeats before every one has spoken.

    Drawn at random from the pooled clips instead, a folder dominated by a few words
    (the v0.01 extra set: 4,898 of 5,100 other-word clips are bed, cat and happy) fills
    the class with those words, and the model learns "those words are not keywords"."""
    if n >= len(pool):
        return list(pool)
    by_word: dict[str, dict[str, list[str]]] = {}
    for rel in pool:
        word = Path(rel).parent.name
        by_word.setdefault(word, {}).setdefault(speaker_of(rel), []).append(rel)
    queues = []
    for word in sorted(by_word):
        speakers = by_word[word]
        order = [speakers[k] for k in sorted(speakers)]
        rng.shuffle(order)
        for clips in order:
            rng.shuffle(clips)
        # round robin over the speakers: first clip of each, then second of each, ...
        queues.append([c for depth in range(max(map(len, order))) for clips in order
                       if depth < len(clips) for c in clips[depth:depth + 1]])
    rng.shuffle(queues)
    out: list[str] = []
    depth = 0
    while len(out) < n:
        for q in queues:
            if depth < len(q) and len(out) < n:
                out.append(q[depth])
        depth += 1
    return out


def _add_negatives(
    chosen: dict[str, dict[str, list[str]]], negatives_dir: Path | str, keywords: list[str],
    mean_kw: dict[str, float], share: float | None, seed: int,
) -> dict[str, dict[str, int]]:
    """Add a negatives set's training/validation clips to `chosen` (see `make_lists`);
    returns split -> {"speech": n, "background": n} added."""
    neg = read_negatives(negatives_dir)
    said = {w for s in SPLITS for w in neg.words(s)}
    clash = sorted(said & set(keywords))
    if clash:
        raise TinyKWSError(f"{negatives_dir}: the negatives say the keyword(s) {', '.join(clash)}; make a set for this task (--keywords)")
    added = {}
    for i, s in enumerate(SPLITS):
        speech, background = neg.speech[s], neg.background[s]
        if s == "testing":  # held apart: for measuring false alarms only
            speech, background = [], []
        if share is not None and speech:
            n = min(len(speech), int(round(share * mean_kw[s])))
            rng = np.random.default_rng([seed, 3, i])
            speech = sorted(speech[j] for j in rng.choice(len(speech), n, replace=False))
            n_bg = int(round(len(background) * n / len(neg.speech[s])))
            background = sorted(background[j] for j in rng.choice(len(background), n_bg, replace=False))
        chosen[s][UNKNOWN] += [f"{NEGATIVES}/{rel}" for rel in speech]
        chosen[s][SILENCE] += [f"{NEGATIVES}/{rel}" for rel in background]
        added[s] = {"speech": len(speech), "background": len(background)}
    return added


def _silence_counts(
    silence_count: int | None, mean_kw: dict[str, float], split_sizes: dict[str, int]
) -> dict[str, int]:
    """Silence crops per split (see `make_lists`)."""
    if silence_count is None:
        return {s: int(round(mean_kw[s])) for s in SPLITS}
    if silence_count < 0:
        raise TinyKWSError("--silence must be >= 0")
    total = sum(split_sizes.values()) or 1
    counts = {s: int(round(silence_count * split_sizes[s] / total)) for s in SPLITS}
    counts["training"] += silence_count - sum(counts.values())  # exact total
    return counts
