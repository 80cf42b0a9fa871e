"""The pip package behind each config choice that needs one: a missing one fails at load.

The check looks the module up without importing it (`importlib.util.find_spec`), so
loading a config never pays for importing Paddle or a codec it will not use.
"""

from __future__ import annotations

import importlib.util

# (module, pip package) kafka/codec.py imports for each codec; gzip is in the standard library.
CODEC_PACKAGES = {
    "lz4": ("lz4", "lz4"),
    "zstd": ("zstandard", "zstandard"),
    "snappy": ("snappy", "python-snappy"),
}

# (module, pip package) of each inference runtime (timesnet.predictor.RUNTIMES) on the CPU,
# and on a GPU (the GPU builds provide the same module; README, "GPU hosts").
RUNTIME_PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "openvino": ("openvino", "openvino"),
    "paddle": ("paddle", "paddlepaddle"),
}
GPU_RUNTIME_PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "openvino": ("openvino", "openvino"),
    "paddle": ("paddle", "paddlepaddle-gpu"),
}


def require_package(choice: str, packages: dict[str, tuple[str, str]], what: str) -> None:
    """ValueError saying what to pip install when `choice` needs a module that is missing."""
    module, package = packages[choice]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{choice!r} needs its {what} package: pip install {package}")
