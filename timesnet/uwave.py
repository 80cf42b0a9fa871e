"""Where the UWaveGestureLibrary files are: one answer for the CLI, the tests and the benchmarks.

The UEA archive's ``UWaveGestureLibrary_TRAIN.ts`` and ``_TEST.ts`` are looked for in
the folder given explicitly (``--data``), else in ``$SENSORSTREAM_DATA``, else in
``../shared/data/uwave`` beside the working directory or beside this checkout, else in
the download cache ``~/.cache/sensorstream/data/uwave`` (which ``sensorstream demo``
fills when nothing else holds them).
"""

from __future__ import annotations

import os
from pathlib import Path

from timesnet.errors import ModelError

DATA_ENV = "SENSORSTREAM_DATA"  # a folder holding both files
UWAVE_TRAIN_FILE = "UWaveGestureLibrary_TRAIN.ts"
UWAVE_TEST_FILE = "UWaveGestureLibrary_TEST.ts"
UWAVE_FILES = (UWAVE_TRAIN_FILE, UWAVE_TEST_FILE)
SHARED_UWAVE = Path("..") / "shared" / "data" / "uwave"  # the project's data, beside a checkout
CHECKOUT = Path(__file__).resolve().parents[1]


def cache_data_dir() -> Path:
    """Where downloaded data is kept: $XDG_CACHE_HOME (default ~/.cache)/sensorstream/data."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sensorstream" / "data"


def uwave_candidates(explicit: str | Path | None = None) -> list[Path]:
    """The folders `find_uwave` tries, in order: only the given or $SENSORSTREAM_DATA one if set."""
    if explicit:
        return [Path(explicit)]
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV])]
    return [Path.cwd() / SHARED_UWAVE, CHECKOUT / SHARED_UWAVE, cache_data_dir() / "uwave"]


def holds_uwave(folder: Path) -> bool:
    """True when `folder` holds both UWave .ts files."""
    return all((folder / name).is_file() for name in UWAVE_FILES)


def find_uwave(explicit: str | Path | None = None) -> Path:
    """The folder holding both UWave .ts files; ModelError naming where it looked, if none does."""
    candidates = uwave_candidates(explicit)
    for folder in candidates:
        if holds_uwave(folder):
            return folder.resolve()
    files = " and ".join(UWAVE_FILES)
    if explicit or os.environ.get(DATA_ENV):
        where = "" if explicit else f" (${DATA_ENV})"
        raise ModelError(f"{candidates[0]}{where}: expected {files} in that folder")
    raise ModelError(
        f"no UWave data in {', '.join(str(folder) for folder in candidates)}: put {files} "
        f"(UEA archive, UWaveGestureLibrary) in one of them, or set {DATA_ENV} to their folder"
    )
