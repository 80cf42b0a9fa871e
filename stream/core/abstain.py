"""Abstaining: a window whose top probability is below `[model] min_score` gets no class.

Its event says so instead of naming a class the model is unsure of: ``label`` is
`[model] abstain_label` (default "unknown"), ``class_id`` is -1, ``abstained`` is
true, and ``top_label`` names the class it would have had; ``score`` and
``probabilities`` are kept. It is counted under the abstain label in
``sensorstream_events_total{label}``, shown under it on the status page, and it
matches no label alert (the abstain label is never one of the model's, which
start-up checks), so it also ends a device's run of matching windows.

Scores are compared in float32, the precision events carry: a window whose event
shows ``"score": 0.5`` is not abstained at ``min_score = 0.5``. The default 0.0
never abstains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ABSTAINED = -1  # the class_id of an abstained window


@dataclass(frozen=True)
class Decisions:
    """What a batch of windows [W] is labelled with."""

    top_ids: npt.NDArray[np.intp]  # [W] the most probable class
    scores: npt.NDArray[np.float32]  # [W] its probability
    abstained: npt.NDArray[np.bool_]  # [W] score below min_score
    class_ids: npt.NDArray[np.intp]  # [W] top_ids, ABSTAINED where abstained


def decide(probabilities: npt.NDArray[np.floating], min_score: float) -> Decisions:
    """Top class, score and abstention of each window of probabilities [W, K]."""
    probs = np.asarray(probabilities, dtype=np.float32)  # [W, K]
    top_ids = probs.argmax(axis=1)  # [W]
    scores = probs[np.arange(len(probs)), top_ids]  # [W]
    abstained = scores < np.float32(min_score)
    return Decisions(top_ids, scores, abstained, np.where(abstained, ABSTAINED, top_ids))
