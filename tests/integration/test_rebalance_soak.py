"""Soak: workers start, stop and rebalance over a live stream; none stalls, no window is lost."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from kafka.structs import MemberState

from stream.config.schema import Config
from stream.core.worker import Worker
from stream.jobs.demo import DeviceStreams
from stream.service import build_worker
from tests.integration.workers import EventReader, Topics, feeding, make_config

pytestmark = pytest.mark.integration

START_MS = 1_700_000_000_000
REBALANCES = 100  # generation changes observed, summed over the workers
SOAK_BUDGET_S = 200


@dataclass
class SoakWorker:
    """A worker on its own thread, noting each generation it is assigned in."""

    worker: Worker
    thread: threading.Thread
    generations: list[int] = field(default_factory=list)

    @staticmethod
    def start(config: Config, predictor: object) -> SoakWorker:
        worker = build_worker(config, predictor=predictor)
        worker.open()
        soak = SoakWorker(worker, threading.Thread(target=worker.run, daemon=True))
        assign = worker.checkpoint.partitions.assigned

        def noting_generation(assigned: list) -> None:
            soak.generations.append(worker.consumer.group_metadata().generation_id)
            assign(assigned)

        worker.checkpoint.partitions.assigned = noting_generation
        soak.thread.start()
        return soak

    def stop(self) -> None:
        self.worker.request_stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "a worker did not stop within 60 s"


def _wait_for_generation(workers: list[SoakWorker], seen: dict[int, int], timeout_s: float):
    """Until each worker has been assigned in a generation newer than the one `seen` noted."""
    deadline = time.monotonic() + timeout_s
    while True:
        fresh = [w for w in workers if w.generations and w.generations[-1] > seen.get(id(w), -1)]
        if len(fresh) == len(workers) and _converged(workers):
            break
        assert time.monotonic() < deadline, (
            f"no rebalance within {timeout_s:.0f} s: "
            f"{[(w.generations[-3:], w.worker.ready()) for w in workers]}"
        )
        time.sleep(0.05)
    for w in workers:
        seen[id(w)] = w.generations[-1]


def _converged(workers: list[SoakWorker]) -> bool:
    last = {w.generations[-1] for w in workers}
    stable = all(w.worker.consumer.group_metadata().state is MemberState.STABLE for w in workers)
    return len(last) == 1 and stable


def test_workers_joining_and_leaving_100_times_never_stall_and_lose_no_window(
    kafka_bootstrap, new_topic, shipped_predictor, uwave_test, record_property
) -> None:
    topics = Topics.fresh(new_topic, partitions=3)
    streams = DeviceStreams(uwave_test.x, devices=12, start_ms=START_MS)
    steps = [[(key, value) for key, value, _ in step] for step in streams.steps()]
    config = make_config(
        kafka_bootstrap,
        topics,
        "kafka.stall_timeout_s=10",
        "kafka.max_poll_interval_ms=20000",
        "batching.max_wait_ms=300",  # windows are waiting at most revocations
    )
    expected = set(streams.expected())
    reader = EventReader(kafka_bootstrap, topics.output)
    started_s = time.monotonic()
    seen: dict[int, int] = {}
    stopped: list[SoakWorker] = []
    steady = SoakWorker.start(config, shipped_predictor)
    _wait_for_generation([steady], seen, 60)
    with feeding(kafka_bootstrap, topics.input, steps, step_s=0.1):
        second = SoakWorker.start(config, shipped_predictor)
        _wait_for_generation([steady, second], seen, 30)
        while sum(len(w.generations) for w in [steady, second, *stopped]) < REBALANCES:
            assert time.monotonic() - started_s < SOAK_BUDGET_S, "the soak ran out of time"
            third = SoakWorker.start(config, shipped_predictor)
            _wait_for_generation([steady, second, third], seen, 30)
            third.stop()
            _wait_for_generation([steady, second], seen, 30)
            stopped.append(third)
        second.stop()
        _wait_for_generation([steady], seen, 30)
        stopped.append(second)
        events = reader.wait_for(len(expected), timeout_s=120)
    steady.stop()
    reader.close()

    workers = [steady, *stopped]
    rebalances = sum(len(w.generations) for w in workers)
    keys = [(e["device_id"], e["window_start_ts"]) for e in events]
    record_property("rebalances", rebalances)
    record_property("worker_starts", len(workers))
    record_property("duplicate_windows", len(keys) - len(set(keys)))
    record_property("soak_s", round(time.monotonic() - started_s, 1))
    assert rebalances >= REBALANCES
    assert sum(w.worker.checkpoint.watchdog.stalls for w in workers) == 0
    assert expected - set(keys) == set()
