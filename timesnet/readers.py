"""Read a data file with the reader its suffix names: UEA ``.ts`` or PaddleX ``.csv``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from timesnet.dataset import Dataset
from timesnet.errors import DataFormatError
from timesnet.paddlex_csv import read_paddlex_csv
from timesnet.ts_format import read_ts


def read_dataset(
    path: str | Path, length: int | None = None, labels: Sequence[str] | None = None
) -> Dataset:
    """Read a ``.ts`` or PaddleX ``.csv`` file, chosen by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return read_ts(path, length, labels)
    if suffix == ".csv":
        return read_paddlex_csv(Path(path), length, labels)
    raise DataFormatError(f"{path}: unknown data file type {suffix!r}; expected a .ts or .csv file")
