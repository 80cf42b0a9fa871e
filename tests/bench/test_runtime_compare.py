"""bench.runtime_compare's figures on tiny fake predictors: quality, invariance, ratios, table."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from bench import runtime_compare


class FakePredictor:
    """Softmax of a fixed projection of each window's mean; `drift` adds batch-size noise."""

    def __init__(self, drift: float = 0.0, flip: bool = False) -> None:
        self.drift = drift
        self.flip = flip

    def predict_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        logits = x.mean(axis=1) @ np.array([[1.0, -1.0, 0.5], [0.0, 1.0, -0.5]])  # [B, 3]
        logits[:, 0] += self.drift * len(x)
        if self.flip:
            logits = logits[:, ::-1]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def windows() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5, 2)).astype(np.float32)
    y = FakePredictor().predict_batch(x).argmax(axis=1).astype(np.int64)
    return x, y


def test_invariance_is_zero_for_a_batch_invariant_predictor_and_not_otherwise() -> None:
    x, _ = windows()
    clean = runtime_compare.invariance(FakePredictor(), x, 8, (3, 20))
    assert clean == {"3": 0.0, "20": 0.0}
    drifting = runtime_compare.invariance(FakePredictor(drift=0.01), x, 8, (3, 20))
    assert drifting["20"] > drifting["3"] > 0


def test_quality_scores_accuracy_and_agreement_against_the_reference() -> None:
    test = windows()
    reference = FakePredictor().predict_batch(test[0])
    same, p = runtime_compare.quality(FakePredictor(), test, reference, quick=True)
    assert same["accuracy"] == 1.0 and same["agreement"] == 1.0 and same["max_abs_dp"] == 0.0
    assert p.shape == (20, 3)
    flipped, _ = runtime_compare.quality(FakePredictor(flip=True), test, reference, quick=True)
    assert flipped["agreement"] < 1.0 and flipped["max_abs_dp"] > 0.0
    alone, _ = runtime_compare.quality(FakePredictor(), test, None, quick=True)
    assert "max_abs_dp" not in alone and alone["accuracy"] == 1.0


def results_with(rates: dict[str, dict[int, float]]) -> dict[str, Any]:
    rows = {
        name: {"precision": "fp32", "accuracy": 0.9, "invariance": {"7": 0.0}} for name in rates
    }
    return {
        "model": "models/uwave",
        "reference": "paddle",
        "default_runtime": "onnxruntime",
        "variants": rows,
        "skipped": {"openvino-int8": "nncf is not installed"},
        "ensemble": {"path": "models/uwave-ensemble", "runtime": "onnxruntime"},
    }


def test_speed_ratios_the_ensemble_target_and_the_table() -> None:
    rates = {
        "paddle": {1: 10.0, 8: 20.0},
        "onnxruntime": {1: 40.0, 8: 100.0},
        "ensemble/onnxruntime": {1: 8.0, 8: 20.0},
    }
    results = results_with(rates)
    runtime_compare._fill_speed(results, rates)
    ort = results["variants"]["onnxruntime"]
    assert ort["best_batch"] == 8 and ort["best_ratio_to_paddle"] == 5.0
    assert ort["ratio_to_paddle"] == {"1": 4.0, "8": 5.0}
    assert results["ensemble"]["ratio"] == 5.0 and results["ensemble"]["holds"]
    text = runtime_compare.table(results)
    assert "| onnxruntime | fp32 |" in text and "5.00x" in text
    assert "uwave / uwave-ensemble at the best batch" in text
    assert "target >= 4x: holds" in text and "not run: openvino-int8" in text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    columns = {line.replace("\\|", "").count("|") for line in lines}  # "\|" is a literal |
    assert len(columns) == 1  # every row has the header's columns
