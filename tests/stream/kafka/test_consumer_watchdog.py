"""The consumer watchdog's rule: which silences are stalls, and how often one is counted."""

from __future__ import annotations

import pytest

from stream.kafka.consumer_watchdog import ConsumerView, ConsumerWatchdog


def _view(now_s: float, owned: int = 1, stable: bool = True, lag: int = 0, records: int = 0):
    return ConsumerView(
        now_s=now_s, owned_partitions=owned, stable_member=stable, lag=lag, records_total=records
    )


def _run(watchdog: ConsumerWatchdog, views: list[ConsumerView]) -> list[str]:
    return [watchdog.check(view) for view in views]


def test_lag_without_records_for_the_timeout_is_one_stall_per_timeout() -> None:
    watchdog = ConsumerWatchdog(stall_timeout_s=10)
    reasons = _run(watchdog, [_view(t, lag=5, records=100) for t in range(0, 31)])
    fired = [t for t, reason in enumerate(reasons) if reason]
    assert fired == [10, 20, 30]
    assert watchdog.stalls == 3
    assert "lag=5" in watchdog.stalled


def test_records_arriving_keep_a_lagging_consumer_healthy() -> None:
    watchdog = ConsumerWatchdog(stall_timeout_s=10)
    assert not any(_run(watchdog, [_view(t, lag=1000, records=t * 50) for t in range(60)]))
    assert watchdog.stalls == 0 and watchdog.stalled == ""


def test_a_stall_ends_when_records_flow_again() -> None:
    watchdog = ConsumerWatchdog(stall_timeout_s=5)
    _run(watchdog, [_view(t, lag=3, records=7) for t in range(6)])
    assert watchdog.stalled
    watchdog.check(_view(6, lag=3, records=8))
    assert watchdog.stalled == ""


def test_no_partitions_while_the_join_never_completes_is_a_stall() -> None:
    watchdog = ConsumerWatchdog(stall_timeout_s=5)
    reasons = _run(watchdog, [_view(t, owned=0, stable=False) for t in range(6)])
    assert reasons[-1].startswith("no partitions assigned")
    assert watchdog.stalls == 1


@pytest.mark.parametrize(
    "view",
    [
        {"owned": 0, "stable": True},  # a standby in a group with more workers than partitions
        {"owned": 1, "lag": 0},  # caught up, nothing to read
    ],
    ids=["stable-standby", "caught-up"],
)
def test_quiet_but_healthy_consumers_are_never_stalled(view: dict) -> None:
    watchdog = ConsumerWatchdog(stall_timeout_s=1)
    assert not any(_run(watchdog, [_view(t / 2, **view) for t in range(100)]))


def test_an_excused_outage_does_not_count_as_a_stall_once_the_broker_is_back() -> None:
    watchdog = ConsumerWatchdog(stall_timeout_s=10.0)
    assert watchdog.check(_view(now_s=0.0, owned=1, stable=True, lag=0, records=5)) == ""
    watchdog.excuse(now_s=100.0)  # the broker was unreachable from 0 to 100 s
    assert watchdog.check(_view(now_s=101.0, owned=0, stable=False, lag=0, records=5)) == ""
    assert watchdog.check(_view(now_s=111.0, owned=0, stable=False, lag=0, records=5)) != ""
