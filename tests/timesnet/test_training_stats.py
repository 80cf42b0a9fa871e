"""Training statistics: decile bins of raw samples, label shares, the manifest field, add-stats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from stream.cli import main
from timesnet.errors import ModelError
from timesnet.manifest import MANIFEST_FILE, MODEL_FILES, ONNX_FILE, file_checksums, load_manifest
from timesnet.readers import read_dataset
from timesnet.training_stats import TrainingStats, bin_counts, dataset_stats, fit_training_stats
from timesnet.uwave import UWAVE_TEST_FILE, UWAVE_TRAIN_FILE

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = (MODELS / "uwave", MODELS / "uwave-tcn")


def reference_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin b of channel c counts values with edges[c][b - 1] <= x < edges[c][b], one by one."""
    channels, inner = edges.shape
    counts = np.zeros((channels, inner + 1), dtype=np.int64)
    for row in values.tolist():
        for c, x in enumerate(row):
            counts[c, sum(1 for e in edges[c].tolist() if e <= x)] += 1
    return counts


small_floats = st.floats(-4, 4, width=32).map(lambda v: round(v, 1))  # ties with edges


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(np.float32, st.tuples(st.integers(0, 40), st.just(2)), elements=small_floats),
    edges=hnp.arrays(np.float32, (2, 4), elements=small_floats),
)
def test_bin_counts_agree_with_counting_one_value_at_a_time(
    values: np.ndarray, edges: np.ndarray
) -> None:
    edges = np.sort(edges, axis=1)  # equal edges allowed: their bins stay empty
    np.testing.assert_array_equal(bin_counts(values, edges), reference_counts(values, edges))


def test_bin_counts_refuse_another_channel_count() -> None:
    with pytest.raises(ValueError, match=r"expected shape \[N, 3\]"):
        bin_counts(np.zeros((5, 2), np.float32), np.zeros((3, 9), np.float32))


def test_deciles_of_continuous_data_hold_a_tenth_each() -> None:
    x = np.random.default_rng(0).normal(size=(50, 100, 3)).astype(np.float32)
    stats = fit_training_stats(x, np.full(50, 100), np.zeros(50, np.int64), 2)
    shares = stats.proportion_array()
    assert shares.shape == (3, 10)
    np.testing.assert_allclose(shares, 0.1, atol=1e-3)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert stats.samples == 5000 and stats.cases == 50
    assert stats.label_proportions == (1.0, 0.0)


def test_the_padding_repeats_are_not_counted_as_samples() -> None:
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 10, 1)).astype(np.float32)
    x[0, :4] = 50.0  # case 0 was 6 samples long: its first 4 are padding repeats
    stats = fit_training_stats(x, np.array([6, 10, 12]), np.array([0, 1, 1]), 2)
    assert stats.samples == 26
    assert max(stats.edges[0]) < 1.0  # the 50s never reached the quantiles
    assert stats.label_proportions == pytest.approx((1 / 3, 2 / 3))


def test_equal_edges_leave_empty_bins_in_training_and_serving() -> None:
    x = np.zeros((4, 20, 1), np.float32)
    x[:, :2] = 1.0  # 90 % zeros: most deciles are 0.0
    stats = fit_training_stats(x, np.full(4, 20), np.arange(4), 4)
    counts = bin_counts(np.zeros((7, 1), np.float32), stats.edge_array())
    shares = stats.proportion_array()
    assert (counts[shares == 0] == 0).all()


def test_stats_round_trip_through_json() -> None:
    x = np.random.default_rng(2).normal(size=(8, 30, 2)).astype(np.float32)
    stats = fit_training_stats(x, np.full(8, 30), np.arange(8) % 3, 3)
    back = TrainingStats.from_dict(json.loads(json.dumps(stats.to_dict())), 2, 3)
    assert back == stats
    np.testing.assert_array_equal(back.edge_array(), stats.edge_array())


def _good() -> dict:
    x = np.random.default_rng(3).normal(size=(4, 30, 2)).astype(np.float32)
    return fit_training_stats(x, np.full(4, 30), np.arange(4) % 2, 2).to_dict()


def _set(path: str, value: object) -> dict:
    data = _good()
    node = data
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "training_stats must be a JSON object or null"),
        (_set("samples", 0), "training_stats.samples must be a positive integer"),
        (_set("cases", True), "training_stats.cases must be a positive integer"),
        (_set("channels", []), "training_stats.channels must list 2 objects"),
        (_set("channels.1.edges", []), r"training_stats.channels\[1\].edges must list 1..99"),
        (_set("channels.0.edges", [float("nan")] * 9), r"channels\[0\].edges must list"),
        (_set("channels.0.edges", [2.0, 1.0] + [3.0] * 7), r"channels\[0\].edges must not"),
        (_set("channels.0.edges", [1.0] * 8), "every channel needs as many edges"),
        (_set("channels.0.proportions", [0.1] * 9), r"channels\[0\].proportions must list 10"),
        (_set("channels.1.proportions", [0.2] * 10), "shares in \\[0, 1\\] that sum to 1"),
        (_set("channels.1.proportions", [1.5, -0.5] + [0.0] * 8), "shares in"),
        (_set("label_proportions", [1.0]), "training_stats.label_proportions must list 2"),
    ],
)
def test_a_bad_stats_field_is_named(data: object, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        TrainingStats.from_dict(data, 2, 2)


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "uwave"
    shutil.copytree(SHIPPED[0], copy, ignore=shutil.ignore_patterns("reports"))
    return copy


def _edit(model_dir: Path, key: str, value: object) -> None:
    path = model_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    if value is None:
        data.pop(key)
    else:
        data[key] = value
    path.write_text(json.dumps(data))


def test_a_bad_stats_field_in_a_manifest_is_one_line_naming_it(shipped_copy: Path) -> None:
    _edit(shipped_copy, "training_stats", {"samples": 1, "cases": 1, "channels": []})
    with pytest.raises(ModelError) as caught:
        load_manifest(shipped_copy)
    message = str(caught.value)
    assert message.startswith(f"{shipped_copy / MANIFEST_FILE}: training_stats.channels must")
    assert "\n" not in message


def test_a_model_without_stats_still_loads(shipped_copy: Path) -> None:
    _edit(shipped_copy, "training_stats", None)
    assert load_manifest(shipped_copy).training_stats is None


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_models_carry_the_stats_of_their_training_file(
    model_dir: Path, uwave_dir: Path
) -> None:
    manifest = load_manifest(model_dir)  # checks the version against the model files
    train = read_dataset(uwave_dir / UWAVE_TRAIN_FILE, manifest.window_length, manifest.labels)
    assert manifest.training["data_sha256"] == train.source_sha256
    assert manifest.training_stats == dataset_stats(train)
    assert manifest.training_stats.label_proportions == (0.125,) * 8


def test_add_stats_stores_them_and_keeps_the_version_and_the_files(
    shipped_copy: Path, uwave_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = load_manifest(shipped_copy)
    _edit(shipped_copy, "training_stats", None)
    before = file_checksums(shipped_copy)
    data = uwave_dir / UWAVE_TRAIN_FILE
    assert main(["add-stats", "--model", str(shipped_copy), "--data", str(data)]) == 0
    assert f"version {shipped.version} unchanged" in capsys.readouterr().out
    after = load_manifest(shipped_copy)
    assert after.training_stats == shipped.training_stats
    assert after.version == shipped.version
    assert file_checksums(shipped_copy) == before and set(before) == {*MODEL_FILES, ONNX_FILE}
    assert after.to_dict() == shipped.to_dict()  # nothing else in the manifest moved


def test_add_stats_refuses_a_file_the_model_was_not_trained_on(
    shipped_copy: Path, uwave_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test_file = str(uwave_dir / UWAVE_TEST_FILE)
    assert main(["add-stats", "--model", str(shipped_copy), "--data", test_file]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the file" in err[0] and "--allow-other-data" in err[0]
    argv = ["add-stats", "--model", str(shipped_copy), "--data", test_file, "--allow-other-data"]
    assert main(argv) == 0
    test_set = read_dataset(test_file, 315, load_manifest(shipped_copy).labels)
    assert load_manifest(shipped_copy).training_stats == dataset_stats(test_set)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_tcn_dir"])
def test_train_stores_the_stats_of_the_whole_training_file(
    fixture: str, subset_ts_file: Path, request: pytest.FixtureRequest
) -> None:
    model_dir = request.getfixturevalue(fixture)  # a cross-fit ensemble, then fit_model_dir
    manifest = load_manifest(model_dir)
    data = read_dataset(subset_ts_file, 315, manifest.labels)
    assert manifest.training_stats == dataset_stats(data)
    assert manifest.training_stats.cases == 40
