"""The Python API: load_model(dir).predict on arrays, files and lists equals `predict`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.timesnet.conftest import SHIPPED_MODEL_DIR
from timesnet import ClassificationResult, Model, load_model, save_results_csv
from timesnet.dataset import Dataset
from timesnet.errors import ModelError

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = SHIPPED_MODEL_DIR
TOLERANCE = 1e-6


def write_paddlex_csv(path: Path, windows: np.ndarray, group_ids: list[str]) -> Path:
    """Windows [G, L, C] as a PaddleX time-series CSV (exact float32 round trip)."""
    lines = ["group_id,time," + ",".join(f"dim_{c}" for c in range(windows.shape[2]))]
    for group_id, window in zip(group_ids, windows, strict=True):
        for t, sample in enumerate(window):
            lines.append(f"{group_id},{t}," + ",".join(repr(float(v)) for v in sample))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def model() -> Model:
    """The shipped model through the public API."""
    return load_model(MODEL_DIR, device="cpu")


@pytest.fixture(scope="module")
def cli_predictions(uwave_test_file: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """`sensorstream predict` JSON lines for the UWave test file, from a separate process."""
    out = tmp_path_factory.mktemp("cli") / "predictions.jsonl"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "sensorstream"),
            "predict",
            "--model",
            str(MODEL_DIR),
            "--data",
            str(uwave_test_file),
            "--out",
            str(out),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def assert_same_as_cli(results: list[ClassificationResult], expected: list[dict]) -> None:
    """Labels, ids and every probability equal to the CLI's lines (1e-6)."""
    assert len(results) == len(expected)
    for result, line in zip(results, expected, strict=True):
        assert (result.label, result.class_id) == (line["label"], line["class_id"])
        assert result.score == pytest.approx(line["score"], abs=TOLERANCE)
        np.testing.assert_allclose(
            list(result.probabilities.values()), line["probabilities"], atol=TOLERANCE, rtol=0
        )


def test_predict_on_the_ts_file_equals_the_cli_predict_command(
    model: Model, cli_predictions: list[dict], uwave_test_file: Path
) -> None:
    results = model.predict(uwave_test_file)
    assert_same_as_cli(results, cli_predictions)
    assert [r.index for r in results] == [line["index"] for line in cli_predictions]
    assert {r.source for r in results} == {str(uwave_test_file)}
    assert [r.case for r in results] == list(range(320))


def test_batch_size_one_gives_the_same_numbers_as_the_cli(
    model: Model, uwave_test_set: Dataset, cli_predictions: list[dict]
) -> None:
    assert_same_as_cli(model.predict(uwave_test_set.x[:24], batch_size=1), cli_predictions[:24])


def test_one_window_shaped_length_by_channels_gives_one_result(
    model: Model, uwave_test_set: Dataset, cli_predictions: list[dict]
) -> None:
    (result,) = model.predict(uwave_test_set.x[7])  # [L, C]
    assert (result.source, result.case, result.index) == ("<array>", 0, 0)
    assert_same_as_cli([result], cli_predictions[7:8])


def test_a_batch_array_gives_one_result_per_row_in_order(
    model: Model, uwave_test_set: Dataset, cli_predictions: list[dict]
) -> None:
    results = model.predict(uwave_test_set.x[10:15].astype(np.float64))  # [B, L, C]
    assert [r.case for r in results] == [0, 1, 2, 3, 4]
    assert_same_as_cli(results, cli_predictions[10:15])


def test_a_paddlex_csv_file_gives_the_numbers_of_the_same_cases_in_the_ts_file(
    model: Model, uwave_test_set: Dataset, cli_predictions: list[dict], tmp_path: Path
) -> None:
    path = write_paddlex_csv(tmp_path / "three.csv", uwave_test_set.x[3:6], ["x", "y", "z"])
    results = model.predict(str(path))
    assert [(r.source, r.case) for r in results] == [(str(path), 0), (str(path), 1), (str(path), 2)]
    assert_same_as_cli(results, cli_predictions[3:6])


def test_a_list_mixes_files_and_arrays_and_keeps_their_order(
    model: Model, uwave_test_set: Dataset, cli_predictions: list[dict], tmp_path: Path
) -> None:
    path = write_paddlex_csv(tmp_path / "two.csv", uwave_test_set.x[0:2], ["a", "b"])
    results = model.predict([uwave_test_set.x[9], path, uwave_test_set.x[20:23]])
    assert [r.index for r in results] == list(range(6))
    assert [(r.source, r.case) for r in results] == [
        ("<array>", 0),
        (str(path), 0),
        (str(path), 1),
        ("<array>", 0),
        ("<array>", 1),
        ("<array>", 2),
    ]
    expected = [cli_predictions[i] for i in (9, 0, 1, 20, 21, 22)]
    assert_same_as_cli(results, expected)


@pytest.mark.parametrize("shape", [(314, 3), (315, 2), (2, 315, 4), (315,), (1, 1, 315, 3)])
def test_an_array_of_the_wrong_shape_is_refused_naming_the_expected_one(
    model: Model, shape: tuple[int, ...]
) -> None:
    with pytest.raises(ModelError, match=r"expects an array \[315, 3\] or \[batch, 315, 3\]"):
        model.predict(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("bad", [[], [1.0, 2.0], 42, {"x": 1}])
def test_inputs_that_are_neither_arrays_nor_paths_are_refused(model: Model, bad: object) -> None:
    with pytest.raises(ModelError, match="pass"):
        model.predict(bad)  # type: ignore[arg-type]


def test_a_missing_file_is_refused_with_its_name(model: Model, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope.ts"):
        model.predict(tmp_path / "nope.ts")


def test_close_releases_the_predictor_and_later_predictions_say_so() -> None:
    model = load_model(MODEL_DIR, device="cpu")  # its own: the module's model stays open
    window = np.zeros((315, 3), dtype=np.float32)
    assert len(model.predict(window)) == 1
    model.close()
    with pytest.raises(ModelError, match="was closed; load the model again"):
        model.predict(window)
    model.close()  # closing twice is fine


def test_save_to_json_writes_every_field(
    model: Model, uwave_test_set: Dataset, tmp_path: Path
) -> None:
    (result,) = model.predict(uwave_test_set.x[0])
    written = result.save_to_json(tmp_path / "one.json")
    assert json.loads(written.read_text()) == result.to_dict()
    in_dir = result.save_to_json(tmp_path)
    assert in_dir == tmp_path / "array_0_res.json"
    assert json.loads(in_dir.read_text())["probabilities"] == result.probabilities


def test_save_to_csv_round_trips_the_float32_probabilities_exactly(
    model: Model, uwave_test_set: Dataset, tmp_path: Path
) -> None:
    (result,) = model.predict(uwave_test_set.x[1])
    with result.save_to_csv(tmp_path / "one.csv").open(newline="") as handle:
        header, row = list(csv.reader(handle))
    labels = list(result.probabilities)
    assert header == [
        "index",
        "source",
        "case",
        "label",
        "class_id",
        "score",
        *(f"probability_{label}" for label in labels),
    ]
    assert row[3:5] == [result.label, str(result.class_id)]
    assert float(row[5]) == result.score
    assert [float(v) for v in row[6:]] == list(result.probabilities.values())


def test_save_results_csv_writes_one_row_per_result(
    model: Model, uwave_test_set: Dataset, tmp_path: Path
) -> None:
    results = model.predict(uwave_test_set.x[:4])
    with save_results_csv(results, tmp_path / "all.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 5
    assert [row[3] for row in rows[1:]] == [r.label for r in results]


def test_print_shows_the_source_label_score_and_every_probability(
    model: Model, uwave_test_set: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    (result,) = model.predict(uwave_test_set.x[2])
    result.print()
    out = capsys.readouterr().out
    assert out.startswith(
        f"<array> case 0: label {result.label} (class_id {result.class_id}), "
        f"score {result.score:.4f}\n"
    )
    assert len(out.splitlines()) == 1 + len(model.labels)
    best_line = out.splitlines()[1].split()
    assert best_line == [result.label, f"{result.score:.4f}"]


def test_importing_timesnet_loads_neither_the_api_nor_paddle() -> None:
    code = (
        "import sys, timesnet; assert 'timesnet.api' not in sys.modules; "
        "assert 'paddle' not in sys.modules; from timesnet import load_model; "
        "assert load_model.__module__ == 'timesnet.api'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
