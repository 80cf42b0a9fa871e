"""The TCN classifier: config, shapes, receptive field, causality, training, the shipped TCN.

Serving (probabilities, batch invariance, export) is in test_predictor_contract.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import paddle
import pytest

from stream.cli import main
from tests.timesnet.conftest import SHIPPED_TCN_DIR
from timesnet.dataset import Dataset
from timesnet.errors import ModelError
from timesnet.manifest import load_manifest, model_version
from timesnet.network_loader import load_network
from timesnet.predictor import load_predictor
from timesnet.tcn import TCN, TCNConfig
from timesnet.uwave import UWAVE_TEST_FILE, UWAVE_TRAIN_FILE

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5
ACCURACY_TARGET = 0.90  # issue 10: TCN test accuracy with validation from train only


def small_config(**overrides: object) -> TCNConfig:
    """A fast config: 3 channels x 60 samples, 4 classes, 8 hidden channels."""
    values: dict = dict(window_length=60, channels=3, num_classes=4, hidden_channels=8, dropout=0.1)
    values.update(overrides)
    return TCNConfig(**values)


def eval_network(config: TCNConfig, seed: int = 0) -> TCN:
    """A freshly initialized network in eval mode (dropout off, batch norm on running stats)."""
    paddle.seed(seed)
    network = TCN(config)
    network.eval()
    return network


def random_windows(batch: int, config: TCNConfig, seed: int = 0) -> np.ndarray:
    """Normal noise windows [B, L, C] float32."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, config.window_length, config.channels)).astype(np.float32)


def step_features(network: TCN, x: np.ndarray) -> np.ndarray:
    """Per-step features [B, H, S] of windows x [B, L, C]."""
    with paddle.no_grad():
        return network.features(paddle.to_tensor(x)).numpy()


# ----------------------------------------------------------------------------- config


def test_uwave_default_dilations_double_up_to_what_the_window_needs() -> None:
    assert TCNConfig(315, 3, 8).dilations == (1, 2, 4, 8, 16, 32, 64, 128)
    assert TCNConfig(315, 3, 8, causal=True).dilations == (1, 2, 4, 8, 16, 32, 64)
    assert TCNConfig(315, 3, 8, downsample=5).dilations == (1, 2, 4, 8, 16)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel_size", [2, 3, 5])
@pytest.mark.parametrize("downsample", [1, 3, 7])
def test_default_receptive_field_is_the_smallest_that_covers_the_window(
    causal: bool, kernel_size: int, downsample: int
) -> None:
    config = small_config(causal=causal, kernel_size=kernel_size, downsample=downsample)
    assert config.receptive_field >= config.required_receptive_field
    one_block_less = small_config(
        causal=causal,
        kernel_size=kernel_size,
        downsample=downsample,
        dilations=config.dilations[:-1] or (1,),
    )
    assert len(config.dilations) == 1 or (
        one_block_less.receptive_field < config.required_receptive_field
    )


def test_config_round_trips_through_dict() -> None:
    config = small_config(dilations=(1, 3, 9), causal=True, head="last", downsample=2)
    assert TCNConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"head": "max"}, "head 'max' unknown; use one of last, gap"),
        ({"dilations": (1, 0)}, r"dilations \[1, 0\] must all be >= 1"),
        ({"kernel_size": 1}, "kernel size >= 2"),
        ({"downsample": 31}, "use at most 30"),
        ({"dropout": 1.0}, r"must be in \[0, 1\)"),
        ({"num_classes": 1}, "classes >= 2"),
    ],
)
def test_config_rejects_impossible_values(overrides: dict, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        small_config(**overrides)


# ----------------------------------------------------------------------------- network


@pytest.mark.parametrize("head", ["gap", "last"])
@pytest.mark.parametrize("downsample", [1, 4])
def test_shapes_windows_to_steps_to_logits(head: str, downsample: int) -> None:
    config = small_config(head=head, downsample=downsample)
    network = eval_network(config)
    x = random_windows(5, config)
    assert step_features(network, x).shape == (5, 8, config.steps)
    assert config.steps == -(-60 // downsample)
    assert network(paddle.to_tensor(x)).shape == [5, 4]


@pytest.mark.parametrize("downsample", [1, 3])
def test_non_causal_default_lets_every_step_see_both_ends_of_the_window(downsample: int) -> None:
    config = small_config(downsample=downsample)
    network = eval_network(config)
    x = random_windows(1, config)
    base = step_features(network, x)
    for sample, step in ((0, -1), (59, 0)):  # first sample -> last step, last -> first
        changed = x.copy()
        changed[0, sample] += 3.0
        assert np.abs(step_features(network, changed)[0, :, step] - base[0, :, step]).max() > 0


@pytest.mark.parametrize("downsample", [1, 3])
def test_causal_default_lets_the_last_step_see_the_first_sample(downsample: int) -> None:
    config = small_config(causal=True, downsample=downsample)
    network = eval_network(config)
    x = random_windows(1, config)
    changed = x.copy()
    changed[0, 0] += 3.0
    difference = step_features(network, changed)[0, :, -1] - step_features(network, x)[0, :, -1]
    assert np.abs(difference).max() > 0


@pytest.mark.parametrize("downsample", [1, 3, 7])
@pytest.mark.parametrize("first_future_sample", [1, 25, 59])
def test_causal_padding_never_looks_ahead(downsample: int, first_future_sample: int) -> None:
    config = small_config(causal=True, downsample=downsample)
    network = eval_network(config)
    x = random_windows(2, config)
    future = x.copy()
    future[:, first_future_sample:] = random_windows(2, config, seed=1)[:, first_future_sample:]
    base, perturbed = step_features(network, x), step_features(network, future)
    # Step j ends on sample (j + 1) * downsample - pad - 1 (the stem pads on the left).
    pad = config.steps * downsample - config.window_length
    step_end = (np.arange(config.steps) + 1) * downsample - pad - 1
    past = step_end < first_future_sample
    np.testing.assert_array_equal(perturbed[:, :, past], base[:, :, past])
    assert np.abs(perturbed[:, :, ~past] - base[:, :, ~past]).max() > 0  # the future matters


def test_non_causal_steps_do_see_the_future() -> None:
    config = small_config(causal=False)
    network = eval_network(config)
    x = random_windows(1, config)
    future = x.copy()
    future[:, 30:] += 1.0
    assert (
        np.abs(
            step_features(network, future)[:, :, :30] - step_features(network, x)[:, :, :30]
        ).max()
        > 0
    )


@pytest.mark.parametrize("head", ["gap", "last"])
def test_eval_network_output_does_not_depend_on_batch_mates(head: str) -> None:
    config = small_config(head=head, downsample=2)
    network = eval_network(config)
    x = random_windows(9, config)
    with paddle.no_grad():
        together = network(paddle.to_tensor(x)).numpy()
        alone = np.concatenate([network(paddle.to_tensor(x[i : i + 1])).numpy() for i in range(9)])
    assert np.abs(together - alone).max() <= TOLERANCE


# ----------------------------------------------------------------------------- trained models


def test_train_arch_tcn_writes_a_tcn_manifest_with_its_settings(
    tiny_tcn_dir: Path, subset_ts_file: Path
) -> None:
    manifest = load_manifest(tiny_tcn_dir)
    assert manifest.architecture == "tcn" and manifest.periods is None
    network = manifest.hyperparameters["network"]
    assert (network["hidden_channels"], network["downsample"], network["head"]) == (8, 3, "last")
    assert network["causal"] is True
    assert network["dilations"] == list(TCNConfig(315, 3, 8, causal=True, downsample=3).dilations)
    assert "--arch tcn" in manifest.training["command"]
    assert len(manifest.training["validation"]["history"]) == 3
    assert manifest.version == model_version(tiny_tcn_dir)


def test_load_network_rebuilds_a_tcn(tiny_tcn_dir: Path) -> None:
    network = load_network(tiny_tcn_dir)
    assert isinstance(network, TCN)
    assert network.config == TCNConfig.from_dict(
        load_manifest(tiny_tcn_dir).hyperparameters["network"]
    )


def test_bad_tcn_dilations_flag_is_one_line_exit_2(
    subset_ts_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train",
        "--arch",
        "tcn",
        "--data",
        str(subset_ts_file),
        "--out",
        str(tmp_path),
        "--tcn-dilations",
        "1,two",
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "sensorstream train: error: --tcn-dilations '1,two': give comma-separated integers "
        "such as 1,2,4,8"
    ]


# ----------------------------------------------------------------------------- shipped TCN


def test_shipped_tcn_manifest_records_its_training_command_and_data(uwave_dir: Path) -> None:
    manifest = load_manifest(SHIPPED_TCN_DIR)
    train_file = uwave_dir / UWAVE_TRAIN_FILE
    assert manifest.name == "uwave-tcn" and manifest.architecture == "tcn"
    assert manifest.training["command"].startswith(
        "sensorstream train --data ../shared/data/uwave/UWaveGestureLibrary_TRAIN.ts "
        "--out models/uwave-tcn"
    )
    assert "--arch tcn" in manifest.training["command"]
    assert manifest.training["data_sha256"] == hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert (
        manifest.test_metrics["data_sha256"]
        == hashlib.sha256((uwave_dir / UWAVE_TEST_FILE).read_bytes()).hexdigest()
    )
    size = sum(path.stat().st_size for path in SHIPPED_TCN_DIR.rglob("*") if path.is_file())
    assert size < 5 * 1024 * 1024


def test_shipped_tcn_reaches_the_target_accuracy_on_the_uwave_test_set(
    uwave_test_set: Dataset,
) -> None:
    predictor = load_predictor(SHIPPED_TCN_DIR)
    assert uwave_test_set.labels == predictor.manifest.labels
    probabilities = predictor.predict_batch(uwave_test_set.x)  # [320, 8]
    accuracy = float((probabilities.argmax(axis=1) == uwave_test_set.y).mean())
    assert accuracy >= ACCURACY_TARGET
    assert accuracy == pytest.approx(predictor.manifest.test_metrics["accuracy"], abs=1e-9)
