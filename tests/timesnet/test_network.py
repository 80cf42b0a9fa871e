"""The TimesNet layers: config checks, fixed-period discovery, shapes, batch invariance."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from timesnet.errors import ModelError
from timesnet.network import (
    ProbabilityHead,
    TimesBlock,
    TimesNet,
    TimesNetConfig,
    dominant_frequencies,
    sinusoidal_positions,
)


def small_config(**overrides: object) -> TimesNetConfig:
    """A fast config on 3 channels x 60 samples with periods 60, 20, 12 (bins 1, 3, 5)."""
    values = dict(
        window_length=60,
        channels=3,
        num_classes=4,
        frequencies=(1, 3, 5),
        d_model=8,
        d_ff=8,
        e_layers=2,
        num_kernels=2,
        dropout=0.1,
    )
    values.update(overrides)
    return TimesNetConfig(**values)


def random_windows(batch: int, config: TimesNetConfig, seed: int = 0) -> np.ndarray:
    """Normal noise windows [B, L, C] float32."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, config.window_length, config.channels)).astype(np.float32)


def test_periods_are_window_length_divided_by_each_frequency_bin() -> None:
    assert TimesNetConfig(315, 3, 8, (1, 2, 3)).periods == (315, 157, 105)


def test_config_round_trips_through_dict() -> None:
    config = small_config()
    assert TimesNetConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"frequencies": ()}, "frequencies is empty"),
        ({"frequencies": (0,)}, "frequency bin 0 outside 1..30"),
        ({"frequencies": (31,)}, "frequency bin 31 outside 1..30"),
        ({"num_classes": 1}, "classes >= 2"),
    ],
)
def test_config_rejects_impossible_values(overrides: dict, fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment):
        small_config(**overrides)


def test_dominant_frequencies_finds_the_strongest_bins_of_a_sine_mix() -> None:
    t = np.arange(120)
    series = 3 * np.sin(2 * np.pi * 4 * t / 120) + 2 * np.cos(2 * np.pi * 9 * t / 120)
    series = series + 0.5 * np.sin(2 * np.pi * 30 * t / 120) + 10.0  # DC offset must be ignored
    x = np.stack([series, -series], axis=-1)[None].astype(np.float32)  # [1, 120, 2]
    assert dominant_frequencies(x, 2) == (4, 9)
    assert dominant_frequencies(x, 3) == (4, 9, 30)


def test_sinusoidal_positions_alternate_sine_and_cosine() -> None:
    table = sinusoidal_positions(10, 6)
    assert table.shape == (10, 6)
    np.testing.assert_allclose(table[:, 0], np.sin(np.arange(10)), atol=1e-6)
    np.testing.assert_allclose(table[:, 1], np.cos(np.arange(10)), atol=1e-6)


def test_forward_maps_windows_to_class_logits() -> None:
    paddle.seed(0)
    config = small_config()
    network = TimesNet(config)
    network.eval()
    logits = network(paddle.to_tensor(random_windows(5, config)))
    assert logits.shape == [5, config.num_classes]


def test_times_block_keeps_shape_when_a_period_does_not_divide_the_length() -> None:
    paddle.seed(0)
    config = small_config(frequencies=(7,))  # period 60 // 7 = 8 -> 8 rows of 8, padded by 4
    block = TimesBlock(config)
    block.eval()
    hidden = paddle.to_tensor(np.random.default_rng(1).normal(size=(3, 60, 8)).astype("float32"))
    assert block(hidden).shape == [3, 60, 8]


def test_a_windows_output_does_not_depend_on_its_batch_mates() -> None:
    paddle.seed(0)
    config = small_config()
    network = ProbabilityHead(TimesNet(config))
    network.eval()
    x = random_windows(9, config)
    x[4:] *= 5.0  # batch-mates with very different spectra
    with paddle.no_grad():
        together = network(paddle.to_tensor(x)).numpy()
        alone = np.concatenate([network(paddle.to_tensor(x[i : i + 1])).numpy() for i in range(9)])
        other_mates = network(paddle.to_tensor(np.concatenate([x[:1], x[5:]]))).numpy()
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together[0], other_mates[0], atol=1e-6)


def test_probability_head_rows_sum_to_one() -> None:
    paddle.seed(0)
    config = small_config()
    network = ProbabilityHead(TimesNet(config))
    network.eval()
    with paddle.no_grad():
        probabilities = network(paddle.to_tensor(random_windows(4, config))).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (probabilities >= 0).all()


def test_dropout_is_active_in_training_mode_and_off_in_eval_mode() -> None:
    paddle.seed(0)
    config = small_config(dropout=0.5)
    network = TimesNet(config)
    x = paddle.to_tensor(random_windows(2, config))
    network.train()
    assert not np.allclose(network(x).numpy(), network(x).numpy())
    network.eval()
    np.testing.assert_array_equal(network(x).numpy(), network(x).numpy())
