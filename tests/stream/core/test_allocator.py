"""The worker's malloc thresholds: applied on glibc (this project's platform), left alone
when the user set them."""

from __future__ import annotations

import pytest

from stream.core.allocator import tune_allocator


def test_glibc_takes_the_thresholds_when_the_environment_sets_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert tune_allocator() is True


def test_thresholds_set_in_the_environment_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    assert tune_allocator() is False
