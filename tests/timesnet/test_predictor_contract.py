"""The predictor contract, held by every model the project ships or trains, in every runtime.

Models: the shipped TimesNet ensemble (models/uwave) and TCN (models/uwave-tcn), a
tiny cross-fit ensemble, a tiny single TimesNet and a tiny TCN, each trained once per
session by the real `train` command, and a tiny student of the shipped ensemble made
by the real `distill` command. Runtimes: ONNX Runtime, OpenVINO, Paddle Inference. For
each pair: shapes, probabilities, determinism, batch invariance over the 320 UWave test
windows, the exported graph against the dynamic graph, agreement with Paddle Inference
and the same accuracy, an export round trip, close(), and the errors a caller can
trigger (STYLE 16).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paddle
import pytest

from tests.timesnet.conftest import REPO, SHIPPED_MODEL_DIR, SHIPPED_TCN_DIR
from timesnet.batch_predictor import BatchPredictor
from timesnet.dataset import Dataset
from timesnet.ensemble_net import EnsembleNet, export_ensemble
from timesnet.errors import ModelError
from timesnet.export import export_model
from timesnet.manifest import (
    MANIFEST_FILE,
    ONNX_FILE,
    PARAMS_FILE,
    ModelManifest,
    load_manifest,
    model_version,
)
from timesnet.network import TimesNet
from timesnet.network_loader import load_network
from timesnet.normalization import Normalization
from timesnet.predictor import DEFAULT_RUNTIME, RUNTIMES, Predictor, load_predictor
from timesnet.tcn import TCN
from timesnet.train import predict_logits

TOLERANCE = 1e-5
NO_GPU = {  # what each runtime says of "gpu:0" on a machine (or a build) without one
    "paddle": "this Paddle build has no CUDA",
    "onnxruntime": "this onnxruntime build has no CUDA",
    "openvino": "OpenVINO sees no such GPU",
}
# parameter id -> (a model directory, or the session fixture that trains one; its network)
MODELS: dict[str, tuple[Path | str, type]] = {
    "shipped-ensemble": (SHIPPED_MODEL_DIR, EnsembleNet),
    "shipped-tcn": (SHIPPED_TCN_DIR, TCN),
    "tiny-ensemble": ("tiny_model_dir", EnsembleNet),
    "tiny-timesnet": ("tiny_timesnet_dir", TimesNet),
    "tiny-tcn": ("tiny_tcn_dir", TCN),
    "tiny-distilled": ("tiny_distilled_dir", TimesNet),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_dir(request: pytest.FixtureRequest) -> Path:
    """Each model the contract runs against."""
    source = MODELS[request.param][0]
    return source if isinstance(source, Path) else request.getfixturevalue(source)


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Each inference runtime."""
    return request.param


@pytest.fixture(scope="module")
def predictor(model_dir: Path, runtime: str, request: pytest.FixtureRequest) -> Iterator[Predictor]:
    """The predictor of `model_dir` in `runtime` (the session's shipped one is reused)."""
    if model_dir == SHIPPED_MODEL_DIR and runtime == DEFAULT_RUNTIME:
        yield request.getfixturevalue("shipped_predictor")
        return
    predictor = load_predictor(model_dir, runtime=runtime)
    yield predictor
    predictor.close()


@pytest.fixture(scope="module")
def network(model_dir: Path) -> paddle.nn.Layer:
    """The dynamic-graph network the model was exported from, rebuilt from its directory."""
    return load_network(model_dir)


@pytest.fixture(scope="module")
def paddle_answers(model_dir: Path, uwave_test_set: Dataset) -> np.ndarray:
    """Paddle Inference's probabilities [320, K] of the UWave test windows, batches of 64."""
    reference = load_predictor(model_dir, runtime="paddle")
    try:
        return _in_batches(reference, uwave_test_set.x, 64)
    finally:
        reference.close()


def _in_batches(predictor: Predictor, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [predictor.predict_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


@pytest.fixture(scope="module")
def one_at_a_time(predictor: Predictor, uwave_test_set: Dataset) -> np.ndarray:
    """Probabilities [320, K] of the UWave test windows, each predicted alone (batches of 1)."""
    return np.concatenate([predictor.predict_batch(window[None]) for window in uwave_test_set.x])


def test_every_shipped_model_is_under_contract() -> None:
    """A model added under models/ joins MODELS, so it is held to the contract in each runtime."""
    shipped = {path for path in (REPO / "models").iterdir() if (path / MANIFEST_FILE).is_file()}
    assert shipped == {source for source, _ in MODELS.values() if isinstance(source, Path)}


def test_each_model_is_the_network_its_parameter_names(
    network: paddle.nn.Layer, request: pytest.FixtureRequest
) -> None:
    assert type(network) is MODELS[request.node.callspec.params["model_dir"]][1]


def test_the_predictor_is_a_batch_predictor(predictor: Predictor) -> None:
    assert isinstance(predictor, BatchPredictor)


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
    """predict(batch)[i] == predict(batch[i:i+1]) within 1e-5; `one_at_a_time` is batch 1."""
    batched = _in_batches(predictor, uwave_test_set.x, batch_size)
    np.testing.assert_array_equal(batched.argmax(axis=1), one_at_a_time.argmax(axis=1))
    assert np.abs(batched - one_at_a_time).max() <= TOLERANCE


def test_every_runtime_agrees_with_paddle_inference_and_scores_the_same(
    predictor: Predictor, uwave_test_set: Dataset, paddle_answers: np.ndarray
) -> None:
    answers = _in_batches(predictor, uwave_test_set.x, 64)
    assert np.abs(answers - paddle_answers).max() <= TOLERANCE
    y = uwave_test_set.y
    accuracy = float((answers.argmax(axis=1) == y).mean())
    assert accuracy == float((paddle_answers.argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def raw_windows(uwave_test_set: Dataset) -> np.ndarray:
    """The 320 UWave test windows and 33 of noise, unlike any gesture [353, 315, 3]."""
    noise = np.random.default_rng(1).normal(size=(33, 315, 3)).astype(np.float32)
    return np.concatenate([uwave_test_set.x, noise])


@pytest.fixture(scope="module")
def dynamic_answers(
    model_dir: Path, network: paddle.nn.Layer, raw_windows: np.ndarray
) -> np.ndarray:
    """The dynamic graph's probabilities of `raw_windows` (normalized as the manifest says)."""
    normalization = Normalization.from_dict(load_manifest(model_dir).normalization)
    logits = predict_logits(network, normalization.apply(raw_windows))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    return expected / expected.sum(axis=1, keepdims=True)


def test_exported_graph_matches_dynamic_graph_on_raw_windows(
    predictor: Predictor, raw_windows: np.ndarray, dynamic_answers: np.ndarray
) -> None:
    assert np.abs(predictor.predict_batch(raw_windows) - dynamic_answers).max() <= TOLERANCE


def _export_again(network: paddle.nn.Layer, manifest: ModelManifest, out: Path) -> ModelManifest:
    """Export a loaded network with its manifest's settings, as training would have."""
    common = {
        "name": manifest.name,
        "labels": manifest.labels,
        "normalization": manifest.normalization,
        "training": manifest.training,
    }
    if isinstance(network, EnsembleNet):
        return export_ensemble(network, out, hyperparameters=manifest.hyperparameters, **common)
    return export_model(
        network, out, training_config=manifest.hyperparameters["training"], **common
    )


@pytest.fixture(scope="module")
def exported_again(
    model_dir: Path, network: paddle.nn.Layer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The model's network exported again (Paddle graph, weights, model.onnx, manifest)."""
    out = tmp_path_factory.mktemp("again") / "model"
    _export_again(network, load_manifest(model_dir), out)
    return out


def test_export_round_trip_gives_the_same_network(
    model_dir: Path, network: paddle.nn.Layer, exported_again: Path
) -> None:
    manifest = load_manifest(model_dir)
    loaded = load_manifest(exported_again)
    assert loaded.version == model_version(exported_again)
    assert ONNX_FILE in loaded.files  # every runtime can serve what an export writes
    for field in ("architecture", "labels", "channels", "window_length", "normalization"):
        assert getattr(loaded, field) == getattr(manifest, field), field
    assert loaded.periods == manifest.periods
    assert loaded.hyperparameters["network"] == manifest.hyperparameters["network"]
    before = network.state_dict()
    after = load_network(exported_again).state_dict()
    assert set(after) == set(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name].numpy(), value.numpy(), err_msg=name)


def test_export_round_trip_gives_the_same_probabilities(
    predictor: Predictor, runtime: str, exported_again: Path, uwave_test_set: Dataset
) -> None:
    reloaded = load_predictor(exported_again, runtime=runtime)
    try:
        x = uwave_test_set.x[:64]
        again = reloaded.predict_batch(x)
    finally:
        reloaded.close()
    assert np.abs(again - predictor.predict_batch(x)).max() <= TOLERANCE


def test_close_releases_the_predictor_and_later_calls_say_so(model_dir: Path, runtime: str) -> None:
    predictor = load_predictor(model_dir, runtime=runtime)  # its own: the module's stays open
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


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_missing_model_directory_is_named_in_the_error(tmp_path: Path, runtime_name: str) -> None:
    with pytest.raises(ModelError, match=f"model directory {tmp_path / 'nope'} does not exist"):
        load_predictor(tmp_path / "nope", runtime=runtime_name)


@pytest.mark.parametrize("runtime_name", RUNTIMES)
def test_directory_without_manifest_is_refused(tmp_path: Path, runtime_name: str) -> None:
    with pytest.raises(ModelError, match=f"{tmp_path / MANIFEST_FILE} is missing"):
        load_predictor(tmp_path, runtime=runtime_name)


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


@pytest.mark.parametrize("device", ["tpu", "gpu:x", "gpu:0"])
def test_bad_device_names_say_what_is_accepted(model_dir: Path, runtime: str, device: str) -> None:
    fragment = {"tpu": "unknown device 'tpu'", "gpu:x": "expected 'gpu' or 'gpu:N'"}
    with pytest.raises(ModelError, match=fragment.get(device, NO_GPU[runtime])):
        load_predictor(model_dir, device=device, runtime=runtime)
