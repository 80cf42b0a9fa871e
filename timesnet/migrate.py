"""Convert a model directory from the pickled network.pdparams to network.npz with checksums.

``python -m timesnet.migrate MODEL_DIR --trust-pickle``: reading the old file runs its
pickle, so the flag says you trust where the directory came from. The exported graph
and parameters, which serve the predictions, are left byte for byte as they were.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from timesnet.errors import ModelError
from timesnet.manifest import (
    LEGACY_NETWORK_FILE,
    MANIFEST_FILE,
    NETWORK_FILE,
    ModelManifest,
    file_checksums,
    load_manifest,
    model_version,
    write_manifest,
)
from timesnet.paddle_warnings import hide_ccache_warning


def migrate(model_dir: str | Path) -> ModelManifest:
    """Rewrite `model_dir`'s pickled weights as .npz and its manifest with sha256 checksums."""
    # imported here, not at the top, so that main() hides Paddle's import warning first
    import paddle

    from timesnet.export import save_weights

    directory = Path(model_dir)
    legacy = directory / LEGACY_NETWORK_FILE
    if not legacy.is_file():
        raise ModelError(f"{legacy} not found: nothing to migrate")
    state = paddle.load(str(legacy))  # the one trusted unpickle, asked for by --trust-pickle
    if "graph_parameter_names" in state:  # an ensemble's name table
        table = state["graph_parameter_names"]
        arrays = {
            "structured_names": np.asarray(list(table)),
            "graph_names": np.asarray(list(table.values())),
        }
    else:
        arrays = {name: np.asarray(value) for name, value in state.items()}
    save_weights(arrays, directory / NETWORK_FILE)
    data = json.loads((directory / MANIFEST_FILE).read_text())
    data["files"] = file_checksums(directory)
    data["version"] = model_version(directory)
    manifest = ModelManifest.from_dict(data)
    write_manifest(directory, manifest)
    legacy.unlink()
    return load_manifest(directory)


def main(argv: list[str] | None = None) -> int:
    """Migrate each named model directory; one line per directory."""
    parser = argparse.ArgumentParser(prog="python -m timesnet.migrate", description=__doc__)
    parser.add_argument("model_dirs", nargs="+", type=Path)
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: the old network.pdparams is a pickle and runs on load",
    )
    args = parser.parse_args(argv)
    hide_ccache_warning()  # stderr carries one line per error
    if not args.trust_pickle:
        parser.error("pass --trust-pickle if you trust these directories' origin")
    for model_dir in args.model_dirs:
        try:
            manifest = migrate(model_dir)
        except ModelError as exc:
            sys.stderr.write(f"timesnet.migrate: error: {exc}\n")
            return 2
        sys.stdout.write(f"{model_dir}: {NETWORK_FILE} written, version {manifest.version}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
