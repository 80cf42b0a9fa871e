"""The machine's measured float32 peak: a large GEMM through each math library, 1 and N threads.

`measure_peaks` runs one child process per thread count (OpenBLAS reads its thread
count from the environment when numpy loads), alternating the children `repeats`
times; inside a child the libraries take turns, round after round, and each keeps
its best round. GFLOP/s = 2 n^3 / seconds per product.

CPU libraries: numpy (OpenBLAS), and the library each predictor runtime computes
with: Paddle Inference (oneDNN, a saved x @ W graph), ONNX Runtime (MLAS, a one-node
MatMul model) and OpenVINO (its CPU plugin), each when importable. GPU: paddle.matmul
on the GPU build of Paddle (cuBLAS) and ONNX Runtime's CUDA provider, each once with
TF32 off (NVIDIA_TF32_OVERRIDE=0: true float32) and once as the library leaves it.

    python -m bench.gemm --device cpu --threads 2 --out peaks.json   # one child's figures
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.onnx_matmul import matmul_model

CPU_SIZES = (1024, 2048)
GPU_SIZES = (4096, 8192)
ROUNDS = 3
MIN_ROUND_S = 0.25
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

Probe = Callable[[], Any]  # one product; what it returns is not used
Built = tuple[str, Probe, Callable[[], Any]]  # label, probe, host copy of the last product


@dataclass(frozen=True)
class Peak:
    """The best GEMM rate one library reached."""

    library: str  # numpy | paddle | onnxruntime | openvino (the runtime it stands for)
    label: str  # what computed it, for people
    device: str
    threads: int  # CPU math threads (0 on a GPU)
    precision: str  # fp32 | tf32-allowed
    n: int
    gflops: float


def runtime_available(name: str) -> bool:
    """Whether the module a runtime needs can be imported."""
    module = {"paddle": "paddle", "onnxruntime": "onnxruntime", "openvino": "openvino"}[name]
    return importlib.util.find_spec(module) is not None


def measure_peaks(
    device: str, threads: tuple[int, ...], repeats: int = 2, quick: bool = False
) -> list[Peak]:
    """Best GEMM rate per library and thread count (CPU) or precision (GPU), children alternated."""
    sizes = (GPU_SIZES if device != "cpu" else CPU_SIZES)[: 1 if quick else None]
    variants: list[tuple[int, str]]
    if device == "cpu":
        variants = [(t, "fp32") for t in dict.fromkeys(threads)]
    else:
        variants = [(0, "fp32"), (0, "tf32-allowed")]
    best: dict[tuple[str, int, str], Peak] = {}
    with tempfile.TemporaryDirectory(prefix="sensorstream-gemm-") as cache:
        for _ in range(repeats):
            for count, precision in variants:
                for peak in _child(device, count, precision, sizes, cache):
                    key = (peak.library, peak.threads, peak.precision)
                    if key not in best or peak.gflops > best[key].gflops:
                        best[key] = peak
    return sorted(best.values(), key=lambda p: (p.library, p.precision, p.threads))


def _child(
    device: str, threads: int, precision: str, sizes: tuple[int, ...], cache: str
) -> list[Peak]:
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in THREAD_ENV})
    if precision == "fp32" and device != "cpu":
        env["NVIDIA_TF32_OVERRIDE"] = "0"  # cuBLAS and cuDNN then never round to TF32
    command = [sys.executable, "-m", "bench.gemm", "--device", device, "--threads", str(threads)]
    out = Path(cache) / f"peaks-{threads}-{precision}.json"
    command += ["--precision", precision, "--cache-dir", cache, "--out", str(out)]
    command += ["--sizes", *map(str, sizes)]
    # Paddle's C++ prints to fd 1 while it builds a predictor: the figures go to a file
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"GEMM child failed: {done.stderr.strip()[-800:]}")
    return [Peak(**row) for row in json.loads(out.read_text())]


def child_main(
    device: str, threads: int, precision: str, sizes: list[int], cache: Path, out: Path
) -> None:
    """Measure every library available here at each size; write the best of each as JSON."""
    best: dict[str, Peak] = {}
    for n in sizes:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        w = rng.standard_normal((n, n), dtype=np.float32)
        probes = _probes(device, threads, a, w, cache)
        seconds = {name: float("inf") for name in probes}
        for _ in range(ROUNDS):
            for name, (_, probe) in probes.items():
                seconds[name] = min(seconds[name], _time_round(probe))
        for name, (label, _) in probes.items():
            rate = 2.0 * n**3 / seconds[name] / 1e9
            if name not in best or rate > best[name].gflops:
                best[name] = Peak(name, label, device, threads, precision, n, rate)
    out.write_text(json.dumps([asdict(p) for p in best.values()]))


def _time_round(probe: Probe) -> float:
    """Seconds per call, over calls filling at least MIN_ROUND_S."""
    calls, started = 0, time.perf_counter()
    while True:
        probe()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_ROUND_S and calls >= 2:
            return elapsed / calls


def _probes(
    device: str, threads: int, a: npt.NDArray[np.float32], w: npt.NDArray[np.float32], cache: Path
) -> dict[str, tuple[str, Probe]]:
    """name -> (label, one product a @ w), each checked against numpy once."""
    reference = a.astype(np.float64) @ w.astype(np.float64)
    builders: dict[str, Callable[[], Built]] = {}
    if device == "cpu":
        builders["numpy"] = lambda: _numpy(a, w)
        if runtime_available("paddle"):
            builders["paddle"] = lambda: _paddle_inference_cpu(a, w, threads, cache)
        if runtime_available("onnxruntime"):
            builders["onnxruntime"] = lambda: _onnxruntime(a, w, threads, "cpu")
        if runtime_available("openvino"):
            builders["openvino"] = lambda: _openvino(a, w, threads, cache, "CPU")
    else:
        if runtime_available("paddle"):
            builders["paddle"] = lambda: _paddle_gpu(a, w, device)
        if runtime_available("onnxruntime"):
            builders["onnxruntime"] = lambda: _onnxruntime(a, w, threads, device)
    probes: dict[str, tuple[str, Probe]] = {}
    for name, build in builders.items():
        try:
            label, call, fetch = build()
        except _Unavailable as exc:
            print(f"gemm: {name} skipped: {exc}", file=sys.stderr)
            continue
        call()
        error = np.abs(np.asarray(fetch(), dtype=np.float64) - reference).max()
        if error > 1e-2 * np.abs(reference).max():  # TF32 rounds to ~1e-3 relative
            raise RuntimeError(f"{label} computed a wrong product (max error {error:.3g})")
        probes[name] = (label, call)
    return probes


def _numpy(a: npt.NDArray[np.float32], w: npt.NDArray[np.float32]) -> Built:
    out = np.empty_like(a)
    return "numpy (OpenBLAS)", lambda: np.matmul(a, w, out=out), lambda: out


def _twice(call: Callable[[], Any]) -> tuple[Probe, Callable[[], Any]]:
    """A probe that returns its product on the host is its own check."""
    return call, call


class _Unavailable(Exception):
    """A library is installed but cannot run here (no GPU provider, say)."""


def _paddle_inference_cpu(
    a: npt.NDArray[np.float32], w: npt.NDArray[np.float32], threads: int, cache: Path
) -> Built:
    """x @ W saved as a Paddle graph and run by Paddle Inference with oneDNN."""
    import paddle
    from paddle import inference

    n = a.shape[0]
    prefix = cache / f"matmul{n}"
    if not prefix.with_suffix(".json").exists():

        class MatMul(paddle.nn.Layer):
            def __init__(self) -> None:
                super().__init__()
                self.w = self.create_parameter(list(w.shape))
                self.w.set_value(w)

            def forward(self, x: paddle.Tensor) -> paddle.Tensor:
                return paddle.matmul(x, self.w)

        spec = [paddle.static.InputSpec([n, n], "float32", "x")]
        paddle.jit.save(MatMul(), str(prefix), input_spec=spec)
    config = inference.Config(f"{prefix}.json", f"{prefix}.pdiparams")
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    source = predictor.get_input_handle(predictor.get_input_names()[0])
    result = predictor.get_output_handle(predictor.get_output_names()[0])

    def run() -> Any:
        source.copy_from_cpu(a)
        predictor.run()
        return result.copy_to_cpu()

    return "Paddle Inference (oneDNN)", *_twice(run)


def _paddle_gpu(a: npt.NDArray[np.float32], w: npt.NDArray[np.float32], device: str) -> Built:
    """paddle.matmul on the GPU (cuBLAS); each call waits for the GPU to finish."""
    import paddle

    if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        raise _Unavailable("this Paddle build has no CUDA or sees no GPU")
    paddle.set_device(device)
    left, right = paddle.to_tensor(a), paddle.to_tensor(w)
    out = [left]

    def run() -> None:
        out[0] = paddle.matmul(left, right)
        paddle.device.synchronize()

    return "paddle.matmul (cuBLAS)", run, lambda: out[0].numpy()


def _onnxruntime(
    a: npt.NDArray[np.float32], w: npt.NDArray[np.float32], threads: int, device: str
) -> Built:
    """A one-node MatMul model in ONNX Runtime: MLAS on CPU, cuBLAS through the CUDA provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if device == "cpu":
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            matmul_model(w, a.shape[0]), options, providers=["CPUExecutionProvider"]
        )
        return "ONNX Runtime (MLAS)", *_twice(lambda: session.run(None, {"x": a})[0])
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise _Unavailable("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    index = int(device.partition(":")[2] or 0)
    session = ort.InferenceSession(
        matmul_model(w, a.shape[0]),
        options,
        providers=[("CUDAExecutionProvider", {"device_id": index})],
    )
    binding = session.io_binding()
    binding.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(a, "cuda", index))
    binding.bind_output("y", "cuda", index)

    return (
        "ONNX Runtime CUDA (cuBLAS)",
        lambda: session.run_with_iobinding(binding),
        lambda: binding.copy_outputs_to_cpu()[0],
    )


def _openvino(
    a: npt.NDArray[np.float32],
    w: npt.NDArray[np.float32],
    threads: int,
    cache: Path,
    target: str,
) -> Built:
    """The MatMul model compiled by OpenVINO for its CPU plugin, float32 kept."""
    import openvino as ov

    path = cache / f"matmul{a.shape[0]}.onnx"
    if not path.exists():
        path.write_bytes(matmul_model(w, a.shape[0]))
    core = ov.Core()
    settings: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if target == "CPU":
        settings["INFERENCE_NUM_THREADS"] = threads
    request = core.compile_model(str(path), target, settings).create_infer_request()

    def run() -> Any:
        request.infer({0: a})
        return request.get_output_tensor(0).data

    return f"OpenVINO {target}", *_twice(run)


def main(argv: list[str] | None = None) -> int:
    """The child: `python -m bench.gemm --device D --threads T --sizes N ...`."""
    parser = argparse.ArgumentParser(prog="python -m bench.gemm", description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(CPU_SIZES))
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = parser.parse_args(argv)
    child_main(args.device, args.threads, args.precision, args.sizes, args.cache_dir, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
