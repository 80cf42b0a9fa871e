"""Where a predictor's time goes, operator by operator, and what bounds each kind of operator.

ONNX Runtime: the model's ONNX graph in a session with `enable_profiling`, set up
like the predictor's (threads, full graph optimization, same provider); its trace
holds each node's time, input and output shapes and bytes. Paddle Inference: the
predictor itself under `paddle.profiler`, whose Chrome trace holds each operator's
host time (and, on a GPU, the kernels' device time).

Operators fall in four groups: convolutions, matrix products, the FFT, and the rest
(element-wise arithmetic, layout changes, reductions). A group's FLOPs come from the
shapes in the trace where it has them (ONNX Runtime), else from the hand count of
bench/flops.py; FLOPs over the group's time, against the GEMM peak, say whether it
runs near the compute roof. The rest does almost no arithmetic: its bytes over its
time, against a streaming copy, say whether it is bound by memory or by the cost of
launching many small operators.
"""

from __future__ import annotations

import glob
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.flops import ModelFlops

GROUPS = ("conv", "matmul", "fft", "other")
VIEWS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}  # ONNX ops that copy nothing
_SUFFIX = re.compile(r"\[[^\]]*\]$")  # Paddle appends "[1.23 ms]" to operator names


@dataclass
class OpRow:
    """One operator type's share of the profiled calls."""

    name: str
    group: str
    calls: int = 0
    seconds: float = 0.0
    flops: float = 0.0  # 0 where the trace has no shapes
    bytes: float = 0.0  # inputs + outputs + weights; 0 where unknown


@dataclass
class OpProfile:
    """The operators of `runs` predictor calls at one batch size."""

    runtime: str
    batch: int
    runs: int
    rows: list[OpRow] = field(default_factory=list)
    hand_flops: dict[str, float] = field(default_factory=dict)  # group -> FLOPs, untraced groups

    @property
    def seconds(self) -> float:
        """Operator time in all, summed over threads' critical paths as the trace gives it."""
        return sum(row.seconds for row in self.rows)

    def groups(self) -> dict[str, OpRow]:
        """The rows summed by group."""
        found = {name: OpRow(name, name) for name in GROUPS}
        for row in self.rows:
            total = found[row.group]
            total.calls += row.calls
            total.seconds += row.seconds
            total.flops += row.flops
            total.bytes += row.bytes
        for name, flops in self.hand_flops.items():
            if not found[name].flops:
                found[name].flops = flops
        return found


def group_of(op_name: str) -> str:
    """conv | matmul | fft | other, from an operator's type name in either runtime."""
    name = op_name.lower()
    if "conv" in name:
        return "conv"
    if any(key in name for key in ("matmul", "gemm", "fc", "linear")):
        return "matmul"
    if "dft" in name or "fft" in name:
        return "fft"
    return "other"


def fill_hand_flops(profile: OpProfile, counts: ModelFlops, effective: bool = True) -> None:
    """Give each group without traced FLOPs the hand count of its kind of layer."""
    per_window = counts.by_kind()
    column = 1 if effective else 0
    hand = {
        "conv": per_window.get("conv", (0.0, 0.0))[column],
        "matmul": per_window.get("linear", (0.0, 0.0))[column],
        "fft": per_window.get("amplitude", (0.0, 0.0))[column],
        "other": per_window.get("elementwise", (0.0, 0.0))[column],
    }
    windows = profile.batch * profile.runs
    profile.hand_flops = {group: flops * windows for group, flops in hand.items()}
    # ONNX Runtime's trace counts every kernel tap, padding included; its convolutions skip
    # the taps on padding rows, so their traced FLOPs are scaled to the effective count
    # (otherwise the folded periods' convolutions would show above the GEMM peak)
    traced = sum(row.flops for row in profile.rows if row.group == "conv")
    if effective and traced and profile.hand_flops["conv"]:
        scale = profile.hand_flops["conv"] / traced
        for row in profile.rows:
            if row.group == "conv":
                row.flops *= scale


def profile_onnxruntime(
    model_path: Path, x: npt.NDArray[np.float32], threads: int, device: str, runs: int
) -> OpProfile:
    """Run the ONNX model `runs` times on x with ORT's profiler; rows by operator type."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory(prefix="sensorstream-ortprof-") as folder:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "ort")
        providers: list[Any] = ["CPUExecutionProvider"]
        if device != "cpu":
            index = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        session = ort.InferenceSession(str(model_path), options, providers=providers)
        feed = {session.get_inputs()[0].name: x}
        warm = 3
        for _ in range(warm + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    cutoff = starts[warm] if len(starts) > warm else 0  # the warm-up runs pick kernels
    rows: dict[str, OpRow] = {}
    for event in events:
        if event.get("cat") != "Node" or event.get("ts", 0) < cutoff:
            continue
        if not event["name"].endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        op = args.get("op_name", "?")
        row = rows.setdefault(op, OpRow(op, group_of(op)))
        row.calls += 1
        row.seconds += event["dur"] * 1e-6
        row.flops += _onnx_node_flops(op, args)
        row.bytes += sum(
            float(args.get(key, 0)) for key in ("activation_size", "parameter_size", "output_size")
        )
    return OpProfile("onnxruntime", len(x), runs, sorted(rows.values(), key=lambda r: -r.seconds))


def _onnx_node_flops(op: str, args: dict[str, Any]) -> float:
    """FLOPs of one traced node from its shapes: convolutions and products exactly, else 1/elem."""
    inputs = [next(iter(t.values())) for t in args.get("input_type_shape", [])]
    outputs = [next(iter(t.values())) for t in args.get("output_type_shape", [])]
    if not outputs:
        return 0.0
    out = float(np.prod(outputs[0]))
    group = group_of(op)
    if group == "conv" and len(inputs) >= 2:
        return 2.0 * out * float(np.prod(inputs[1][1:]))  # weight [Cout, Cin/g, *k]
    if group == "matmul" and len(inputs) >= 2:
        return 2.0 * out * float(inputs[0][-1])
    return out


def profile_paddle(predictor: Any, x: npt.NDArray[np.float32], device: str, runs: int) -> OpProfile:
    """Run the Paddle Inference predictor `runs` times under paddle.profiler; rows by operator."""
    import paddle.profiler as profiler

    targets = [profiler.ProfilerTarget.CPU]
    if device != "cpu":
        targets.append(profiler.ProfilerTarget.GPU)
    for _ in range(2):
        predictor.predict_batch(x)
    with tempfile.TemporaryDirectory(prefix="sensorstream-paddleprof-") as folder:
        session = profiler.Profiler(
            targets=targets, on_trace_ready=profiler.export_chrome_tracing(folder)
        )
        session.start()
        for _ in range(runs):
            predictor.predict_batch(x)
        session.stop()
        traces = glob.glob(str(Path(folder) / "*.json"))
        trace = json.loads(Path(traces[0]).read_text()) if traces else {}
    events = trace.get("traceEvents", []) if isinstance(trace, dict) else trace
    # on a GPU the kernels' device time is what counts; on the CPU the operators' host time
    wanted = (
        "Kernel"
        if device != "cpu" and any(e.get("cat") == "Kernel" for e in events)
        else ("Operator")
    )
    rows: dict[str, OpRow] = {}
    for event in events:
        if event.get("cat") != wanted:
            continue
        name = _SUFFIX.sub("", event.get("name", "?")).strip()
        row = rows.setdefault(name, OpRow(name, group_of(name)))
        row.calls += 1
        row.seconds += float(event.get("dur", 0.0)) * 1e-6
    return OpProfile("paddle", len(x), runs, sorted(rows.values(), key=lambda r: -r.seconds))


def copy_bandwidth_gbs(megabytes: int = 256, rounds: int = 5) -> float:
    """Streaming copy with numpy, bytes read + written per second (GB/s), best of rounds."""
    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best / 1e9


def bound_of(row: OpRow, peak_gflops: float, bandwidth_gbs: float) -> str:
    """What limits a group or operator: compute near the roof, memory, or per-call overhead."""
    if row.seconds <= 0:
        return "-"
    gflops = row.flops / row.seconds / 1e9
    if row.name in VIEWS:
        us_per_call = row.seconds / max(row.calls, 1) * 1e6
        return f"overhead: a view, no data moved, {us_per_call:,.0f} us per call"
    if row.group in ("conv", "matmul") and row.flops:
        return f"compute: {gflops:,.1f} GFLOP/s = {gflops / peak_gflops:.0%} of peak"
    if row.bytes:
        gbs = row.bytes / row.seconds / 1e9
        if gbs >= 0.5 * bandwidth_gbs:
            return f"memory: {gbs:,.1f} GB/s = {gbs / bandwidth_gbs:.0%} of a copy"
        us_per_call = row.seconds / max(row.calls, 1) * 1e6
        return (
            f"overhead: {gbs:,.1f} GB/s = {gbs / bandwidth_gbs:.0%} of a copy, "
            f"{us_per_call:,.0f} us per call"
        )
    us_per_call = row.seconds / max(row.calls, 1) * 1e6
    if row.flops:
        return f"{gflops:,.2f} GFLOP/s, {us_per_call:,.0f} us per call (no bytes in the trace)"
    return f"{us_per_call:,.0f} us per call (no shapes in the trace)"


def summary(profile: OpProfile, peak_gflops: float, bandwidth_gbs: float, top: int = 8) -> dict:
    """JSON-ready: the groups and the top operators, each with its share and its bound."""
    total = profile.seconds or 1.0
    windows = profile.batch * profile.runs
    groups = profile.groups()
    total_flops = sum(group.flops for group in groups.values()) or 1.0

    def row_dict(row: OpRow) -> dict[str, Any]:
        return {
            "name": row.name,
            "group": row.group,
            "share": row.seconds / total,
            "flop_share": row.flops / total_flops if row.flops else None,
            "ms_per_window": row.seconds / windows * 1000,
            "calls_per_run": row.calls / profile.runs,
            "gflops_per_s": row.flops / row.seconds / 1e9 if row.seconds and row.flops else None,
            "bound": bound_of(row, peak_gflops, bandwidth_gbs),
        }

    return {
        "runtime": profile.runtime,
        "batch": profile.batch,
        "runs": profile.runs,
        "ms_per_window": total / windows * 1000,
        "groups": [row_dict(groups[name]) for name in GROUPS if groups[name].calls],
        "top_operators": [row_dict(row) for row in profile.rows[:top]],
        "peak_gflops": peak_gflops,
        "copy_bandwidth_gbs": bandwidth_gbs,
    }
