"""Per-channel normalization: fit on train, apply anywhere, survive the manifest round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from timesnet.errors import ModelError
from timesnet.normalization import Normalization


def test_fit_gives_each_channel_zero_mean_and_unit_std() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[5.0, -2.0, 0.0], scale=[3.0, 0.5, 10.0], size=(40, 50, 3))
    norm = Normalization.fit(x.astype(np.float32))
    z = norm.apply(x).reshape(-1, 3)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-5)
    assert norm.mean.dtype == norm.std.dtype == np.float32
    assert norm.n_channels == 3


def test_constant_channel_is_centred_not_divided_by_zero() -> None:
    x = np.zeros((4, 10, 2), dtype=np.float32)
    x[..., 0] = 7.0
    x[..., 1] = np.arange(10)
    norm = Normalization.fit(x)
    assert norm.std[0] == 1.0
    z = norm.apply(x)
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[..., 0], 0.0)


def test_apply_leaves_the_input_alone_and_accepts_any_leading_shape() -> None:
    norm = Normalization(mean=np.array([1.0, 2.0]), std=np.array([2.0, 4.0]))
    x = np.array([[3.0, 6.0], [1.0, 2.0]], dtype=np.float32)  # [L, C]
    before = x.copy()
    z = norm.apply(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(z, [[1.0, 1.0], [0.0, 0.0]])
    assert z.dtype == np.float32
    assert norm.apply(np.ones((2, 3, 4, 2))).shape == (2, 3, 4, 2)
    assert norm.apply(np.array([1.0, 2.0])).tolist() == [0.0, 0.0]


def test_apply_rejects_a_channel_count_mismatch() -> None:
    norm = Normalization(mean=np.zeros(3), std=np.ones(3))
    with pytest.raises(ModelError, match="expected 3 channels"):
        norm.apply(np.zeros((2, 5, 4)))


def test_stats_cannot_be_changed_through_the_caller_array() -> None:
    mean = np.array([1.0, 2.0], dtype=np.float32)
    norm = Normalization(mean=mean, std=np.ones(2, dtype=np.float32))
    mean[0] = 100.0
    assert norm.mean[0] == 1.0
    with pytest.raises(ValueError):
        norm.mean[0] = 5.0


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 4)),
        elements=st.floats(-1e4, 1e4, width=32),
    )
)
def test_manifest_round_trip_through_json_is_exact(x: np.ndarray) -> None:
    norm = Normalization.fit(x)
    back = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)
    np.testing.assert_array_equal(back.apply(x), norm.apply(x))


@pytest.mark.parametrize(
    "entry",
    [
        {"mean": [0.0]},
        {"mean": [0.0, 1.0], "std": [1.0]},
        {"mean": [0.0], "std": [0.0]},
        {"mean": ["a"], "std": [1.0]},
        {"mean": [], "std": []},
    ],
    ids=["no-std", "length-mismatch", "zero-std", "not-numbers", "empty"],
)
def test_from_dict_rejects_malformed_manifest_entries(entry: dict) -> None:
    with pytest.raises(ModelError):
        Normalization.from_dict(entry)


def test_fit_rejects_non_finite_or_wrongly_shaped_data() -> None:
    with pytest.raises(ModelError, match="NaN"):
        Normalization.fit(np.full((1, 2, 1), np.nan))
    with pytest.raises(ModelError, match=r"\[N, L, C\]"):
        Normalization.fit(np.zeros((5, 3)))
