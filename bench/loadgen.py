"""A paced load generator in its own process: sensors at 100 Hz in, events watched out.

Runs apart from the worker so that neither its sends nor its clock reads wait for
the worker's GIL (Paddle Inference holds it while it computes). Each device sends a
chunk of `chunk` samples every `chunk` x 10 ms, when the chunk's last sample is due.
A second thread reads the events topic (read_committed or read_uncommitted) and
measures visible latency: arrival at this reader minus the Kafka timestamp of the
input record holding the window's last sample. Prints one JSON object.

    python -m bench.loadgen --bootstrap H:P --input T --output T.events --devices 4 --duration-s 20
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from bench.harness import INTERVAL_MS, chunk_bodies, uwave_series


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--isolation", default="read_uncommitted")
    parser.add_argument(
        "--settle-s", type=float, default=5.0, help="read events this long after the last send"
    )
    return parser.parse_args(argv)


class EventWatcher(threading.Thread):
    """Reads the events topic from its end and notes when each event became visible."""

    def __init__(self, bootstrap: str, topic: str, isolation: str) -> None:
        super().__init__(name="event-watcher", daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation,
            fetch_max_wait_ms=10,
        )
        tp = TopicPartition(topic, 0)
        self.consumer.assign([tp])
        self.consumer.seek_to_end(tp)
        self.consumer.position(tp)
        self.seen: list[tuple[int, int]] = []  # (input offset of the last sample, arrival ms)
        self.stop = threading.Event()

    def run(self) -> None:
        """Poll until stopped."""
        while not self.stop.is_set():
            for batch in self.consumer.poll(timeout_ms=50).values():
                arrived_ms = time.time_ns() // 1_000_000
                for record in batch:
                    event = orjson.loads(record.value)
                    self.seen.append((int(event["source"]["last_offset"]), arrived_ms))
        self.consumer.close()


def produce_paced(args: argparse.Namespace, sent: dict[int, int]) -> int:
    """Send chunks in real time; fills offset -> Kafka timestamp; returns samples."""
    bodies = chunk_bodies(uwave_series(), args.chunk)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=0, acks=1)
    step_s = args.chunk * INTERVAL_MS / 1000.0
    start_ms = time.time_ns() // 1_000_000
    begin_s = time.monotonic()
    steps = int(args.duration_s / step_s)
    samples = 0

    def remember(metadata: object) -> None:
        sent[metadata.offset] = metadata.timestamp  # type: ignore[attr-defined]

    for step in range(steps):
        delay = begin_s + (step + 1) * step_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ts = start_ms + step * args.chunk * INTERVAL_MS
        for device in range(args.devices):
            device_id = f"live-{device:05d}"
            value = (
                b'{"device_id":"%s","ts":%d,"interval_ms":%d,"values":'
                % (device_id.encode(), ts, INTERVAL_MS)
                + bodies[(step * args.devices + device) % len(bodies)]
            )
            producer.send(
                args.input, key=device_id.encode(), value=value, partition=0
            ).add_callback(remember)
            samples += args.chunk
    producer.flush()
    producer.close()
    return samples


def main(argv: list[str] | None = None) -> int:
    """Produce, watch, print the result as JSON."""
    args = parse_args(argv)
    watcher = EventWatcher(args.bootstrap, args.output, args.isolation)
    watcher.start()
    sent: dict[int, int] = {}
    samples = produce_paced(args, sent)
    time.sleep(args.settle_s)
    watcher.stop.set()
    watcher.join(10)
    latencies = [arrived - sent[offset] for offset, arrived in watcher.seen if offset in sent]
    quantiles = np.quantile(latencies, [0.5, 0.99, 1.0]).tolist() if latencies else [0.0] * 3
    sys.stdout.write(
        orjson.dumps(
            {
                "records": len(sent),
                "samples": samples,
                "events": len(watcher.seen),
                "visible_latency_ms": quantiles,
            }
        ).decode()
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
