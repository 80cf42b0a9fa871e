"""`sensorstream demo`: a local broker, the worker, and UWave replayed as live devices."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from stream.commands.arguments import integer, number, port
from stream.commands.run import add_config_arguments
from stream.errors import SensorstreamError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from stream.config.schema import Config, KafkaConfig
    from stream.core.worker import Worker
    from stream.jobs.demo import DeviceStreams, Scoreboard
    from stream.kafka.local_broker import LocalKafka

log = logging.getLogger(__name__)

LIVE_LINE_INTERVAL_S = 2.0
SETTLE_TIMEOUT_S = 120.0
P99_TARGET_S = 1.0  # at the defaults (16 devices, 5x real time) on a 2-core machine


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    parser = subparsers.add_parser(
        "demo",
        help="stream the UWave test set through the worker and score the events",
        description="Start the local broker (unless --bootstrap or "
        "SENSORSTREAM__KAFKA__BOOTSTRAP_SERVERS names one), run the worker on the shipped "
        "model, stream every UWave test case from simulated gloves at 100 Hz, and report "
        "accuracy, throughput and end-to-end latency.",
    )
    add_config_arguments(parser)
    parser.add_argument("--data", help="folder with the UWave .ts files (default: see README)")
    parser.add_argument(
        "--speed",
        type=number(0, 1e6),
        default=5.0,
        help="x real time (0 = as fast as possible; default 5)",
    )
    parser.add_argument(
        "--devices", type=integer(1, 10_000), default=16, help="simulated gloves (default 16)"
    )
    parser.add_argument("--model", help="model folder (default: [model] path of the config)")
    parser.add_argument("--bootstrap", help="use this Kafka instead of the local broker")
    parser.add_argument("--port", type=port, default=9092, help="local broker port (default 9092)")
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    """Run the whole demo and print its summary; exit 0 when every window got an event."""
    from stream.config.loading import load_config
    from stream.jobs.demo import DeviceStreams, find_uwave
    from timesnet.ts_format import read_ts
    from timesnet.uwave import UWAVE_TEST_FILE

    data = find_uwave(args.data)
    bootstrap, broker = _broker(args)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    overrides = [
        f'kafka.bootstrap_servers="{bootstrap}"',
        f'kafka.input_topics=["demo-{run_id}-samples"]',
        f'kafka.output_topic="demo-{run_id}-events"',
        f'kafka.dead_letter_topic="demo-{run_id}-dead-letters"',
        f'kafka.alerts_topic="demo-{run_id}-alerts"',
        f'kafka.group_id="demo-{run_id}"',
        "windows.length=315",
        "windows.hop=315",
        "metrics.port=0",
        *(([f'model.path="{Path(args.model).resolve()}"']) if args.model else []),
        *args.overrides,
    ]
    config_path = args.config or _default_config()
    config = load_config(config_path, overrides)
    test = read_ts(data / UWAVE_TEST_FILE)
    if test.y is None:
        raise SensorstreamError(f"{data}: the demo needs the labelled UWave test file")
    streams = DeviceStreams(test.x, args.devices, start_ms=int(time.time() * 1000))
    print(f"demo: data={data} bootstrap={bootstrap} devices={args.devices} speed={args.speed}")
    try:
        return _run(config, streams, test.y, args.speed)
    finally:
        if broker is not None:
            broker.stop()


def _default_config() -> str | None:
    repo_config = Path(__file__).resolve().parents[2] / "config.toml"
    return str(repo_config) if repo_config.is_file() else None


def _broker(args: argparse.Namespace) -> tuple[str, LocalKafka | None]:
    """The bootstrap to use, and the local broker this demo started (to stop it after)."""
    configured = args.bootstrap or os.environ.get("SENSORSTREAM__KAFKA__BOOTSTRAP_SERVERS")
    if configured:
        return configured.strip('"'), None
    from stream.kafka.local_broker import LocalKafka

    broker = LocalKafka(port=args.port)
    started = broker.start()
    print(f"demo: {'started' if started else 'reusing'} local Kafka at {broker.bootstrap}")
    return broker.bootstrap, broker if started else None


def _run(
    config: Config, streams: DeviceStreams, labels: npt.NDArray[np.int64], speed: float
) -> int:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from stream.jobs.demo import Scoreboard, produce_streams
    from stream.kafka.clients import client_settings
    from stream.kafka.topics import wait_for_partitions
    from stream.service import build_worker, start_http

    kafka = config.kafka
    admin = KafkaAdminClient(**client_settings(kafka))
    admin.create_topics([NewTopic(kafka.input_topics[0], min(4, streams.devices), 1)])
    # the worker sizes its changelog from the input's partition count: it must see them all
    # (on a busy machine a topic can stay undescribed for a moment after its creation)
    wait_for_partitions(admin, kafka.input_topics[0])
    admin.close()
    worker = build_worker(config)
    server = start_http(config, worker)
    runner = threading.Thread(target=_run_worker, args=(worker,), name="worker", daemon=True)
    runner.start()
    stop = threading.Event()
    producer = KafkaProducer(**client_settings(kafka), linger_ms=5)
    sent: list[int] = []
    feeder = threading.Thread(
        target=lambda: sent.append(
            produce_streams(producer, kafka.input_topics[0], streams, speed, stop)
        ),
        name="devices",
        daemon=True,
    )
    board = Scoreboard(streams.expected(), labels)
    started = time.monotonic()
    feeder.start()
    try:
        _follow_events(kafka, board, worker, (feeder, runner), started)
    finally:
        stop.set()
        worker.request_stop()
        runner.join(timeout=60)
        feeder.join(timeout=10)
        producer.close()
        server.stop()
    return _summary(board, worker, sum(sent), time.monotonic() - started, server.url)


def _run_worker(worker: Worker) -> None:
    """The worker thread; a crash is logged with its traceback and ends the thread."""
    try:
        worker.run()
    except Exception:
        log.exception("demo: the worker stopped with an error")


def _follow_events(
    kafka: KafkaConfig,
    board: Scoreboard,
    worker: Worker,
    threads: tuple[threading.Thread, threading.Thread],
    started: float,
) -> None:
    """Score events until every window has one, the worker is gone, or the wait runs out."""
    import orjson
    from kafka.structs import TopicPartition

    from stream.kafka.clients import make_consumer

    consumer = make_consumer(kafka, None)
    parts = [
        TopicPartition(kafka.output_topic, p)
        for p in sorted(consumer.partitions_for_topic(kafka.output_topic) or {0})
    ]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    feeder, runner = threads
    last_line = settle_deadline = 0.0

    def read(timeout_ms: int) -> int:
        polled = consumer.poll(timeout_ms=timeout_ms).values()
        for batch in polled:
            for record in batch:
                board.add(orjson.loads(record.value))
        return sum(len(batch) for batch in polled)

    try:
        while not board.complete:
            read(200)
            now = time.monotonic()
            if now - last_line >= LIVE_LINE_INTERVAL_S:
                last_line = now
                _live_line(board, worker, now - started)
            if not runner.is_alive():
                # no more events can come: waiting out the settle timeout would only hold
                # the terminal (and the local broker) for two minutes
                while read(500) and not board.complete:  # what it produced before it stopped
                    pass
                if not board.complete:
                    print("demo: the worker stopped before every window had its event")
                return
            if not feeder.is_alive():
                settle_deadline = settle_deadline or now + SETTLE_TIMEOUT_S
                if now > settle_deadline:
                    print("demo: gave up waiting for the last events")
                    return
    finally:
        consumer.close()


def _live_line(board: Scoreboard, worker: Worker, elapsed_s: float) -> None:
    p50, p99, _ = worker.stats.latency_quantiles_s()
    print(
        f"[{elapsed_s:6.1f}s] samples={worker.stats.samples} events={len(board.seen)}/"
        f"{len(board.expected)} accuracy={board.accuracy:.3f} "
        f"latency_p50={p50 * 1000:.0f}ms p99={p99 * 1000:.0f}ms",
        flush=True,
    )


def _summary(board: Scoreboard, worker: Worker, samples: int, elapsed_s: float, url: str) -> int:
    p50, p99, worst = worker.stats.latency_quantiles_s()
    stats = worker.stats
    print("demo: summary")
    print(
        f"  events        {len(board.seen)} of {len(board.expected)} expected windows "
        f"(duplicates {board.duplicates}, unexpected {board.unexpected})"
    )
    print(f"  accuracy      {board.accuracy:.4f} against the UWave test labels")
    print(
        f"  throughput    {samples / elapsed_s:,.0f} samples/s, "
        f"{stats.windows / elapsed_s:,.1f} windows/s over {elapsed_s:.1f} s"
    )
    print(
        f"  latency       p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {worst * 1000:.1f} ms (event produced - Kafka timestamp of the last record); "
        f"p99 < {P99_TARGET_S:g} s: {'met' if board.complete and p99 < P99_TARGET_S else 'NOT met'}"
    )
    print(
        f"  batches       {stats.batches}, mean {stats.windows / max(stats.batches, 1):.1f} "
        f"windows, predictor {stats.inference_s:.2f} s in all"
    )
    print(f"  dead letters  {sum(stats.dead_letters.values())}")
    print(f"  metrics       were served at {url}/metrics")
    return 0 if board.complete else 1
