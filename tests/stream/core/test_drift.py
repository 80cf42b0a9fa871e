"""Drift: PSI against a plain formula, the ring and the strided sample against naive lists,
the gauges only once there is something to compare, nothing at all without statistics."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.config.schema import DriftConfig
from stream.core.drift import (
    MAX_SAMPLED_VALUES,
    PSI_EPSILON,
    DriftMonitor,
    NoDrift,
    Ring,
    drift_monitor,
    psi,
)
from stream.core.metrics import WorkerMetrics
from timesnet.manifest import load_manifest
from timesnet.training_stats import bin_counts, fit_training_stats

SHIPPED_MODEL = Path(__file__).resolve().parents[3] / "models" / "uwave"


def reference_psi(counts: list[int], shares: list[float]) -> float:
    """The formula as written: shares raised to epsilon, sum of (p - q) ln(p / q)."""
    total = sum(counts) or 1
    value = 0.0
    for count, share in zip(counts, shares, strict=True):
        p = max(count / total, PSI_EPSILON)
        q = max(share, PSI_EPSILON)
        value += (p - q) * math.log(p / q)
    return value


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(0, 1000), min_size=2, max_size=12),
    weights=st.lists(st.floats(0, 1), min_size=12, max_size=12),
)
def test_psi_matches_the_formula(counts: list[int], weights: list[float]) -> None:
    weights = weights[: len(counts)]
    total = sum(weights)
    shares = [w / total for w in weights] if total > 0 else [1 / len(counts)] * len(counts)
    got = psi(np.asarray(counts), np.asarray(shares))
    assert got == pytest.approx(reference_psi(counts, shares), rel=1e-9, abs=1e-12)
    assert got >= -1e-12  # PSI is a sum of two KL divergences: never negative


def test_psi_known_values() -> None:
    assert psi(np.array([10, 10]), np.array([0.5, 0.5])) == 0.0
    expected = (0.5 - 0.9) * math.log(0.5 / 0.9) + (0.5 - 0.1) * math.log(0.5 / 0.1)
    assert psi(np.array([1, 1]), np.array([0.9, 0.1])) == pytest.approx(expected)
    # an empty decile bin costs ~0.69, bins empty on both sides nothing
    one_empty = psi(np.array([0] + [1] * 9), np.full(10, 0.1))
    assert one_empty == pytest.approx(0.69, abs=0.02)
    assert psi(np.array([0, 5, 5]), np.array([0.0, 0.5, 0.5])) == 0.0


def test_psi_works_per_channel() -> None:
    counts = np.array([[5, 5], [9, 1]])
    shares = np.array([[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(
        psi(counts, shares), [0.0, reference_psi([9, 1], [0.5, 0.5])], rtol=1e-12
    )


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.integers(1, 9),
    pushes=st.lists(st.integers(0, 20), max_size=12),
)
def test_ring_keeps_the_last_rows_like_a_list(capacity: int, pushes: list[int]) -> None:
    ring = Ring(capacity, (2,), np.int64)
    pushed: list[list[int]] = []
    for size in pushes:
        rows = [[len(pushed) + i, -(len(pushed) + i)] for i in range(size)]
        ring.push(np.asarray(rows, dtype=np.int64).reshape(size, 2))
        pushed.extend(rows)
        assert len(ring) == min(len(pushed), capacity)
        kept = sorted(map(tuple, ring.rows().tolist()))
        assert kept == sorted(map(tuple, pushed[len(pushed) - len(ring) :]))


def stats(channels: int = 2, seed: int = 0, classes: int = 4):
    x = np.random.default_rng(seed).normal(size=(40, 100, channels)).astype(np.float32)
    return fit_training_stats(x, np.full(40, 100), np.arange(40) % classes, classes)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def monitor(config: DriftConfig, training=None, clock=None) -> tuple[DriftMonitor, WorkerMetrics]:
    metrics = WorkerMetrics(CollectorRegistry())
    kwargs = {"clock": clock} if clock is not None else {}
    return DriftMonitor(training or stats(), config, metrics, **kwargs), metrics


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(100, 5000),
    polls=st.lists(st.integers(0, 3000), max_size=8),
)
def test_the_kept_sample_is_every_strideth_sample_of_the_latest_window(
    window: int, polls: list[int]
) -> None:
    drift, _ = monitor(DriftConfig(window_samples=window))
    seen = 0
    for size in polls:
        values = np.arange(seen, seen + size, dtype=np.float32)[:, None].repeat(2, axis=1)
        drift.observe_samples(values)
        seen += size
    expected = [i for i in range(seen) if i % drift.stride == 0]
    expected = expected[max(len(expected) - drift._samples.capacity, 0) :]
    kept = drift.kept_samples()
    assert sorted(kept[:, 0].astype(int).tolist()) == expected
    np.testing.assert_array_equal(kept[:, 0], kept[:, 1])
    # the ring spans about window_samples of the stream
    assert window - drift.stride < drift._samples.capacity * drift.stride < window + drift.stride


def test_the_sample_is_bounded_whatever_the_window() -> None:
    drift, _ = monitor(DriftConfig(window_samples=1_000_000_000))
    assert drift._samples.capacity * 2 <= MAX_SAMPLED_VALUES
    drift, _ = monitor(DriftConfig(window_samples=100_000), stats(channels=3))
    assert (drift.stride, drift._samples.capacity) == (10, 10_000)


def test_strided_and_other_dtype_polls_are_sampled_alike() -> None:
    drift, _ = monitor(DriftConfig(window_samples=100))
    base = np.arange(60, dtype=np.float64).reshape(30, 2)
    drift.observe_samples(np.asfortranarray(base))  # columns contiguous, not rows
    drift.observe_samples(base[::-1] + 100)  # negative row stride
    expected = np.concatenate([base, base[::-1] + 100]).astype(np.float32)
    np.testing.assert_array_equal(np.sort(drift.kept_samples(), axis=0), np.sort(expected, axis=0))


def test_input_psi_is_that_of_the_kept_samples_against_training() -> None:
    training = stats()
    drift, _ = monitor(DriftConfig(window_samples=1000), training)  # stride 1: all kept
    values = np.random.default_rng(5).normal(size=(1000, 2)).astype(np.float32)
    values[:, 1] *= 3
    drift.observe_samples(values)
    counts = bin_counts(values, training.edge_array())
    expected = [reference_psi(row, shares) for row, shares in zip(
        counts.tolist(), training.proportion_array().tolist(), strict=True
    )]  # fmt: skip
    np.testing.assert_allclose(drift.input_psi(), expected, rtol=1e-9)
    got = drift.input_psi()
    assert got[0] < 0.1 < 0.25 < got[1]


def test_label_psi_is_that_of_the_last_window_events_classes() -> None:
    training = stats(classes=4)  # 10 cases of each class: 0.25 each
    drift, _ = monitor(DriftConfig(window_events=10), training)
    assert drift.label_psi() is None
    drift.observe_classes(np.array([3] * 50))  # pushed out below
    drift.observe_classes(np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 0]))
    assert drift.label_psi() == pytest.approx(reference_psi([4, 2, 2, 2], [0.25] * 4))


def series(metrics: WorkerMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "drift" in sample.name:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def test_gauges_appear_once_there_is_something_to_compare_every_interval_s() -> None:
    clock = Clock()
    drift, metrics = monitor(DriftConfig(interval_s=10.0), clock=clock)
    assert "drift" not in generate_latest(metrics.registry).decode()
    drift.observe_samples(np.zeros((50, 2), np.float32))
    clock.now = 9.9
    drift.maybe_update()
    assert series(metrics) == {}
    clock.now = 10.0
    drift.maybe_update()
    first = series(metrics)
    assert set(first) == {
        "sensorstream_input_drift_psi{channel=0}",
        "sensorstream_input_drift_psi{channel=1}",
    }  # no label gauge before a window was classified
    drift.observe_classes(np.array([1, 2]))
    drift.observe_samples(np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32))
    clock.now = 19.0
    drift.maybe_update()
    assert series(metrics) == first
    clock.now = 20.0
    drift.maybe_update()
    second = series(metrics)
    assert "sensorstream_label_drift_psi{}" in second
    assert (
        second["sensorstream_input_drift_psi{channel=0}"]
        < first["sensorstream_input_drift_psi{channel=0}"]
    )


def test_a_model_without_statistics_gets_no_monitor_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = load_manifest(SHIPPED_MODEL)
    metrics = WorkerMetrics(CollectorRegistry())
    with caplog.at_level(logging.INFO, logger="stream.core.drift"):
        drift = drift_monitor(DriftConfig(), replace(manifest, training_stats=None), metrics)
    assert isinstance(drift, NoDrift)
    lines = [r.getMessage() for r in caplog.records if r.name == "stream.core.drift"]
    assert len(lines) == 1 and "no training statistics" in lines[0] and "add-stats" in lines[0]
    drift.observe_samples(np.zeros((5, 3), np.float32))
    drift.observe_classes(np.array([1]))
    drift.maybe_update()
    assert "drift" not in generate_latest(metrics.registry).decode()
    assert isinstance(drift_monitor(DriftConfig(), manifest, metrics), DriftMonitor)


def test_a_monitor_for_another_model_takes_the_previous_gauges_off_metrics() -> None:
    manifest = load_manifest(SHIPPED_MODEL)
    metrics = WorkerMetrics(CollectorRegistry())
    drift = drift_monitor(DriftConfig(), manifest, metrics)
    drift.observe_samples(np.zeros((10, 3), np.float32))
    drift.observe_classes(np.array([0, 1]))
    drift.update()
    assert len(series(metrics)) == 4
    again = drift_monitor(DriftConfig(), manifest, metrics)
    assert series(metrics) == {}
    again.observe_classes(np.array([2]))
    again.update()
    assert list(series(metrics)) == ["sensorstream_label_drift_psi{}"]
    drift_monitor(DriftConfig(), replace(manifest, training_stats=None), metrics)
    assert series(metrics) == {}
