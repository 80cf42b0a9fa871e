"""A one-node ONNX model, y = x @ W, written without the `onnx` package.

The GEMM peak of ONNX Runtime (MLAS on CPU, cuBLAS through its CUDA provider) is
measured on this model. ONNX files are protocol buffers; the handful of fields a
MatMul graph needs are encoded here by hand (field numbers from onnx/onnx.proto), so
the bench needs no package beyond the runtime itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IR_VERSION = 8
OPSET = 17
FLOAT = 1  # TensorProto.DataType.FLOAT


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _text(field: int, value: str) -> bytes:
    return _bytes(field, value.encode())


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    """ValueInfoProto: name, float tensor type of a fixed shape."""
    dims = b"".join(_bytes(1, _int(1, size)) for size in shape)  # Dimension.dim_value
    tensor = _int(1, FLOAT) + _bytes(2, dims)  # TypeProto.Tensor: elem_type, shape
    return _text(1, name) + _bytes(2, _bytes(1, tensor))  # name, type.tensor_type


def matmul_model(weight: npt.NDArray[np.float32], rows: int) -> bytes:
    """Serialized ModelProto of y [rows, N] = x [rows, K] @ weight [K, N] (float32)."""
    weight = np.ascontiguousarray(weight, dtype="<f4")
    k, n = weight.shape
    node = _text(1, "x") + _text(1, "w") + _text(2, "y") + _text(4, "MatMul")
    initializer = b"".join(_int(1, d) for d in weight.shape)  # dims
    initializer += _int(2, FLOAT) + _text(8, "w") + _bytes(9, weight.tobytes())
    graph = (
        _bytes(1, node)
        + _text(2, "gemm")
        + _bytes(5, initializer)
        + _bytes(11, _value_info("x", (rows, k)))
        + _bytes(12, _value_info("y", (rows, n)))
    )
    opset = _text(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _bytes(8, opset) + _bytes(7, graph)
