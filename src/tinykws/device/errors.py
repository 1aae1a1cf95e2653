"""The device package's error: what the CLI prints as one `error: ...` line."""

from __future__ import annotations

from tinykws.errors import TinyKWSError


class DeviceError(TinyKWSError):
    """The image could not be built or the emulated device did not finish correctly."""
