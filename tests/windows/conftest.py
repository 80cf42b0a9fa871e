"""Fixtures of the windows tests."""

from __future__ import annotations

import pytest

from tests.windows.harness import Pair
from windows import WindowConfig


@pytest.fixture
def make_pair():
    """Build a Pair from WindowConfig keyword arguments."""

    def make(**kwargs) -> Pair:
        return Pair(WindowConfig(**kwargs))

    return make
