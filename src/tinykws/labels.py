"""The class names with a meaning of their own, shared by every stage.

`_unknown_` is any word that is not a keyword; `_silence_` is background noise without
speech. Neither ever fires a detection. The names are Speech Commands' own (its
`speech_commands_test_set_v0.02` uses them as folder names), so lists, feature files,
checkpoints and the generated C enum all carry them as they are.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
NON_KEYWORDS = (UNKNOWN, SILENCE)  # classes that are never detected


def keyword_mask(categories: Sequence[str]) -> np.ndarray:
    """bool `[C]`: which of `categories` are keywords (all but `NON_KEYWORDS`)."""
    return np.array([c not in NON_KEYWORDS for c in categories], dtype=bool)
