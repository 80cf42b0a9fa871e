"""Loading a model runs no pickle, verifies every file's sha256 and bounds every manifest field."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paddle
import pytest

from stream.cli import main
from timesnet.errors import ModelError
from timesnet.manifest import (
    LEGACY_NETWORK_FILE,
    MANIFEST_FILE,
    MODEL_FILES,
    NETWORK_FILE,
    file_checksums,
    load_manifest,
    model_version,
)
from timesnet.migrate import migrate
from timesnet.network_loader import load_network
from timesnet.predictor import load_predictor

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = {"ensemble": MODELS / "uwave", "tcn": MODELS / "uwave-tcn"}


class Payload:
    """Unpickling this creates `marker`: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture(params=sorted(SHIPPED))
def model_copy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A writable copy of a shipped model directory (an ensemble, then a plain TCN)."""
    copy = tmp_path / request.param
    shutil.copytree(SHIPPED[request.param], copy, ignore=shutil.ignore_patterns("reports"))
    return copy


def _reseal(model_dir: Path) -> None:
    """Recompute the manifest's checksums and version, as an attacker with write access could."""
    path = model_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["files"] = file_checksums(model_dir)
    data["version"] = model_version(model_dir)
    path.write_text(json.dumps(data))


def _edit_manifest(model_dir: Path, edit: Callable[[dict], None]) -> None:
    path = model_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_the_payload_runs_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()  # so the tests below, which expect no marker, can fail


@pytest.mark.parametrize("form", ["raw pickle", "npz with an object array"])
def test_a_planted_pickle_in_the_weights_is_refused_and_never_run(
    model_copy: Path, tmp_path: Path, form: str
) -> None:
    marker = tmp_path / "ran"
    path = model_copy / NETWORK_FILE
    if form == "raw pickle":
        path.write_bytes(pickle.dumps(Payload(marker)))
    else:
        payload = np.empty(1, dtype=object)
        payload[0] = Payload(marker)
        with open(path, "wb") as handle:
            np.savez(handle, payload=payload)
    _reseal(model_copy)
    with pytest.raises(ModelError, match="without pickles"):
        load_network(model_copy)
    assert not marker.exists()


def test_pickles_beside_the_model_files_are_never_read(model_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name in (LEGACY_NETWORK_FILE, "model.pdiparams.info", "model.pdmodel"):
        (model_copy / name).write_bytes(pickle.dumps(Payload(marker)))
    load_network(model_copy)
    load_predictor(model_copy).predict_batch(np.zeros((1, 315, 3), np.float32))
    assert not marker.exists()


@pytest.mark.parametrize("name", MODEL_FILES)
def test_a_changed_byte_in_any_model_file_is_refused_naming_the_file(
    model_copy: Path, name: str
) -> None:
    path = model_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        load_manifest(model_copy)
    message = str(caught.value)
    assert message.startswith(f"{path}: sha256 ") and "differs from the manifest" in message
    assert "\n" not in message


def test_a_changed_model_file_stops_run_with_one_model_path_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "uwave"
    shutil.copytree(SHIPPED["ensemble"], copy)
    with open(copy / "model.pdiparams", "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert main(["run", "--set", f'model.path="{copy}"']) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"sensorstream run: error: model.path: {copy / 'model.pdiparams'}")


BAD_FIELDS = [
    ("window_length", 0, "window_length must be an integer in 1..100000, got 0"),
    ("window_length", -5, "window_length must be an integer in 1..100000, got -5"),
    ("window_length", 1e12, "window_length must be an integer"),
    ("window_length", "315", "window_length must be an integer"),
    ("channels", 0, "channels must be an integer in 1..1024"),
    ("channels", True, "channels must be an integer"),
    ("labels", [], "labels must list"),
    ("labels", ["a", "a", "b", "c", "d", "e", "f", "g"], "labels must list 1..10000 distinct"),
    ("version", "sha256:xyz", "version must look like sha256:<16 hex digits>"),
    ("architecture", "resnet", "architecture must be one of timesnet, tcn"),
    ("normalization", {"mean": [0, 0, 0], "std": [1, 0, 1]}, "normalization.std must be positive"),
    ("normalization", {"mean": [0, 0], "std": [1, 1, 1]}, "normalization.mean must list 3"),
    ("periods", [0, 5], "periods must be null or list integers in 1..315"),
    ("files", {"model.json": "00"}, "files must map each of model.json"),
    ("name", "", "name must be a non-empty string"),
    ("hyperparameters", {"network": {}}, "hyperparameters.network.num_classes"),
    ("created_at", None, "created_at must be a non-empty string"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_FIELDS)
def test_a_manifest_field_out_of_bounds_is_one_line_naming_it(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    copy = tmp_path / "uwave"
    shutil.copytree(SHIPPED["ensemble"], copy, ignore=shutil.ignore_patterns("reports"))
    _edit_manifest(copy, lambda data: data.__setitem__(key, value))
    with pytest.raises(ModelError) as caught:
        load_manifest(copy)
    message = str(caught.value)
    assert message.startswith(f"{copy / MANIFEST_FILE}: {expected}"), message
    assert "\n" not in message


def test_a_missing_manifest_field_is_named(tmp_path: Path) -> None:
    copy = tmp_path / "uwave"
    shutil.copytree(SHIPPED["ensemble"], copy, ignore=shutil.ignore_patterns("reports"))
    _edit_manifest(copy, lambda data: data.pop("window_length"))
    with pytest.raises(ModelError, match="window_length is missing"):
        load_manifest(copy)


def test_a_zero_window_length_stops_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "uwave"
    shutil.copytree(SHIPPED["ensemble"], copy, ignore=shutil.ignore_patterns("reports"))
    _edit_manifest(copy, lambda data: data.__setitem__("window_length", 0))
    assert main(["run", "--set", f'model.path="{copy}"']) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sensorstream run: error: model.path: ") and "window_length" in last


def test_migrate_turns_pickled_weights_into_checked_npz_with_the_same_weights(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "tcn"
    shutil.copytree(SHIPPED["tcn"], legacy, ignore=shutil.ignore_patterns("reports"))
    before = load_network(legacy).state_dict()
    paddle.save(before, str(legacy / LEGACY_NETWORK_FILE))  # the format models had before
    (legacy / NETWORK_FILE).unlink()
    _edit_manifest(legacy, lambda data: data.pop("files"))
    with pytest.raises(ModelError, match="--trust-pickle"):
        load_manifest(legacy)
    manifest = migrate(legacy)
    assert not (legacy / LEGACY_NETWORK_FILE).exists()
    assert manifest.files == file_checksums(legacy)
    after = load_network(legacy).state_dict()
    assert set(after) == set(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name].numpy(), value.numpy())
