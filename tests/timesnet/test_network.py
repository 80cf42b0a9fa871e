"""The TimesNet layers: config checks, fixed-period discovery, shapes, batch invariance."""

from __future__ import annotations

import types

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle import nn

from timesnet.errors import ModelError
from timesnet.network import (
    ProbabilityHead,
    TimesBlock,
    TimesNet,
    TimesNetConfig,
    dft_basis,
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


# The two exact rewrites (runtime-friendly graph): each against the formulation it replaced.
REWRITE_CONFIGS = {
    "uwave-shape": dict(window_length=315, frequencies=(1, 2, 3)),
    "odd-periods": dict(frequencies=(1, 3, 7)),  # 60 // 7 = 8: a padded fold
    "one-bin": dict(frequencies=(30,), e_layers=1),  # the Nyquist bin
}


def rfft_amplitudes(block: TimesBlock, x: paddle.Tensor) -> paddle.Tensor:
    """The amplitude weights as first written: |rfft(x)| over time, mean over D, fixed bins."""
    amplitude = paddle.abs(paddle.fft.rfft(x, axis=1)).mean(axis=-1)  # [B, F]
    return paddle.concat([amplitude[:, f : f + 1] for f in block.frequencies], axis=1)


class ReferenceTimesNet(TimesNet):
    """TimesNet as first written: circular-padding token Conv1D and rfft amplitudes."""

    def __init__(self, config: TimesNetConfig) -> None:
        super().__init__(config)
        self.token = nn.Conv1D(
            config.channels, config.d_model, 3, padding=1, padding_mode="circular", bias_attr=False
        )
        for block in self.blocks:
            block._amplitudes = types.MethodType(rfft_amplitudes, block)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        tokens = paddle.transpose(self.token(paddle.transpose(x, [0, 2, 1])), [0, 2, 1])
        hidden = self.dropout(tokens + self.positions)
        for block in self.blocks:
            hidden = self.norm(block(hidden))
        hidden = self.dropout(F.gelu(hidden))
        return self.head(paddle.reshape(hidden, [x.shape[0], -1]))


def test_dft_basis_projects_onto_the_rfft_bins() -> None:
    x = np.random.default_rng(2).normal(size=(5, 315, 4))
    bins = (1, 2, 3, 157)
    projected = np.einsum("kl,bld->bkd", dft_basis(315, bins).astype(np.float64), x)
    spectrum = np.fft.rfft(x, axis=1)[:, list(bins), :]  # [B, k, D]
    np.testing.assert_allclose(projected[:, :4], spectrum.real, atol=1e-4)
    np.testing.assert_allclose(projected[:, 4:], spectrum.imag, atol=1e-4)


@pytest.mark.parametrize("overrides", REWRITE_CONFIGS.values(), ids=REWRITE_CONFIGS.keys())
def test_amplitudes_equal_the_mean_rfft_magnitude_at_the_fixed_bins(overrides: dict) -> None:
    config = small_config(**overrides)
    block = TimesBlock(config)
    x = np.random.default_rng(3).normal(size=(6, config.window_length, 8)).astype(np.float32)
    x[3:] *= 40.0  # large amplitudes too
    got = block._amplitudes(paddle.to_tensor(x)).numpy()  # [B, k]
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64), axis=1))  # [B, F, D]
    expected = spectrum[:, list(config.frequencies), :].mean(axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_token_embedding_equals_a_circularly_padded_conv1d() -> None:
    paddle.seed(4)
    config = small_config()
    network = TimesNet(config)
    circular = nn.Conv1D(3, config.d_model, 3, padding=1, padding_mode="circular", bias_attr=False)
    circular.weight.set_value(network.token.weight.numpy())
    x = paddle.to_tensor(random_windows(4, config, seed=5))
    expected = paddle.transpose(circular(paddle.transpose(x, [0, 2, 1])), [0, 2, 1])
    np.testing.assert_allclose(network._tokens(x).numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("overrides", REWRITE_CONFIGS.values(), ids=REWRITE_CONFIGS.keys())
def test_the_network_equals_its_first_formulation_with_the_same_weights(overrides: dict) -> None:
    paddle.seed(6)
    config = small_config(**overrides)
    network = TimesNet(config)
    reference = ReferenceTimesNet(config)
    state = network.state_dict()
    assert {k: v.shape for k, v in reference.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }  # same names and shapes: weights saved by either load into the other
    assert not any("basis" in name for name in state)  # derived, not persisted
    reference.set_state_dict(state)
    network.eval()
    reference.eval()
    x = random_windows(7, config, seed=7)
    x[2] *= 10.0
    with paddle.no_grad():
        got = network(paddle.to_tensor(x)).numpy()
        expected = reference(paddle.to_tensor(x)).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("overrides", REWRITE_CONFIGS.values(), ids=REWRITE_CONFIGS.keys())
def test_rewritten_network_is_batch_invariant(overrides: dict) -> None:
    paddle.seed(8)
    config = small_config(**overrides)
    network = ProbabilityHead(TimesNet(config))
    network.eval()
    x = random_windows(64, config, seed=9)
    x[::3] *= 7.0
    with paddle.no_grad():
        together = network(paddle.to_tensor(x)).numpy()
        alone = np.concatenate([network(paddle.to_tensor(x[i : i + 1])).numpy() for i in range(64)])
        seven = np.concatenate(
            [network(paddle.to_tensor(x[i : i + 7])).numpy() for i in range(0, 64, 7)]
        )
    assert np.abs(together - alone).max() <= 1e-6
    assert np.abs(seven - alone).max() <= 1e-6
