"""One pipeline case at full size, for a profiler, and a summary of py-spy's raw output.

    py-spy record -r 200 -f raw -o /tmp/chunk.txt -- python -m bench.profile run chunk
    python -m bench.profile summarize /tmp/chunk.txt

`run` fills a topic on its own broker and runs the worker on it ("binary", "chunk" and
"single": ingest with one window per device; "bound": hop 16, the predictor as the
bottleneck). `summarize` keeps the worker thread's stacks and prints self and
inclusive shares per frame.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter

from bench import harness, suite
from bench.pipeline import expected_windows, run_worker, worker_config

WORKER_FRAME = "Worker.run"


def run_case(case: str) -> None:
    """Fill a topic and run the worker through it once, printing the run."""
    from timesnet.predictor import load_predictor

    model = str(harness.model_dir())
    series = harness.uwave_series()
    predictor = load_predictor(model)
    sizes = suite.FULL
    with harness.broker() as bootstrap:
        if case == "bound":
            workload = harness.chunk_workload(
                series, sizes.bound_devices, sizes.bound_samples // 100
            )
            hop, extra = suite.INFERENCE_HOP, ["batching.max_batch=32"]
        elif case in ("chunk", "binary"):
            if case == "chunk":
                workload = harness.chunk_workload(series, sizes.ingest_devices, sizes.ingest_chunks)
            else:
                workload = harness.binary_chunk_workload(
                    series, sizes.ingest_devices, sizes.binary_chunks
                )
            hop, extra = workload.samples // workload.devices, []
        else:
            workload = harness.single_workload(series, sizes.ingest_devices, sizes.single_samples)
            hop, extra = workload.samples // workload.devices, []
        topic = harness.new_topic(bootstrap, case)
        harness.fill_topic(bootstrap, topic, workload.records)
        config = worker_config(bootstrap, topic, model, f"windows.hop={hop}", *extra)
        length = predictor.manifest.window_length
        windows = expected_windows(
            workload.samples // workload.devices, workload.devices, length, hop
        )
        print(run_worker(config, predictor, workload.samples, windows))


def summarize(path: str, top: int = 30) -> None:
    """Self and inclusive shares of the worker thread's frames in a py-spy raw file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip().rpartition(" ")
            if WORKER_FRAME not in stack:
                continue
            frames = stack.split(";")
            count = int(count_text)
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"worker thread samples: {total}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"--- {title}")
        for frame, count in counter.most_common(top):
            print(f"{count / max(total, 1):6.1%}  {frame}")


def main(argv: list[str] | None = None) -> int:
    """`run CASE` or `summarize FILE`."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("run").add_argument("case", choices=("binary", "chunk", "single", "bound"))
    sub.add_parser("summarize").add_argument("file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if args.what == "run":
        run_case(args.case)
    else:
        summarize(args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
