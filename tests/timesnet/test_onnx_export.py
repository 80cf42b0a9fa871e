"""model.onnx: converted from the network, pads fixed, weights shared, checked, version kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import paddle
import pytest
from onnx import numpy_helper
from paddle.static import InputSpec

from stream.cli import main
from tests.timesnet.conftest import SHIPPED_MODEL_DIR, SHIPPED_TCN_DIR
from timesnet import onnx_export
from timesnet.errors import ModelError
from timesnet.export import export_model
from timesnet.manifest import (
    GRAPH_FILE,
    MANIFEST_FILE,
    MODEL_FILES,
    ONNX_FILE,
    PARAMS_FILE,
    load_manifest,
    model_version,
)
from timesnet.network import ProbabilityHead, TimesNet, TimesNetConfig
from timesnet.network_loader import add_onnx, load_network

# 60 // 7 = 8 samples per row, 8 rows: the fold pads 4 samples (a pad3d in the graph)
PADDED = TimesNetConfig(60, 3, 4, (1, 3, 7), d_model=8, d_ff=8, e_layers=1, num_kernels=2)
GARBAGE = float(np.float32(4e27))  # one of the values paddle2onnx 2.1.0 left in its Pads


@pytest.fixture(scope="module")
def padded_network() -> TimesNet:
    """A random TimesNet whose period-8 fold pads (eval mode)."""
    paddle.seed(11)
    network = TimesNet(PADDED)
    network.eval()
    return network


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    """Normalized windows [8, 60, 3]."""
    return np.random.default_rng(12).normal(size=(8, 60, 3)).astype(np.float32)


def _ort(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    source = model if isinstance(model, Path) else model.SerializeToString()
    session = onnxruntime.InferenceSession(
        str(source) if isinstance(source, Path) else source, providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _paddle(network: TimesNet, x: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return ProbabilityHead(network)(paddle.to_tensor(x)).numpy()


def _pad_constants(model: onnx.ModelProto) -> list[float]:
    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    values = []
    for node in model.graph.node:
        if node.op_type == "Pad" and len(node.input) > 2:
            tensor = constants[node.input[2]].attribute[0].t
            values.append(float(numpy_helper.to_array(tensor)))
    return values


FIX_PAD_VALUES = onnx_export.fix_pad_values


def _set_pad_constants(model: onnx.ModelProto, value: float) -> None:
    """What paddle2onnx 2.1.0 does at random: every Pad's constant_value uninitialized."""
    FIX_PAD_VALUES(model, [value])


def test_the_pad_fix_restores_what_paddle2onnx_leaves_uninitialized(
    padded_network: TimesNet, probe: np.ndarray, tmp_path: Path
) -> None:
    spec = InputSpec([None, 60, 3], "float32", "x")
    paddle.jit.save(ProbabilityHead(padded_network), str(tmp_path / "model"), input_spec=[spec])
    model = onnx.load_from_string(onnx_export._convert(tmp_path))
    expected = _paddle(padded_network, probe)
    _set_pad_constants(model, GARBAGE)
    assert _pad_constants(model) and set(_pad_constants(model)) == {GARBAGE}
    assert np.abs(_ort(model, probe) - expected).max() > 1e-3  # the bug: wrong answers
    pad_values = onnx_export.pir_pad_values(tmp_path / GRAPH_FILE)
    assert pad_values == [0.0]
    assert onnx_export.fix_pad_values(model, pad_values) == len(_pad_constants(model))
    assert set(_pad_constants(model)) == {0.0}
    assert np.abs(_ort(model, probe) - expected).max() <= 1e-5


def test_pads_with_different_values_are_refused_not_guessed() -> None:
    pad = onnx.helper.make_node("Pad", ["x", "pads", "value"], ["y"])
    model = onnx.helper.make_model(onnx.helper.make_graph([pad], "g", [], []))
    with pytest.raises(ModelError, match="expected one value"):
        onnx_export.fix_pad_values(model, [0.0, 1.0])


def test_a_conversion_that_disagrees_with_the_network_is_refused(
    padded_network: TimesNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the pad fix lost, the check against the network would catch it."""
    monkeypatch.setattr(onnx_export, "fix_pad_values", _set_pad_constants_returning(GARBAGE))
    _paddle_graph(padded_network, tmp_path)
    with pytest.raises(ModelError, match=r"differs from the network by .*runtime 'paddle'"):
        onnx_export.write_onnx(padded_network, tmp_path)
    assert not (tmp_path / ONNX_FILE).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _set_pad_constants_returning(value: float):
    def fake(model: onnx.ModelProto, pad_values: list[float]) -> int:
        _set_pad_constants(model, value)
        return 0

    return fake


def _paddle_graph(network: TimesNet, directory: Path) -> None:
    """The model directory's Paddle graph, whose model.pdiparams model.onnx reads from."""
    spec = InputSpec([None, network.config.window_length, 3], "float32", "x")
    paddle.jit.save(ProbabilityHead(network), str(directory / "model"), input_spec=[spec])


def test_model_onnx_reads_its_weights_from_model_pdiparams(
    padded_network: TimesNet, probe: np.ndarray, tmp_path: Path
) -> None:
    _paddle_graph(padded_network, tmp_path)
    path = onnx_export.write_onnx(padded_network, tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert len(external) >= 5  # token conv, inception branches, head
    assert {e.value for t in external for e in t.external_data if e.key == "location"} == {
        PARAMS_FILE
    }
    assert set(_pad_constants(model)) == {0.0}
    assert np.abs(_ort(path, probe) - _paddle(padded_network, probe)).max() <= 1e-5
    shared = sum(int(e.value) for t in external for e in t.external_data if e.key == "length")
    assert shared > (tmp_path / PARAMS_FILE).stat().st_size / 2  # all but the small tensors


@pytest.mark.parametrize("model_dir", [SHIPPED_MODEL_DIR, SHIPPED_TCN_DIR], ids=["uwave", "tcn"])
def test_shipped_models_list_their_onnx_and_keep_their_version(model_dir: Path) -> None:
    manifest = load_manifest(model_dir)
    assert set(manifest.files) == {*MODEL_FILES, ONNX_FILE}
    assert manifest.version == model_version(model_dir)  # model.onnx is not hashed into it


def test_export_onnx_command_adds_the_onnx_and_can_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "tcn"
    shutil.copytree(SHIPPED_TCN_DIR, copy, ignore=shutil.ignore_patterns("reports"))
    before = load_manifest(copy)
    (copy / ONNX_FILE).unlink()
    data = json.loads((copy / MANIFEST_FILE).read_text())
    del data["files"][ONNX_FILE]  # as a model trained before model.onnx existed
    (copy / MANIFEST_FILE).write_text(json.dumps(data))
    for _ in range(2):  # and again over its own output
        assert main(["export-onnx", "--model", str(copy)]) == 0
        out = capsys.readouterr().out
        assert f"wrote {copy / ONNX_FILE}" in out and f"version {before.version} unchanged" in out
        after = load_manifest(copy)
        assert after.version == before.version and ONNX_FILE in after.files
        assert after.test_metrics == before.test_metrics
        assert after.training_stats == before.training_stats


def test_export_onnx_rewrites_a_damaged_onnx(tmp_path: Path) -> None:
    copy = tmp_path / "tcn"
    shutil.copytree(SHIPPED_TCN_DIR, copy, ignore=shutil.ignore_patterns("reports"))
    (copy / ONNX_FILE).write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="model.onnx: sha256 .* differs from the manifest"):
        load_manifest(copy)
    add_onnx(copy)
    load_manifest(copy)


def test_export_onnx_names_a_missing_model_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", "--model", "/nonexistent/model"]) == 2
    assert "model directory /nonexistent/model does not exist" in capsys.readouterr().err


def test_a_listed_onnx_that_is_missing_is_named_with_the_command(tmp_path: Path) -> None:
    copy = tmp_path / "tcn"
    shutil.copytree(SHIPPED_TCN_DIR, copy, ignore=shutil.ignore_patterns("reports"))
    (copy / ONNX_FILE).unlink()
    with pytest.raises(ModelError, match=f"lacks model.onnx.*export-onnx --model {copy}"):
        load_manifest(copy)


def test_a_file_the_manifest_does_not_know_is_refused_in_files(tmp_path: Path) -> None:
    copy = tmp_path / "tcn"
    shutil.copytree(SHIPPED_TCN_DIR, copy, ignore=shutil.ignore_patterns("reports"))
    data = json.loads((copy / MANIFEST_FILE).read_text())
    data["files"]["extra.bin"] = "0" * 64
    (copy / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"files must map each of .* optionally model.onnx"):
        load_manifest(copy)


def test_exporting_over_an_old_model_replaces_its_onnx(
    padded_network: TimesNet, probe: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / ONNX_FILE).write_bytes(b"an earlier model's onnx")
    manifest = export_model(
        padded_network,
        out,
        name="padded",
        labels=("a", "b", "c", "d"),
        normalization={"mean": [0.0] * 3, "std": [1.0] * 3},
        training_config={},
        training={},
    )
    assert load_manifest(out) == manifest and ONNX_FILE in manifest.files
    assert np.abs(_ort(out / ONNX_FILE, probe) - _paddle(padded_network, probe)).max() <= 1e-5


def test_a_failed_conversion_leaves_a_paddle_model_and_says_so(
    padded_network: TimesNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import paddle2onnx

    def broken(*args: object, **kwargs: object) -> bytes:
        raise NameError("name 'onnx_model_str' is not defined")  # how 2.1.0 fails

    monkeypatch.setattr(paddle2onnx, "export", broken)
    out = tmp_path / "model"
    with pytest.raises(ModelError, match="paddle2onnx could not convert .*runtime 'paddle'"):
        export_model(
            padded_network,
            out,
            name="padded",
            labels=("a", "b", "c", "d"),
            normalization={"mean": [0.0] * 3, "std": [1.0] * 3},
            training_config={},
            training={},
        )
    manifest = load_manifest(out)
    assert ONNX_FILE not in manifest.files and not (out / ONNX_FILE).exists()
    assert load_network(out).state_dict().keys() == padded_network.state_dict().keys()
