"""Choosing a runtime: what each needs, what it says when that is missing, what it imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timesnet.conftest import REPO, SHIPPED_TCN_DIR
from timesnet.errors import ModelError, RuntimeNotInstalledError
from timesnet.manifest import MANIFEST_FILE, ONNX_FILE
from timesnet.predictor import RUNTIMES, load_predictor

# runtime -> (the module its engine imports, the pip package the message names)
PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "openvino": ("openvino", "openvino"),
    "paddle": ("paddle", "paddlepaddle"),
}


@pytest.fixture
def tcn_without_onnx(tmp_path: Path) -> Path:
    """The shipped TCN as a model trained before model.onnx existed."""
    copy = tmp_path / "tcn"
    shutil.copytree(SHIPPED_TCN_DIR, copy, ignore=shutil.ignore_patterns("reports"))
    (copy / ONNX_FILE).unlink()
    data = json.loads((copy / MANIFEST_FILE).read_text())
    del data["files"][ONNX_FILE]
    (copy / MANIFEST_FILE).write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_onnx_runtimes_never_import_paddle(runtime: str) -> None:
    code = (
        "import sys, numpy as np; from timesnet.predictor import load_predictor; "
        f"p = load_predictor('models/uwave-tcn', runtime={runtime!r}); "
        "assert p.predict_batch(np.zeros((3, 315, 3), np.float32)).shape == (3, 8); "
        "p.close(); print(sorted(m for m in sys.modules if m.split('.')[0] == 'paddle'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # no Paddle: no oneDNN chatter, no signal handlers


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_runtime_not_installed_is_one_line_naming_the_pip_package(
    runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, package = PACKAGES[runtime]
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(RuntimeNotInstalledError) as caught:
        load_predictor(SHIPPED_TCN_DIR, runtime=runtime)
    message = str(caught.value)
    assert f"pip install {package}`" in message and "\n" not in message


def test_onnxruntime_on_a_gpu_names_the_gpu_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeNotInstalledError, match="pip install onnxruntime-gpu`"):
        load_predictor(SHIPPED_TCN_DIR, device="gpu", runtime="onnxruntime")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_model_without_onnx_names_the_export_command(
    tcn_without_onnx: Path, runtime: str
) -> None:
    with pytest.raises(ModelError) as caught:
        load_predictor(tcn_without_onnx, runtime=runtime)
    message = str(caught.value)
    assert "has no model.onnx" in message and "\n" not in message
    assert f"`sensorstream export-onnx --model {tcn_without_onnx}`" in message


def test_paddle_serves_a_model_without_onnx(tcn_without_onnx: Path) -> None:
    predictor = load_predictor(tcn_without_onnx, runtime="paddle")
    assert predictor.runtime == "paddle"
    predictor.close()


def test_an_unknown_runtime_names_the_choices() -> None:
    with pytest.raises(
        ModelError, match="unknown runtime 'tensorrt'; use one of paddle, onnxruntime"
    ):
        load_predictor(SHIPPED_TCN_DIR, runtime="tensorrt")  # type: ignore[arg-type]


def test_paddle_prints_nothing_on_stdout_or_stderr_while_it_serves() -> None:
    # Paddle 3.3's oneDNN kernel choice writes "ReduceMeanCheckIfOneDNNSupport" to fd 1
    # at a predictor's first run; load_predictor's warm-up makes that run with fd 1 shut
    code = (
        "import numpy as np; from timesnet.predictor import load_predictor; "
        "p = load_predictor('models/uwave', runtime='paddle', threads=1); "
        "p.predict_batch(np.zeros((5, 315, 3), np.float32)); p.close()"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ReduceMeanCheckIfOneDNNSupport" not in result.stdout + result.stderr
