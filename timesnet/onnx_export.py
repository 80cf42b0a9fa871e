"""The ONNX form of a model directory's network: what ONNX Runtime and OpenVINO read.

`write_onnx` converts the network (the dynamic graph, run by the network code in force,
so the exact rewrites of timesnet/network.py apply to models saved before them) in five
steps:

1. ``paddle.jit.save`` it as the Paddle graph is saved (normalized x [B, L, C] ->
   probabilities [B, K]) into a temporary directory.
2. paddle2onnx, opset 17 (it raises the opset itself where an op needs it), its checker
   on, ``optimize_tool="None"``: the default, polygraphy, pip-installs packages at run time.
3. Pad values. paddle2onnx 2.1.0's pad3d mapper reads the attribute ``value``, but a PIR
   graph names it ``pad_value``, so every constant Pad it writes pads with uninitialized
   memory (0, 1e-38 or 4e27, differing per conversion: answers off by up to 0.97).
   `fix_pad_values` writes the graph's own pad values into them.
4. Weights stored once. Every float32 tensor of at least 1 KiB whose bytes appear in the
   directory's ``model.pdiparams`` becomes ONNX external data pointing there (offset,
   length); a 4-member ensemble's model.onnx is then ~0.3 MB instead of 4 MB, and
   ``model.onnx`` needs ``model.pdiparams`` beside it (both are checked at load).
5. Checked: ONNX Runtime on the result must give the network's probabilities on probe
   windows to 1e-5; only then does it replace ``model.onnx``, in one rename.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import paddle
from paddle.static import InputSpec

from timesnet.errors import ModelError
from timesnet.manifest import (
    GRAPH_FILE,
    MODEL_PREFIX,
    ONNX_FILE,
    PARAMS_FILE,
    ModelManifest,
    file_checksums,
    write_manifest,
)
from timesnet.native_stdout import native_stdout_to_stderr
from timesnet.network import ProbabilityHead

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

OPSET = 17
SHARED_MIN_BYTES = 1024  # smaller tensors (shapes, scalars, biases) stay in the graph
CHECK_TOLERANCE = 1e-5
PROBE_WINDOWS = 6
PAD_OPS = (".pad3d", ".pad")  # PIR op names whose attribute pad_value fills a Pad


def export_onnx(
    network: paddle.nn.Layer, model_dir: str | Path, manifest: ModelManifest
) -> ModelManifest:
    """Write model.onnx of `network` into `model_dir` and list it in the manifest.

    The version stays: model.onnx is the same model in another format. Returns the
    manifest as written.
    """
    write_onnx(network, model_dir)
    updated = replace(manifest, files=file_checksums(model_dir))
    write_manifest(model_dir, updated)
    return updated


def remove_onnx(model_dir: str | Path) -> None:
    """Delete a model.onnx left from an earlier model in `model_dir` (it would not match)."""
    (Path(model_dir) / ONNX_FILE).unlink(missing_ok=True)


def write_onnx(network: paddle.nn.Layer, model_dir: str | Path) -> Path:
    """`model_dir`/model.onnx from `network` (eval mode), checked against it; see the module."""
    import onnx

    directory = Path(model_dir)
    network.eval()
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        graph_dir = Path(scratch)
        config = network.config
        spec = InputSpec([None, config.window_length, config.channels], "float32", "x")
        paddle.jit.save(ProbabilityHead(network), str(graph_dir / MODEL_PREFIX), input_spec=[spec])
        model = onnx.load_from_string(_convert(graph_dir))
        fixed = fix_pad_values(model, pir_pad_values(graph_dir / GRAPH_FILE))
    shared = share_weights(model, directory / PARAMS_FILE)
    partial = directory / f".{ONNX_FILE}.partial"
    try:
        onnx.save(model, str(partial))
        onnx.checker.check_model(str(partial))  # by path: the external data is resolved
        _check_against_network(network, partial)
        os.replace(partial, directory / ONNX_FILE)
    finally:
        partial.unlink(missing_ok=True)
    logger.info(
        "onnx exported dir=%s pads_fixed=%d weights_shared=%d bytes=%d",
        directory,
        fixed,
        shared,
        (directory / ONNX_FILE).stat().st_size,
    )
    return directory / ONNX_FILE


def _convert(graph_dir: Path) -> bytes:
    """paddle2onnx on a PIR graph (model.json + model.pdiparams) -> serialized ONNX."""
    import paddle2onnx

    with native_stdout_to_stderr():  # it prints its progress on stdout
        try:
            converted = paddle2onnx.export(
                str(graph_dir / GRAPH_FILE),
                str(graph_dir / PARAMS_FILE),
                save_file=None,
                opset_version=OPSET,
                enable_onnx_checker=True,
                optimize_tool="None",
            )
        except Exception as exc:  # it logs the cause and then fails on its own missing result
            raise ModelError(
                f"paddle2onnx could not convert the network ({type(exc).__name__}: {exc}); "
                "serve this model with runtime 'paddle'"
            ) from exc
    if not isinstance(converted, bytes) or not converted:
        raise ModelError("paddle2onnx returned no model; serve this model with runtime 'paddle'")
    return converted


def pir_pad_values(model_json: Path) -> list[float]:
    """The pad_value of every pad op in a PIR graph (model.json), in program order."""
    program = json.loads(Path(model_json).read_text())["program"]
    values = []
    for region in program["regions"]:
        for block in region["blocks"]:
            for op in block["ops"]:
                if str(op.get("#", "")).endswith(PAD_OPS):
                    attributes = {a["N"]: a["AT"]["D"] for a in op.get("A", [])}
                    values.append(float(attributes.get("pad_value", 0.0)))
    return values


def fix_pad_values(model: onnx.ModelProto, pad_values: list[float]) -> int:
    """Set every constant-mode Pad's constant_value to the graph's pad value; returns how many.

    All pad ops of our networks pad with the same value (0.0); differing values would
    need mapping Pad by Pad, which is refused rather than guessed.
    """
    from onnx import numpy_helper

    pads = [node for node in model.graph.node if _is_constant_pad(node)]
    if not pads:
        return 0
    if len(set(pad_values)) != 1:
        raise ModelError(
            f"the graph's pad ops pad with {sorted(set(pad_values))}: expected one value "
            "for its Pad nodes; serve this model with runtime 'paddle'"
        )
    value = np.asarray(pad_values[0], dtype=np.float32)
    producers = {out: node for node in model.graph.node for out in node.output}
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in pads:
        name = node.input[2]
        tensor = numpy_helper.from_array(value, name)
        if name in initializers:
            initializers[name].CopyFrom(tensor)
        elif name in producers and producers[name].op_type == "Constant":
            next(a for a in producers[name].attribute if a.name == "value").t.CopyFrom(tensor)
        else:
            raise ModelError(f"Pad {node.name}: its constant_value {name} is not a constant")
    return len(pads)


def _is_constant_pad(node: onnx.NodeProto) -> bool:
    """A Pad in constant mode (the default) with a constant_value input."""
    if node.op_type != "Pad" or len(node.input) < 3 or not node.input[2]:
        return False
    modes = [a.s for a in node.attribute if a.name == "mode"]
    return not modes or modes[0] == b"constant"


def share_weights(model: onnx.ModelProto, params_file: Path) -> int:
    """Point float32 tensors whose bytes are in `params_file` at them; returns how many."""
    from onnx import TensorProto, numpy_helper

    blob = params_file.read_bytes()
    graph = model.graph
    shared = 0
    for tensor in graph.initializer:
        shared += _point_into(tensor, blob, params_file.name)
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1:
            attribute = node.attribute[0]
            if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                tensor = numpy_helper.from_array(numpy_helper.to_array(attribute.t), node.output[0])
                if _point_into(tensor, blob, params_file.name):
                    graph.initializer.append(tensor)  # an initializer can hold external data
                    shared += 1
                    continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return shared


def _point_into(tensor: onnx.TensorProto, blob: bytes, location: str) -> bool:
    """Make `tensor` external data at its bytes' place in `blob`, if they are there."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_type != TensorProto.FLOAT or tensor.data_location == TensorProto.EXTERNAL:
        return False
    raw = numpy_helper.to_array(tensor).astype("<f4").tobytes()
    offset = blob.find(raw) if len(raw) >= SHARED_MIN_BYTES else -1
    if offset < 0:
        return False
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", len(raw))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)
    return True


def _check_against_network(network: paddle.nn.Layer, onnx_path: Path) -> None:
    """ONNX Runtime on `onnx_path` against the network on probe windows, to 1e-5."""
    import onnxruntime

    config = network.config
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(PROBE_WINDOWS, config.window_length, config.channels))
    probe[PROBE_WINDOWS // 2 :] *= 3.0  # normalized windows, some far from the mean
    x = probe.astype(np.float32)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its constant folding warns of initializers it drops
    session = onnxruntime.InferenceSession(
        str(onnx_path), options, providers=["CPUExecutionProvider"]
    )
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    expected = _network_probabilities(network, x)
    difference = float(np.abs(np.asarray(got) - expected).max())
    if not difference <= CHECK_TOLERANCE:
        raise ModelError(
            f"the ONNX conversion differs from the network by {difference:.3g} "
            f"(> {CHECK_TOLERANCE}); serve this model with runtime 'paddle'"
        )


def _network_probabilities(network: paddle.nn.Layer, x: npt.NDArray[np.float32]) -> Any:
    """Softmax of the network's eval-mode output for normalized windows x [B, L, C]."""
    with paddle.no_grad():
        return ProbabilityHead(network)(paddle.to_tensor(x)).numpy()
