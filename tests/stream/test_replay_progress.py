"""`sensorstream replay`'s progress line: share, rates and the ETA of the slower side."""

from __future__ import annotations


class _Counting:
    """A worker's stats and metrics, as the progress line reads them."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        from stream.core.metrics import WorkerMetrics
        from stream.core.stats import WorkerStats

        self.stats = WorkerStats()
        self.metrics = WorkerMetrics(CollectorRegistry())


def test_progress_line_shows_share_rates_and_the_slower_of_reading_and_classifying() -> None:
    import io
    import time

    from stream.commands.replay import ProgressLine

    worker = _Counting()
    out = io.StringIO()
    progress = ProgressLine(
        worker, total_records=1000, job_id="0123456789ab", out=out, interval_s=60
    )
    progress._started_s = time.monotonic() - 10.0  # as if it had run for 10 s
    worker.stats.records, worker.stats.samples, worker.stats.windows = 500, 5000, 10
    line = progress.line()
    assert line.startswith("replay 0123456789ab:  50.0% records 500/1,000 samples 5,000 windows 10")
    assert "50 records/s 500 samples/s" in line and line.endswith("ETA 0:10")
    worker.metrics.pending_windows.set(30)  # 30 windows at 1 window/s outlast 500 records at 50/s
    assert progress.line().endswith("ETA 0:30")
    progress.start()
    progress.stop()
    assert out.getvalue().count("\n") == 1 and "\r" not in out.getvalue()
