"""Numeric CLI flags are bounded at parse time: one argparse error line naming the flag, exit 2."""

from __future__ import annotations

import pytest

from stream.cli import main

DISTILL = ["--teacher", "t", "--data", "d", "--out", "o"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kafka", "start", "--port", "70000"], "argument --port: expected an integer from 1 to"),
        (["kafka", "stop", "--port", "0"], "argument --port: expected an integer from 1 to 65,535"),
        (["kafka", "status", "--port", "abc"], "got 'abc'"),
        (["demo", "--port", "-1"], "argument --port: expected an integer from 1 to 65,535"),
        (["demo", "--speed", "nan"], "argument --speed: expected a number in [0, 1e+06], got"),
        (["demo", "--speed", "-2"], "argument --speed: expected a number in [0, 1e+06]"),
        (["demo", "--devices", "0"], "argument --devices: expected an integer from 1 to 10,000"),
        (["demo", "--devices", "1e9"], "argument --devices: expected an integer"),
        (["train", "--data", "d", "--out", "o", "--seed", "-1"], "argument --seed: expected"),
        (["train", "--data", "d", "--out", "o", "--epochs", "0"], "argument --epochs: expected"),
        (["train", "--data", "d", "--out", "o", "--val-fraction", "1"], "(0, 1), got '1'"),
        (["train", "--data", "d", "--out", "o", "--learning-rate", "inf"], "(0, 10], got 'inf'"),
        (["train", "--data", "d", "--out", "o", "--dropout", "1.5"], "argument --dropout"),
        (["train", "--data", "d", "--out", "o", "--d-model", "99999999"], "argument --d-model"),
        (["distill", *DISTILL, "--temperature", "0"], "argument --temperature: expected"),
        (["distill", *DISTILL, "--hard-weight", "1.5"], "--hard-weight: expected a number in [0"),
        (["distill", *DISTILL, "--num-kernels", "0"], "argument --num-kernels: expected"),
        (["distill", *DISTILL, "--val-fraction", "1"], "[0, 1), got '1'"),
        (["predict", "--model", "m", "--data", "d", "--batch-size", "0"], "--batch-size"),
        (["evaluate", "--model", "m", "--data", "d", "--threads", "100000"], "--threads"),
    ],
)
def test_out_of_bounds_flags_are_one_error_line_and_exit_2(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sensorstream ") and ": error: argument --" in last
    assert message in last


def test_tcn_dilations_out_of_bounds_are_one_line_naming_the_flag(tmp_path, capsys) -> None:
    argv = [
        "train",
        "--data",
        str(tmp_path / "x.ts"),
        "--out",
        str(tmp_path / "m"),
        "--arch",
        "tcn",
        "--tcn-dilations",
        "1,0,4",
    ]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sensorstream train: error: --tcn-dilations '1,0,4': each dilation")
