"""WindowStore hot paths against a plain numpy copy of the same bytes, in one run.

Workloads (3 channels, windows of 315 samples, the default in-order config):
  chunk    append_chunk of 100-sample records, round robin over devices (hop 315)
  poll     append_bulk of a poll of 500 single-sample records across 500 devices (hop 315)
  extract  append_chunk of 100-sample records with hop 1: 100 windows of 315 x 3 per call,
           timed with ready_windows() draining them
  runs     append_runs of polls of 2,000 records over 1,000 devices, in order (hop 315):
           records of 100 samples, and records of 1 sample; also reported in us per record
Each is reported as measured and as a ratio to `numpy.copyto` of the same bytes (the
memory-bandwidth ceiling), best of a few repeats. Times are this process's CPU time by
default (the machine is shared; `--clock wall` for wall time): one core's throughput.
CPU time includes the kernel's: fresh temporaries and output arrays cost page faults,
which glibc's default trimming makes recur on every poll.

    python -m bench.windows_bench [--repeats 3] [--calls 4000] [--run-polls 40] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from windows import WindowConfig, WindowStore

CHANNELS = 3
LENGTH = 315
CHUNK = 100
POLL = 500
RUN_RECORDS = 2000
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = time.process_time


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """Smallest elapsed seconds over repeats (each run returns its own elapsed time)."""
    return min(run() for _ in range(repeats))


def copy_seconds(n_bytes: int, repeats: int) -> float:
    """Seconds numpy takes to copy n_bytes from one array into another."""
    src = np.random.default_rng(0).random(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)

    def run() -> float:
        t0 = clock()
        np.copyto(dst, src)
        return clock() - t0

    return best_of(repeats, run)


def bench_chunks(calls: int, hop: int, devices: int, repeats: int) -> tuple[float, int]:
    """Seconds for `calls` append_chunk calls (plus draining); returns (seconds, windows)."""
    values = np.random.default_rng(1).random((CHUNK, CHANNELS), dtype=np.float32)
    steps = np.arange(CHUNK, dtype=np.int64) * 10
    ids = [f"dev-{i}" for i in range(devices)]
    windows = 0

    def run() -> float:
        nonlocal windows
        store = WindowStore(
            WindowConfig(length=LENGTH, hop=hop, channels=CHANNELS, max_devices=devices)
        )
        warm_ts = np.arange(-LENGTH, 0, dtype=np.int64) * 10
        warm_values = np.zeros((LENGTH, CHANNELS), dtype=np.float32)
        for d in ids:  # untimed: every device already holds a window's worth of samples
            store.append_chunk(d, warm_ts, warm_values, 0, 0)
        store.ready_windows()
        windows = 0
        t0 = clock()
        for call in range(calls):
            base = (call // devices) * CHUNK * 10
            store.append_chunk(ids[call % devices], base + steps, values, 0, call)
            if call % 16 == 15:
                windows += len(store.ready_windows())
        windows += len(store.ready_windows())
        return clock() - t0

    return best_of(repeats, run), windows


def bench_polls(polls: int, repeats: int) -> float:
    """Seconds for `polls` append_bulk calls of 500 single-sample records over 500 devices."""
    rng = np.random.default_rng(2)
    ids = [f"dev-{i}" for i in range(POLL)]
    values = rng.random((POLL, CHANNELS), dtype=np.float32)
    sources = (np.arange(POLL) % 8).astype(np.int32)

    def run() -> float:
        store = WindowStore(
            WindowConfig(length=LENGTH, hop=LENGTH, channels=CHANNELS, max_devices=POLL)
        )
        t0 = clock()
        for p in range(polls):
            ts = np.full(POLL, p * 10, dtype=np.int64)
            offsets = np.full(POLL, p, dtype=np.int64)
            store.append_bulk(ids, ts, values, sources, offsets)
            store.ready_windows()
        return clock() - t0

    return best_of(repeats, run)


def bench_runs(polls: int, run_length: int, repeats: int) -> float:
    """Seconds for `polls` append_runs calls of RUN_RECORDS records of run_length samples."""
    devices = RUN_RECORDS // 2
    ids = [f"dev-{i}" for i in range(devices)]
    n = RUN_RECORDS * run_length
    values = np.random.default_rng(3).random((n, CHANNELS), dtype=np.float32)
    record_ids = [ids[r % devices] for r in range(RUN_RECORDS)]
    lengths = np.full(RUN_RECORDS, run_length, dtype=np.int64)
    sources = (np.arange(RUN_RECORDS) % 8).astype(np.int32)
    rank = np.arange(RUN_RECORDS) // devices  # a device's records in a poll: 0, 1
    within = np.tile(np.arange(run_length, dtype=np.int64), RUN_RECORDS)
    per_poll = RUN_RECORDS // devices * run_length  # samples per device per poll

    def run() -> float:
        store = WindowStore(
            WindowConfig(length=LENGTH, hop=LENGTH, channels=CHANNELS, max_devices=100_000)
        )
        elapsed = 0.0
        for p in range(polls):
            ts = (np.repeat(p * per_poll + rank * run_length, run_length) + within) * 10
            offsets = p * RUN_RECORDS + np.arange(RUN_RECORDS, dtype=np.int64)
            t0 = clock()
            store.append_runs(record_ids, lengths, ts, values, sources, offsets)
            store.ready_windows()
            elapsed += clock() - t0
        return elapsed

    return best_of(repeats, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4000, help="append_chunk calls per run")
    parser.add_argument("--polls", type=int, default=400, help="500-record polls per run")
    parser.add_argument(
        "--run-polls",
        type=int,
        default=40,
        help="2,000-record polls per run of the 100-sample runs workload "
        "(10x as many for 1-sample runs)",
    )
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    rows = []

    seconds, _ = bench_chunks(args.calls, LENGTH, 1000, args.repeats)
    samples = args.calls * CHUNK
    ceiling = copy_seconds(samples * CHANNELS * 4, args.repeats)
    rows.append(("chunk append (100 x 3)", samples / seconds, "samples/s", ceiling / seconds))

    seconds = bench_polls(args.polls, args.repeats)
    samples = args.polls * POLL
    ceiling = copy_seconds(samples * CHANNELS * 4, args.repeats)
    rows.append(("poll append (500 x 1 x 3)", samples / seconds, "samples/s", ceiling / seconds))

    calls = max(args.calls // 4, 100)
    seconds, windows = bench_chunks(calls, 1, 200, args.repeats)
    ceiling = copy_seconds(windows * LENGTH * CHANNELS * 4, args.repeats)
    rows.append(("window extraction (315 x 3)", windows / seconds, "windows/s", ceiling / seconds))

    for run_length, polls in ((100, args.run_polls), (1, args.run_polls * 10)):
        seconds = bench_runs(polls, run_length, args.repeats)
        samples = polls * RUN_RECORDS * run_length
        ceiling = copy_seconds(samples * CHANNELS * 4, args.repeats)
        per_record_us = seconds / (polls * RUN_RECORDS) * 1e6
        rows.append(
            (
                f"runs {RUN_RECORDS} x {run_length} (us/record {per_record_us:.2f})",
                samples / seconds,
                "samples/s",
                ceiling / seconds,
            )
        )

    print(f"{'workload':<36} {'measured':>14} {'unit':<10} {'vs numpy copy':>14}")
    for name, rate, unit, ratio in rows:
        print(f"{name:<36} {rate:>14,.0f} {unit:<10} {ratio:>13.4f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
