"""`python -m bench.drift_bench` runs end to end and reports its figures (no speed assertions:
BENCHMARKS.md keeps the measured share)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 300


@pytest.mark.integration
def test_drift_bench_times_the_drift_calls_inside_small_ingest_runs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "drift.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORSTREAM__")}
    env["SENSORSTREAM_BOOTSTRAP"] = kafka_bootstrap
    args = ["--chunks-per-device", "1000", "--singles-per-device", "1000", "--attempts", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.drift_bench", *args, "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = orjson.loads(out.read_bytes())
    micro = results["micro"]
    for name in ("binary", "single"):
        assert micro[name]["observe_us"] > 0 and micro[name]["share"] > 0
    assert micro["update_ms"] > 0
    workloads = {found["workload"]: found["runs"] for found in results["ingest"]}
    assert set(workloads) == {"binary100", "single"}
    for runs in workloads.values():
        (run,) = runs
        assert run["calls"]["observe_samples"] >= 1 and 0 < run["share"] < 1
