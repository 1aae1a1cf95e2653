"""User-facing errors: the CLI prints these as one clear message (no traceback)."""


class TinyKWSError(Exception):
    """A problem with the user's input or environment that they can fix.

    The message must say what was wrong and, where possible, what to do about it.
    """


class AudioError(TinyKWSError):
    """An audio file could not be read or is unusable (empty, corrupt, wrong format)."""


class DownloadError(TinyKWSError):
    """A download or extraction failed (network, checksum, hostile archive)."""
