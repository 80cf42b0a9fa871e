"""`sensorstream export-onnx`: give an existing model directory its model.onnx.

`sensorstream train` writes model.onnx itself; this adds it to a model trained before,
or writes it again (after a change of the network code or of paddle2onnx). ONNX Runtime
and OpenVINO read it; the model files are not touched, so the version stays.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stream.errors import SensorstreamError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export-onnx subcommand."""
    p = subparsers.add_parser(
        "export-onnx",
        help="write a model directory's model.onnx (what runtimes onnxruntime and openvino read)",
    )
    p.add_argument("--model", required=True, help="model directory (e.g. models/uwave)")
    p.set_defaults(func=_export_onnx, _parser=p)


def _export_onnx(args: argparse.Namespace) -> int:
    """Handler of `sensorstream export-onnx`."""
    from timesnet.errors import ModelError
    from timesnet.manifest import ONNX_FILE, PARAMS_FILE
    from timesnet.network_loader import add_onnx

    try:
        manifest = add_onnx(args.model)
    except ModelError as exc:
        raise SensorstreamError(str(exc)) from exc
    path = Path(args.model) / ONNX_FILE
    print(
        f"wrote {path} ({path.stat().st_size / 1024:,.0f} KiB, weights read from {PARAMS_FILE}; "
        f"agrees with the network to 1e-5); version {manifest.version} unchanged"
    )
    return 0
