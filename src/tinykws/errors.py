"""User-facing errors: the CLI prints these as one clear message (no traceback)."""


class TinyKWSError(Exception):
    """A problem with the user's input or environment that they can fix.

    The message must say what was wrong and, where possible, what to do about it.
    """


class AudioError(TinyKWSError):
    """An audio file could not be read or is unusable (empty, corrupt, wrong format)."""


class DownloadError(TinyKWSError):
    """A download or extraction failed (network, checksum, hostile archive)."""


class CheckpointError(TinyKWSError):
    """A checkpoint is missing, damaged, or disagrees with itself (weights vs model_config,
    feature parameters vs the model's input, non-finite weights)."""


class FeatureFileError(TinyKWSError):
    """A feature file is missing, damaged, or made differently from the run's other splits."""


MAX_SEED = 2**32 - 1  # numpy's legacy seeding and torch's both take 0..2**32-1


def check_seed(seed: int, flag: str = "--seed") -> None:
    """Refuse a seed numpy cannot take (`--seed -5` raised numpy's `expected non-negative
    integer` as a traceback)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise TinyKWSError(f"{flag} must be a whole number in 0..{MAX_SEED}, not {seed!r}")


def check_count(value: int | None, flag: str, least: int, most: int) -> None:
    """Refuse a count outside `least..most` (None: the default, fine). The upper bounds
    are far above any real use and keep a typo (`--per-word 100000000000`) from running
    for ever or asking for petabytes."""
    if value is not None and not least <= value <= most:
        raise TinyKWSError(f"{flag} must be in {least}..{most:,}, not {value}")


MAX_WORKERS = 1024
