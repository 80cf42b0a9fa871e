"""What serving needs of a model: the `BatchPredictor` protocol.

The worker, the HTTP endpoint and the Python API depend on this protocol rather than
on Paddle Inference, so a test double, or a predictor in another process, can stand
in for :class:`timesnet.predictor.Predictor` (which `load_predictor` returns, and
which satisfies it). tests/timesnet/test_predictor_contract.py holds every predictor
the project ships or trains to the promises below.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from timesnet.manifest import ModelManifest


@runtime_checkable
class BatchPredictor(Protocol):
    """Raw windows in, class probabilities out, each window independent of its batch-mates."""

    @property
    def manifest(self) -> ModelManifest:
        """The served model: name, version, labels (K), window length L, channels C."""
        ...

    def predict_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw windows x [B, L, C] float32 -> probabilities [B, K] float32, each row summing to 1.

        Row i depends on x[i] alone (batch invariance, to 1e-5), the same input gives the
        same output, and B = 0 gives an empty [0, K]. Bad shapes, NaN or infinity, and
        calls after `close` raise ModelError.
        """
        ...

    def close(self) -> None:
        """Release the model's runtime resources; later predictions raise. Closing twice is fine."""
        ...
