"""`python -m bench --quick` runs end to end and reports every figure (no speed assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
# A hang guard, not a speed assertion (speed targets live in the bench itself): --quick
# takes 2-3 minutes on an idle 2-core machine, and a loaded one stretches every figure.
HANG_GUARD_S = 600

SECTIONS = {
    "ingest": ("binary", "chunk", "single"),
    "latency": ("at_least_once", "exactly_once"),
    "backfill": ("at_least_once", "exactly_once"),
    "memory": ("1000", "10000"),
    "replay": ("ingest_topic", "backfill_topic"),
    "roofline": ("models", "peaks", "achieved", "profile", "peak_gflops"),
    "user_loop": ("hops", "worker_runtime"),
}
FIGURES = {
    "predictor": ("best_windows_per_s", "batching_gain", "windows_per_s_by_batch"),
    "inference_bound": ("windows_per_s", "ratio", "mean_batch"),
    "exactly_once": ("throughput_ratio", "latency_p99_ratio", "visible_latency_p99_ratio"),
}


def numbers(node: object, path: str = "") -> list[tuple[str, float]]:
    """Every numeric leaf of a JSON tree with its dotted path (booleans are not numbers)."""
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in numbers(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for i, value in enumerate(node) for item in numbers(value, f"{path}[{i}]")]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [(path, float(node))]
    return []


@pytest.mark.integration
def test_quick_bench_runs_end_to_end_and_writes_every_figure_positive(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORSTREAM__")}
    env["SENSORSTREAM_BOOTSTRAP"] = kafka_bootstrap
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = orjson.loads(out.read_bytes())
    for section, keys in SECTIONS.items():
        for key in keys:
            assert key in results[section], f"{section}.{key} missing"
    for section, keys in FIGURES.items():
        for key in keys:
            assert key in results[section], f"{section}.{key} missing"
    assert results["full_batch_inference_ms"] > 0
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu"]
    found = numbers({k: v for k, v in results.items() if k not in ("machine", "versions")})
    assert len(found) > 60
    not_positive = [(path, value) for path, value in found if not value > 0]
    assert not not_positive, not_positive
    assert "| target | measured | holds |" in done.stdout.decode()
    for hop in results["user_loop"]["hops"].values():
        assert hop["windows_per_s"]["worker"] > 0 and hop["windows_per_s"]["loop/paddle"] > 0
    assert results["roofline"]["models"]["uwave"]["flops_effective"] > 0
    assert "ReduceMeanCheckIfOneDNNSupport" not in done.stdout.decode()
    assert not (REPO / "profiler_log").exists()  # the operator profile writes to a temp dir
