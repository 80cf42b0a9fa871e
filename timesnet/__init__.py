"""The model: TimesNet in Paddle, data loading, training, export, evaluation, prediction.

``from timesnet import load_model`` is the Python API (see :mod:`timesnet.api`); it is
resolved on first use so that importing a submodule does not load the API's readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from timesnet.api import ClassificationResult, Model, load_model, save_results_csv

__all__ = ["ClassificationResult", "Model", "load_model", "save_results_csv"]


def __getattr__(name: str) -> Any:
    """Resolve the public API names lazily (PEP 562)."""
    if name in __all__:
        from timesnet import api

        return getattr(api, name)
    raise AttributeError(f"module 'timesnet' has no attribute {name!r}")
