"""Finding the UWave folder: given, else $SENSORSTREAM_DATA, else ../shared/data/uwave, cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from timesnet.errors import ModelError
from timesnet.uwave import (
    CHECKOUT,
    DATA_ENV,
    SHARED_UWAVE,
    UWAVE_FILES,
    find_uwave,
    uwave_candidates,
)


def uwave_folder(path: Path) -> Path:
    """A folder holding (empty) files with both UWave names."""
    path.mkdir(parents=True)
    for name in UWAVE_FILES:
        (path / name).write_text("")
    return path


def test_an_explicit_folder_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV, str(uwave_folder(tmp_path / "env")))
    assert find_uwave(uwave_folder(tmp_path / "given")) == (tmp_path / "given").resolve()


def test_the_environment_wins_over_the_shared_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV, str(uwave_folder(tmp_path / "env")))
    assert uwave_candidates() == [tmp_path / "env"]
    assert find_uwave() == (tmp_path / "env").resolve()


def test_without_either_the_shared_folder_beside_the_checkout_is_tried_before_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert uwave_candidates() == [
        tmp_path / SHARED_UWAVE,
        CHECKOUT / SHARED_UWAVE,
        tmp_path / "cache" / "sensorstream" / "data" / "uwave",
    ]


@pytest.mark.parametrize("source", ["given", "environment"])
def test_a_named_folder_without_the_files_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    if source == "environment":
        monkeypatch.setenv(DATA_ENV, str(empty))
    message = rf"^{empty}.*: expected UWaveGestureLibrary_TRAIN.ts and .*_TEST.ts in that folder$"
    with pytest.raises(ModelError, match=message):
        find_uwave(empty if source == "given" else None)


def test_no_folder_anywhere_says_where_it_looked_and_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("timesnet.uwave.CHECKOUT", tmp_path / "checkout")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=rf"no UWave data in {tmp_path}.*or set {DATA_ENV}"):
        find_uwave()
