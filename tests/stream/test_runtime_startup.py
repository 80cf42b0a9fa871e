"""Choosing the inference runtime at start-up: the flag, the config key, the one-line errors,
and a default path that never imports Paddle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli import main
from stream.config import packages
from stream.config.loading import load_config
from stream.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TCN = REPO / "models" / "uwave-tcn"


def _cli(
    *argv: str, code: str = "pass", timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """`sensorstream ARGV` in a child process, after running `code` in it."""
    program = f"import sys; {code}; from stream.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", program, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(REPO)},
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    return lines[-1]


def test_onnxruntime_is_the_default_and_every_runtime_is_accepted() -> None:
    assert load_config(None, environ={}).model.runtime == "onnxruntime"
    for runtime in ("onnxruntime", "openvino", "paddle"):
        config = load_config(None, [f'model.runtime="{runtime}"'], environ={})
        assert config.model.runtime == runtime


def test_an_unknown_runtime_in_the_config_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"model\.runtime: .*'onnxruntime'"):
        load_config(None, ['model.runtime="tensorrt"'], environ={})


@pytest.mark.parametrize(
    ("runtime", "package"),
    [("onnxruntime", "onnxruntime"), ("openvino", "openvino"), ("paddle", "paddlepaddle")],
)
def test_a_runtime_not_installed_is_a_config_error_naming_the_package(
    runtime: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = packages.RUNTIME_PACKAGES[runtime][0]
    monkeypatch.setitem(sys.modules, module, None)  # find_spec now answers None
    with pytest.raises(ConfigError) as caught:
        load_config(None, [f'model.runtime="{runtime}"'], environ={})
    message = str(caught.value)
    assert "model.runtime" in message and f"pip install {package}" in message
    assert "\n" not in message


def test_a_gpu_runtime_not_installed_names_its_gpu_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="pip install onnxruntime-gpu"):
        load_config(None, ['model.device="gpu"'], environ={})


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["demo"],
        ["replay", "--from", "earliest"],
        ["evaluate", "--model", "m", "--data", "d"],
        ["predict", "--model", "m", "--data", "d"],
        ["serve", "--model", "m"],
        ["distill", "--teacher", "m", "--data", "d", "--out", "o"],
    ],
)
def test_every_command_that_loads_a_model_takes_the_runtime_flag(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--runtime", "tensorrt"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --runtime: invalid choice: 'tensorrt'" in err
    assert "'onnxruntime', 'openvino', 'paddle'" in err


def test_run_with_a_runtime_not_installed_stops_with_one_line_exit_2() -> None:
    result = _cli("run", "--runtime", "openvino", code="sys.modules['openvino'] = None")
    assert result.returncode == 2, result.stderr[-2000:]
    line = _error_line(result)
    assert line.startswith("sensorstream run: error: ")
    assert "model.runtime" in line and "pip install openvino" in line


@pytest.mark.parametrize(
    ("runtime", "fragment"),
    [
        ("onnxruntime", "this onnxruntime build has no CUDA; replace onnxruntime with"),
        ("paddle", "this Paddle build has no CUDA; install paddlepaddle-gpu"),
        ("openvino", "OpenVINO sees no such GPU"),
    ],
)
def test_a_gpu_this_runtime_cannot_use_is_one_line_naming_model_device(
    runtime: str, fragment: str
) -> None:
    """This machine's builds have no GPU support (the CI machine has no GPU either)."""
    result = _cli("run", "--runtime", runtime, "--set", 'model.device="gpu"')
    assert result.returncode == 2, result.stderr[-2000:]
    line = _error_line(result)
    assert line.startswith("sensorstream run: error: model.device: device 'gpu' requested but ")
    assert fragment in line


@pytest.fixture
def tcn_without_onnx(tmp_path: Path) -> Path:
    """The shipped TCN as a model trained before model.onnx existed."""
    copy = tmp_path / "tcn"
    shutil.copytree(TCN, copy, ignore=shutil.ignore_patterns("reports", "model.onnx"))
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"]["model.onnx"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_run_on_a_model_without_onnx_names_the_export_command(tcn_without_onnx: Path) -> None:
    result = _cli("run", "--set", f'model.path="{tcn_without_onnx}"')
    assert result.returncode == 2, result.stderr[-2000:]
    line = _error_line(result)
    assert line.startswith("sensorstream run: error: model.path: ")
    assert f"sensorstream export-onnx --model {tcn_without_onnx}" in line


def test_run_on_the_default_runtime_loads_the_model_without_importing_paddle() -> None:
    # windows.length 100 is refused only after the model loaded (its length is 315)
    result = _cli("run", "--set", "windows.length=100", "--set", "windows.hop=100")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "windows.length: the model at" in _error_line(result)
    packages = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }  # the top-level package of every module the process imported
    assert "onnxruntime" in packages
    assert "paddle" not in packages and "paddle2onnx" not in packages
