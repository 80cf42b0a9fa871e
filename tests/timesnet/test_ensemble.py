"""Cross-fitted ensembles: fold assignment, probability averaging, batch invariance, reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from timesnet.crossfit import folds_for, stratified_folds
from timesnet.ensemble_net import EnsembleNet
from timesnet.errors import ModelError
from timesnet.manifest import load_manifest
from timesnet.network import TimesNetConfig
from timesnet.network_loader import load_network
from timesnet.train import predict_logits

SMALL = TimesNetConfig(40, 3, 4, (1, 2), d_model=8, d_ff=8, e_layers=1, num_kernels=2)


@pytest.mark.parametrize(("folds", "seed"), [(2, 0), (4, 1), (5, 7)])
def test_folds_are_disjoint_cover_every_case_and_balance_each_class(folds: int, seed: int) -> None:
    y = np.repeat(np.arange(8), 15)  # 120 cases, 15 per class like UWave TRAIN
    held_out = stratified_folds(y, folds, seed)
    joined = np.concatenate(held_out)
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(y)))
    sizes = [part.size for part in held_out]
    assert max(sizes) - min(sizes) <= 1
    for class_id in range(8):
        per_fold = [int((y[part] == class_id).sum()) for part in held_out]
        assert max(per_fold) - min(per_fold) <= 1


def test_folds_depend_on_the_seed_only() -> None:
    y = np.repeat(np.arange(4), 10)
    first, again = stratified_folds(y, 4, 3), stratified_folds(y, 4, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = stratified_folds(y, 4, 4)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(("fraction", "members"), [(0.25, 4), (0.2, 5), (0.5, 2), (0.3, 3)])
def test_validation_fraction_sets_the_number_of_members(fraction: float, members: int) -> None:
    assert folds_for(fraction) == members


@pytest.mark.parametrize("fraction", [0.0, 0.6, 1.0])
def test_fraction_outside_the_cross_fit_range_says_what_to_pass(fraction: float) -> None:
    with pytest.raises(ModelError, match="--no-cross-fit"):
        folds_for(fraction)


def test_ensemble_returns_the_log_of_the_mean_member_probabilities() -> None:
    paddle.seed(0)
    ensemble = EnsembleNet(SMALL, 3)
    ensemble.eval()
    x = np.random.default_rng(0).normal(size=(5, 40, 3)).astype(np.float32)
    with paddle.no_grad():
        members = [F.softmax(m(paddle.to_tensor(x)), axis=-1).numpy() for m in ensemble.members]
        output = ensemble(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(np.exp(output), np.mean(members, axis=0), atol=1e-6)
    assert not np.allclose(members[0], members[1])


def test_ensemble_answer_for_a_window_does_not_depend_on_its_batch() -> None:
    paddle.seed(1)
    ensemble = EnsembleNet(SMALL, 2)
    x = np.random.default_rng(1).normal(size=(9, 40, 3)).astype(np.float32)
    batched = predict_logits(ensemble, x, batch_size=9)
    alone = np.concatenate([predict_logits(ensemble, x[i : i + 1]) for i in range(9)])
    assert np.abs(batched - alone).max() <= 1e-5


def test_an_ensemble_needs_a_member() -> None:
    with pytest.raises(ModelError, match="at least one member"):
        EnsembleNet(SMALL, 0)


def test_trained_ensemble_records_its_members_and_reloads_as_one_network(
    tiny_model_dir: Path,
) -> None:
    manifest = load_manifest(tiny_model_dir)
    ensemble = manifest.hyperparameters["ensemble"]
    assert ensemble["members"] == 4 and ensemble["seeds"] == [3, 4, 5, 6]
    validation = manifest.training["validation"]
    assert [m["held_out"] for m in validation["members"]] == [10, 10, 10, 10]
    pooled = sum(m["accuracy"] * m["held_out"] for m in validation["members"]) / 40
    assert validation["accuracy"] == pytest.approx(pooled)
    network = load_network(tiny_model_dir)
    assert isinstance(network, EnsembleNet) and len(network.members) == 4
