"""`sensorstream run` whose model refuses any window holding a sample above POISON_ABOVE.

Run as ``python -m tests.integration.failing_predictor_worker run --set ...``: the real
CLI, config, Kafka clients and shipped model, with the model raising on demand.
"""

from __future__ import annotations

import sys

import numpy as np

import stream.service
from stream.cli import main

POISON_ABOVE = 1000.0  # UWave samples are z-normalized: far above any real value


class FailOnPoison:
    """The shipped predictor, except that it raises on a batch holding a poisoned window."""

    def __init__(self, predictor: object) -> None:
        self._predictor = predictor
        self.manifest = predictor.manifest  # type: ignore[attr-defined]

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """The wrapped model's answer, or RuntimeError when a value is above POISON_ABOVE."""
        if (np.asarray(x) > POISON_ABOVE).any():
            raise RuntimeError("model refused a poisoned window\n(detail on a second line)")
        return self._predictor.predict_batch(x)  # type: ignore[attr-defined]


def _serve_failing_model() -> int:
    load_model = stream.service.load_model
    stream.service.load_model = lambda config: FailOnPoison(load_model(config))
    return main()


if __name__ == "__main__":
    sys.exit(_serve_failing_model())
