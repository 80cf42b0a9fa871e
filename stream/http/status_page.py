"""The live status page: `/` (static HTML + a little JavaScript) and `/status.json`.

The worker thread writes the latest event per device and the recent alerts into
a `StatusBoard`; HTTP threads only read snapshots of it, the metrics registry
and the consumer's assignment (kafka-python guards that with a lock), so a page
being open never slows or blocks the poll loop.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import orjson

from stream.http.server import HttpServer, Response


def status_snapshot(worker: Any) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data."""
    manifest, config, stats = worker.manifest, worker.config, worker.stats
    ready, detail = worker.ready()
    return {
        "generated_ms": time.time_ns() // 1_000_000,
        "model": {
            "name": manifest.name,
            "version": manifest.version,
            "labels": list(manifest.labels),
            "device": config.model.device,
            "since_ms": worker.board.model_since_ms,
            "reloads": worker.board.model_reloads,
        },
        "worker": {
            "ready": ready,
            "detail": detail,
            "group_id": config.kafka.group_id,
            "input_topics": list(config.kafka.input_topics),
            "output_topic": config.kafka.output_topic,
            "uptime_s": round(worker.board.uptime_s, 1),
        },
        "partitions": _partitions(worker),
        "rates": worker.board.rates(stats.records, stats.windows),
        "totals": {
            "records": stats.records,
            "samples": stats.samples,
            "windows": stats.windows,
            "dead_letters": sum(stats.dead_letters.values()),
        },
        "shadow": worker.board.shadow_status(),
        "events": worker.board.events(),
        "alerts": worker.board.alerts(),
    }


def _partitions(worker: Any) -> list[dict[str, Any]]:
    """Assigned partitions with the lag the worker last measured (None before the first)."""
    consumer = worker.consumer
    assigned = consumer.assignment() if consumer is not None else set()
    lags: dict[tuple[str, int], float] = {}
    for family in worker.metrics.consumer_lag.collect():
        for sample in family.samples:
            lags[(sample.labels["topic"], int(sample.labels["partition"]))] = sample.value
    return [
        {"topic": tp.topic, "partition": tp.partition, "lag": lags.get((tp.topic, tp.partition))}
        for tp in sorted(assigned)
    ]


def status_html() -> bytes:
    """The page itself (shipped as package data)."""
    return resources.files("stream.http").joinpath("static/status.html").read_bytes()


def add_status_routes(server: HttpServer, worker: Any) -> None:
    """Serve the page at `/` and its data at `/status.json` on the worker's HTTP server."""
    page = status_html()
    server.add_get("/", lambda: Response(200, page, "text/html; charset=utf-8"), protected=True)
    server.add_get(
        "/status.json",
        lambda: Response(
            200, orjson.dumps(status_snapshot(worker), option=orjson.OPT_SERIALIZE_NUMPY)
        ),
        protected=True,
    )
