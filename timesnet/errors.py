"""The root of every error the timesnet package raises on purpose.

The CLI in ``stream`` turns these into one-line messages; each message says what
to fix (a file name and line number for data files, the expected shape for arrays).
"""

from __future__ import annotations


class ModelError(Exception):
    """A failure of the model package caused by its inputs: data, shapes, settings."""


class DataFormatError(ModelError):
    """A data file (.ts or PaddleX CSV) that cannot be read; the message names file and line."""


class RuntimeNotInstalledError(ModelError):
    """The inference runtime asked for is not installed; the message names the pip package."""


class DeviceError(ModelError):
    """The device asked for is not usable by this runtime (no GPU build, no such GPU)."""
