"""Dynamic batching: windows from many devices wait until a batch is full or the
oldest has waited `max_wait_ms`, whichever comes first."""

from __future__ import annotations

from collections import deque

from stream.core.columns import WindowRows


class DynamicBatcher:
    """FIFO of ready windows cut into batches of at most `max_batch`.

    A full batch leaves at once; a partial one leaves when its oldest window has
    waited `max_wait_ms` (or on `force`, for shutdown and rebalances).
    """

    def __init__(self, max_batch: int, max_wait_ms: float) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self._parts: deque[WindowRows] = deque()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Windows waiting for a batch."""
        return self._pending

    def add(self, rows: WindowRows) -> None:
        """Queue windows (their `enqueued_at_s` says when they became ready)."""
        if len(rows):
            self._parts.append(rows)
            self._pending += len(rows)

    def deadline_s(self) -> float | None:
        """Monotonic time at which the oldest waiting window must leave, if any."""
        if not self._parts:
            return None
        return float(self._parts[0].enqueued_at_s[0]) + self.max_wait_ms / 1000.0

    def next_batch(self, now_s: float, force: bool = False) -> WindowRows | None:
        """A full batch, else the partial one if its oldest window is due (or forced)."""
        if self._pending >= self.max_batch:
            return self._pop(self.max_batch)
        deadline = self.deadline_s()
        if self._pending and (force or (deadline is not None and now_s >= deadline)):
            return self._pop(self._pending)
        return None

    def waiting(self) -> list[WindowRows]:
        """The groups still waiting (read-only view, for commit positions)."""
        return list(self._parts)

    def drain(self) -> list[WindowRows]:
        """Everything still waiting, in batches of at most `max_batch`."""
        batches: list[WindowRows] = []
        while self._pending:
            batches.append(self._pop(min(self.max_batch, self._pending)))
        return batches

    def _pop(self, count: int) -> WindowRows:
        taken: list[WindowRows] = []
        needed = count
        while needed:
            head = self._parts[0]
            if len(head) <= needed:
                taken.append(self._parts.popleft())
                needed -= len(head)
            else:
                taken.append(head.take(slice(0, needed)))
                self._parts[0] = head.take(slice(needed, None))
                needed = 0
        self._pending -= count
        return WindowRows.concat(taken)
