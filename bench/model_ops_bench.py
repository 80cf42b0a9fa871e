"""What hot reload and a shadow model cost the primary, measured side by side in one run.

1. Reload: the primary predictor's windows/s at batch 32 alone, and while another
   thread loads and warms a model the way the reloader does (alternated, best of
   each), plus how long that load takes. On 2 cores and with Paddle keeping the GIL
   in run(), the load competes with the primary for both.
2. Shadow: the worker classifying the same topic (inference-bound: UWave cases cut as
   windows, hop = length) without a shadow and with the TCN as its shadow, alternated;
   the ratio of windows/s and the shadow's skipped share.

    python -m bench.model_ops_bench [--cases 320] [--rounds 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaProducer

from bench import harness
from bench.pipeline import TimedWorker, summarize, with_group, worker_config
from stream.config.model_checks import check_against_model
from stream.config.schema import shadow_topic
from stream.jobs.demo import DeviceStreams, produce_streams
from stream.kafka.topics import ensure_topics
from stream.service import attach_shadow
from timesnet.batch_predictor import BatchPredictor
from timesnet.predictor import load_predictor
from timesnet.readers import read_dataset

SHADOW_MODEL = harness.REPO / "models" / "uwave-tcn"
BATCH = 32


def predictor_rate(predictor: BatchPredictor, x: np.ndarray, seconds: float) -> float:
    """windows/s of predict_batch(x) over about `seconds`."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.predict_batch(x)
        done += len(x)
    return done / (time.perf_counter() - started)


def _timed_load(model: Path, seconds: list[float]) -> None:
    started = time.perf_counter()
    load_predictor(model).close()
    seconds.append(time.perf_counter() - started)


def reload_cost(primary: BatchPredictor, model: Path, rounds: int) -> dict[str, Any]:
    """The primary's rate alone and during a load + warm-up of `model`, and the load time."""
    x = np.resize(harness.uwave_series().astype(np.float32)[: 315 * BATCH], (BATCH, 315, 3))
    alone, during, load_s = [], [], []
    for _ in range(rounds):
        alone.append(predictor_rate(primary, x, 3.0))
        loaded: list[float] = []
        loader = threading.Thread(target=_timed_load, args=(model, loaded))
        loader.start()
        done, started = 0, time.perf_counter()
        while loader.is_alive():
            primary.predict_batch(x)
            done += len(x)
        during.append(done / (time.perf_counter() - started))
        load_s.append(loaded[0])
    return {
        "alone_windows_per_s": max(alone),
        "during_load_windows_per_s": max(during),
        "ratio": max(during) / max(alone),
        "load_and_warm_s": min(load_s),
    }


def shadow_cost(bootstrap: str, primary: BatchPredictor, cases: int, rounds: int) -> dict[str, Any]:
    """The worker's windows/s without and with a TCN shadow on one inference-bound topic."""
    x = read_dataset(harness.uwave_test_file(), 315).x[:cases]
    streams = DeviceStreams(x, devices=16, start_ms=1_700_000_000_000)
    topic = harness.new_topic(bootstrap, "shadow-cost", partitions=2)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    produce_streams(producer, topic, streams, 0.0, threading.Event())
    producer.close()
    samples = cases * 315
    base = worker_config(bootstrap, topic, str(harness.model_dir()))
    runs: dict[str, list[dict[str, Any]]] = {"alone": [], "with_shadow": []}
    for attempt in range(rounds):
        for name in runs:
            extra = (f'shadow.path="{SHADOW_MODEL}"',) if name == "with_shadow" else ()
            config = with_group(
                worker_config(bootstrap, topic, str(harness.model_dir()), *extra),
                f"{base.kafka.group_id}.{name}.{attempt}",
            )
            check_against_model(config, 315, 3)
            ensure_topics(config.kafka, extra=[shadow_topic(config)] if extra else [])
            worker = TimedWorker(config, primary, samples, cases)
            attach_shadow(config, worker)
            thread = threading.Thread(target=worker.run, daemon=True)
            thread.start()
            thread.join(600)
            if worker.first_s is None or worker.done_s is None:
                raise RuntimeError(f"{name}: the worker did not finish")
            run = summarize(worker, worker.done_s - worker.first_s)
            registry = worker.metrics.registry
            skipped = registry.get_sample_value("sensorstream_shadow_skipped_total") or 0.0
            runs[name].append(
                {"windows_per_s": run.windows_per_s, "shadow_skipped": skipped, "windows": cases}
            )
    best = {name: max(r["windows_per_s"] for r in rs) for name, rs in runs.items()}
    return {
        "runs": runs,
        "best": best,
        "ratio": best["with_shadow"] / best["alone"],
        "skipped_share": max(r["shadow_skipped"] for r in runs["with_shadow"]) / cases,
    }


def main(argv: list[str] | None = None) -> None:
    """Run both parts and print a Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_ops_bench")
    parser.add_argument("--cases", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    primary = load_predictor(harness.model_dir())
    reload = reload_cost(primary, harness.model_dir(), args.rounds)
    with harness.broker() as bootstrap:
        shadow = shadow_cost(bootstrap, primary, args.cases, args.rounds)
    print("| measure | value |\n|---|---|")
    print(f"| primary windows/s alone (batch {BATCH}) | {reload['alone_windows_per_s']:.0f} |")
    print(f"| primary windows/s while a reload loads | {reload['during_load_windows_per_s']:.0f} |")
    print(f"| ratio during a reload | {reload['ratio']:.2f} |")
    print(f"| load + warm-up of the new model | {reload['load_and_warm_s']:.2f} s |")
    print(f"| worker windows/s, no shadow | {shadow['best']['alone']:.1f} |")
    print(f"| worker windows/s, TCN shadow | {shadow['best']['with_shadow']:.1f} |")
    print(f"| ratio with a shadow | {shadow['ratio']:.2f} |")
    print(f"| windows the shadow skipped | {shadow['skipped_share']:.1%} |")
    if args.json:
        args.json.write_bytes(orjson.dumps({"reload": reload, "shadow": shadow}))


if __name__ == "__main__":
    main()
