"""Exceptions raised by the data module."""
from __future__ import annotations

from harness.errors import ConfigError


class DatasetUnavailableError(ConfigError, RuntimeError):
    """A dataset's files are not on disk and could not be downloaded.

    The message names the folder that was searched, the exact files expected there, and how
    to obtain them, because on offline machines the fix is always "copy these files here".
    """
