"""The predictor contract, run on the shipped model and on a freshly trained tiny one.

Shapes, probabilities, determinism, batch invariance over the 320 UWave test windows,
the exported graph against the dynamic graph, and the errors a caller can trigger.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from timesnet.batch_predictor import BatchPredictor
from timesnet.dataset import Dataset
from timesnet.errors import ModelError
from timesnet.manifest import MANIFEST_FILE, PARAMS_FILE, load_manifest
from timesnet.network_loader import load_network
from timesnet.normalization import Normalization
from timesnet.predictor import Predictor, load_predictor
from timesnet.train import predict_logits

TOLERANCE = 1e-5
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "uwave"


@pytest.fixture(scope="module", params=["shipped", "tiny"])
def model_dir(request: pytest.FixtureRequest) -> Path:
    """Each model the contract runs against."""
    if request.param == "shipped":
        return SHIPPED_MODEL_DIR
    return request.getfixturevalue("tiny_model_dir")


@pytest.fixture(scope="module")
def predictor(model_dir: Path, request: pytest.FixtureRequest) -> Predictor:
    """The predictor of `model_dir` (the session's shipped predictor is reused)."""
    if model_dir == SHIPPED_MODEL_DIR:
        return request.getfixturevalue("shipped_predictor")
    return load_predictor(model_dir)


@pytest.fixture(scope="module")
def one_at_a_time(predictor: Predictor, uwave_test_set: Dataset) -> np.ndarray:
    """Probabilities [320, K] of the UWave test windows, each predicted alone."""
    return np.concatenate([predictor.predict_batch(window[None]) for window in uwave_test_set.x])


def test_output_is_float32_batch_by_classes(
    predictor: Predictor, one_at_a_time: np.ndarray
) -> None:
    assert one_at_a_time.shape == (320, len(predictor.manifest.labels))
    assert one_at_a_time.dtype == np.float32


def test_probabilities_are_non_negative_and_sum_to_one(one_at_a_time: np.ndarray) -> None:
    assert (one_at_a_time >= 0).all()
    np.testing.assert_allclose(one_at_a_time.sum(axis=1), 1.0, atol=TOLERANCE)


def test_same_input_gives_identical_output(predictor: Predictor, uwave_test_set: Dataset) -> None:
    first = predictor.predict_batch(uwave_test_set.x[:16])
    np.testing.assert_array_equal(first, predictor.predict_batch(uwave_test_set.x[:16]))


@pytest.mark.parametrize("batch_size", [7, 64, 320])
def test_batches_give_the_same_answer_as_one_window_at_a_time(
    predictor: Predictor, uwave_test_set: Dataset, one_at_a_time: np.ndarray, batch_size: int
) -> None:
    x = uwave_test_set.x
    batched = np.concatenate(
        [predictor.predict_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )
    np.testing.assert_array_equal(batched.argmax(axis=1), one_at_a_time.argmax(axis=1))
    assert np.abs(batched - one_at_a_time).max() <= TOLERANCE


def test_exported_graph_matches_dynamic_graph_on_raw_windows(
    model_dir: Path, predictor: Predictor, uwave_test_set: Dataset
) -> None:
    normalization = Normalization.from_dict(predictor.manifest.normalization)
    logits = predict_logits(load_network(model_dir), normalization.apply(uwave_test_set.x))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.abs(predictor.predict_batch(uwave_test_set.x) - expected).max() <= TOLERANCE


def test_the_predictor_is_a_batch_predictor(predictor: Predictor) -> None:
    assert isinstance(predictor, BatchPredictor)


def test_close_releases_the_predictor_and_later_calls_say_so(model_dir: Path) -> None:
    predictor = load_predictor(model_dir)  # its own: the module's predictor stays open
    x = np.zeros((2, 315, 3), dtype=np.float32)
    assert predictor.predict_batch(x).shape == (2, len(predictor.manifest.labels))
    predictor.close()
    closed = rf"the predictor of model {predictor.manifest.name} version .* was closed; load"
    for batch in (x, x[:0], x[:1]):
        with pytest.raises(ModelError, match=closed):
            predictor.predict_batch(batch)
    predictor.close()  # closing twice is fine
    with pytest.raises(ModelError, match=closed):
        predictor.predict_one(x[0])


def test_an_empty_batch_gives_an_empty_answer(predictor: Predictor) -> None:
    empty = np.zeros((0, predictor.manifest.window_length, predictor.manifest.channels))
    assert predictor.predict_batch(empty).shape == (0, len(predictor.manifest.labels))


@pytest.mark.parametrize("shape", [(2, 315, 4), (2, 315, 2), (2, 300, 3), (315, 3), (1, 2, 315, 3)])
def test_wrong_shape_names_the_expected_length_and_channels(
    predictor: Predictor, shape: tuple[int, ...]
) -> None:
    message = (
        r"expects windows shaped \[batch, 315, 3\] \(length 315, 3 channels\), "
        rf"got \[{', '.join(map(str, shape))}\]"
    )
    with pytest.raises(ModelError, match=message):
        predictor.predict_batch(np.zeros(shape, dtype=np.float32))


def test_non_finite_samples_are_refused(predictor: Predictor) -> None:
    x = np.zeros((1, 315, 3), dtype=np.float32)
    x[0, 10, 1] = np.nan
    with pytest.raises(ModelError, match="NaN or infinity"):
        predictor.predict_batch(x)


def test_missing_model_directory_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"model directory {tmp_path / 'nope'} does not exist"):
        load_predictor(tmp_path / "nope")


def test_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"{tmp_path / MANIFEST_FILE} is missing"):
        load_predictor(tmp_path)


def test_changed_model_files_are_refused_by_their_hash(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    params = copy / PARAMS_FILE
    params.write_bytes(params.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelError, match=f"{params}: sha256 .* differs from the manifest's"):
        load_manifest(copy)


def test_missing_model_file_is_named(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / PARAMS_FILE).unlink()
    with pytest.raises(ModelError, match=f"{copy} lacks model.pdiparams"):
        load_predictor(copy)


@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        ("tpu", "unknown device 'tpu'"),
        ("gpu:x", "expected 'gpu' or 'gpu:N'"),
        ("gpu:0", "this Paddle build has no CUDA"),
    ],
)
def test_bad_device_names_say_what_is_accepted(model_dir: Path, device: str, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        load_predictor(model_dir, device=device)
