"""Model fixtures: the UWave files, the shipped models, tiny models trained once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from timesnet.dataset import Dataset
from timesnet.predictor import Predictor, load_predictor
from timesnet.readers import read_dataset
from timesnet.uwave import UWAVE_TEST_FILE, UWAVE_TRAIN_FILE

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL_DIR = REPO / "models" / "uwave"
SHIPPED_TCN_DIR = REPO / "models" / "uwave-tcn"

# Small enough to train in seconds on a busy 2-core machine, big enough to learn something.
TINY_TRAIN_FLAGS = [
    "--epochs",
    "3",
    "--d-model",
    "8",
    "--d-ff",
    "8",
    "--e-layers",
    "1",
    "--num-kernels",
    "2",
    "--top-k",
    "2",
    "--val-fraction",
    "0.25",
    "--seed",
    "3",
]
# A tiny student of the shipped ensemble; one kernel and the hard-label term are non-defaults.
TINY_DISTILL_FLAGS = [
    "--epochs",
    "2",
    "--d-model",
    "8",
    "--d-ff",
    "8",
    "--e-layers",
    "1",
    "--num-kernels",
    "1",
    "--top-k",
    "2",
    "--hard-weight",
    "0.25",
    "--seed",
    "3",
]
# The TCN's own settings; stem, last-step head and causal padding are the non-default paths.
TINY_TCN_FLAGS = [
    "--arch",
    "tcn",
    "--epochs",
    "3",
    "--tcn-channels",
    "8",
    "--tcn-downsample",
    "3",
    "--tcn-head",
    "last",
    "--tcn-causal",
    "--val-fraction",
    "0.25",
    "--seed",
    "3",
]


@pytest.fixture(scope="session")
def shipped_predictor() -> Predictor:
    """The predictor of models/uwave, loaded once per session (CPU, 2 threads)."""
    return load_predictor(SHIPPED_MODEL_DIR)


@pytest.fixture(scope="session")
def uwave_test_file(uwave_dir: Path) -> Path:
    """UWaveGestureLibrary_TEST.ts."""
    return uwave_dir / UWAVE_TEST_FILE


@pytest.fixture(scope="session")
def uwave_test_set(uwave_test_file: Path) -> Dataset:
    """The 320 UWave test cases (labels "1.0".."8.0", the order every UWave model uses)."""
    return read_dataset(uwave_test_file, 315)


@pytest.fixture(scope="session")
def subset_ts_file(uwave_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .ts file with the header of UWave TRAIN and its first 5 cases of each class."""
    lines = (uwave_dir / UWAVE_TRAIN_FILE).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    kept: list[str] = []
    per_class: dict[str, int] = {}
    for line in lines[start:]:
        label = line.rsplit(":", 1)[-1].strip()
        if line.strip() and per_class.get(label, 0) < 5:
            per_class[label] = per_class.get(label, 0) + 1
            kept.append(line)
    path = tmp_path_factory.mktemp("subset") / "uwave_subset.ts"
    path.write_text("\n".join(lines[:start] + kept) + "\n")
    return path


@pytest.fixture(scope="session")
def train_tiny(subset_ts_file: Path) -> Callable[[Path, list[str]], int]:
    """A function that runs `sensorstream train` on the subset with the tiny flags."""
    from stream.cli import main

    def run(out_dir: Path, extra: list[str] | None = None) -> int:
        argv = ["train", "--data", str(subset_ts_file), "--out", str(out_dir)]
        return main(argv + TINY_TRAIN_FLAGS + list(extra or []))

    return run


@pytest.fixture(scope="session")
def tiny_model_dir(
    tmp_path_factory: pytest.TempPathFactory, train_tiny: Callable[[Path, list[str]], int]
) -> Path:
    """A tiny model trained once per session by the real `train` command (a cross-fit ensemble)."""
    out_dir = tmp_path_factory.mktemp("tiny") / "model"
    assert train_tiny(out_dir, []) == 0
    return out_dir


@pytest.fixture(scope="session")
def tiny_timesnet_dir(
    tmp_path_factory: pytest.TempPathFactory, train_tiny: Callable[[Path, list[str]], int]
) -> Path:
    """A tiny single TimesNet (`train --no-cross-fit`), trained once per session."""
    out_dir = tmp_path_factory.mktemp("tiny-timesnet") / "model"
    assert train_tiny(out_dir, ["--no-cross-fit"]) == 0
    return out_dir


@pytest.fixture(scope="session")
def tiny_tcn_dir(subset_ts_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TCN trained once per session by the real `train --arch tcn` on 40 UWave cases."""
    from stream.cli import main

    out_dir = tmp_path_factory.mktemp("tiny-tcn") / "model"
    argv = ["train", "--data", str(subset_ts_file), "--out", str(out_dir)]
    assert main(argv + TINY_TCN_FLAGS) == 0
    return out_dir


@pytest.fixture(scope="session")
def distill_tiny(subset_ts_file: Path) -> Callable[[Path, list[str]], int]:
    """A function that runs `sensorstream distill` from the shipped ensemble, tiny flags."""
    from stream.cli import main

    def run(out_dir: Path, extra: list[str] | None = None) -> int:
        argv = ["distill", "--teacher", str(SHIPPED_MODEL_DIR), "--data", str(subset_ts_file)]
        return main(argv + ["--out", str(out_dir)] + TINY_DISTILL_FLAGS + list(extra or []))

    return run


@pytest.fixture(scope="session")
def tiny_distilled_dir(
    tmp_path_factory: pytest.TempPathFactory, distill_tiny: Callable[[Path, list[str]], int]
) -> Path:
    """A tiny TimesNet distilled from the shipped ensemble once per session."""
    out_dir = tmp_path_factory.mktemp("tiny-distilled") / "model"
    assert distill_tiny(out_dir, []) == 0
    return out_dir
