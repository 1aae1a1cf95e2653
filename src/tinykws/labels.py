"""The class names with a meaning of their own, shared by every stage.

`_unknown_` is any word that is not a keyword; `_silence_` is background noise without
speech. Neither ever fires a detection. The names are Speech Commands' own (its
`speech_commands_test_set_v0.02` uses them as folder names), so lists, feature files,
checkpoints and the generated C enum all carry them as they are.
"""

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
NON_KEYWORDS = (UNKNOWN, SILENCE)  # classes that are never detected
