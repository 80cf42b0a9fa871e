"""The inference thread tells a request's predictor error apart from one on stream windows."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pytest

from stream.core.inference import InferenceThread, PredictorError
from stream.core.side_requests import SideQueue, SideRequest
from stream.errors import RequestRejected, SensorstreamError
from tests.stream.rows import make_rows

LENGTH, CHANNELS, CLASSES = 4, 3, 2


class PickyPredictor:
    """In-memory model: refuses any batch holding inf or a value above `refuse_above`."""

    def __init__(self, refuse_above: float = np.inf) -> None:
        self.refuse_above = refuse_above
        self.calls: list[int] = []

    def predict_batch(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.calls.append(len(x))
        if not np.isfinite(x).all():
            raise ValueError("windows contain NaN or infinity\nsecond line of detail")
        if (x > self.refuse_above).any():
            raise RuntimeError("refused on demand")
        first = x[:, 0, 0]  # each row's answer depends on that row alone
        return np.stack([first, -first], axis=1).astype(np.float32)


def side_request(value: float) -> SideRequest:
    return SideRequest(np.full((1, LENGTH, CHANNELS), value, dtype=np.float32))


def run_one(predictor: PickyPredictor, rows: object, side: list[SideRequest]) -> InferenceThread:
    errors: list[int] = []
    thread = InferenceThread(on_stream_error=lambda: errors.append(1))
    thread.errors = errors  # type: ignore[attr-defined]
    thread.predictor = predictor  # type: ignore[attr-defined]
    thread.submit(predictor, rows, token=7, side=side)
    for request in side:
        assert request.done.wait(5)
    return thread


def wait_until_failed(thread: InferenceThread) -> None:
    for _ in range(500):
        if thread.failed:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the predictor thread did not latch its failure")


def test_a_bad_side_request_fails_alone_and_the_stream_batch_is_answered() -> None:
    rows = make_rows(3, length=LENGTH, channels=CHANNELS)
    good, bad = side_request(5.0), side_request(np.inf)
    thread = run_one(PickyPredictor(), rows, [good, bad])
    done = thread.collect(timeout_s=5)
    assert [d.token for d in done] == [7]
    np.testing.assert_array_equal(done[0].probabilities[:, 0], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(good.probabilities, [[5.0, -5.0]])
    assert good.error is None and bad.probabilities is None
    assert isinstance(bad.error, RequestRejected) and bad.error.status == 422
    assert "infinity" in str(bad.error) and "\n" not in str(bad.error)
    assert thread.errors == []  # type: ignore[attr-defined]
    thread.submit(thread.predictor, rows, token=8)  # type: ignore[attr-defined]  # serving
    assert [d.token for d in thread.collect(timeout_s=5)] == [8]
    thread.close()


def test_a_failure_on_stream_windows_is_counted_latched_and_one_line() -> None:
    rows = make_rows(2, length=LENGTH, channels=CHANNELS)
    rows.data[1] = np.inf
    thread = run_one(PickyPredictor(), rows, [])
    wait_until_failed(thread)
    with pytest.raises(PredictorError) as caught:
        thread.collect()
    assert isinstance(caught.value, SensorstreamError)  # the CLI's one line, exit 2
    message = str(caught.value)
    assert "\n" not in message and "stream windows" in message and "infinity" in message
    assert thread.errors == [1]  # type: ignore[attr-defined]
    with pytest.raises(PredictorError):
        thread.submit(PickyPredictor(), rows, token=9)


def test_stream_rows_failing_with_requests_aboard_answer_the_requests_then_latch() -> None:
    rows = make_rows(2, length=LENGTH, channels=CHANNELS, first_offset=0)
    rows.data[0] = 100.0
    good = side_request(1.0)
    predictor = PickyPredictor(refuse_above=50.0)
    thread = run_one(predictor, rows, [good])
    np.testing.assert_array_equal(good.probabilities, [[1.0, -1.0]])
    wait_until_failed(thread)
    with pytest.raises(PredictorError):
        thread.collect()
    assert thread.errors == [1]  # type: ignore[attr-defined]
    assert predictor.calls == [3, 1, 2]  # together, then the request alone, then the rows alone


def test_a_batch_of_requests_only_fails_none_of_the_good_ones() -> None:
    rows = make_rows(0, length=LENGTH, channels=CHANNELS)
    requests = [side_request(v) for v in (1.0, np.inf, 2.0, np.inf)]
    thread = run_one(PickyPredictor(), rows, requests)
    (done,) = thread.collect(timeout_s=5)
    assert len(done.probabilities) == 0
    assert [r.error is None for r in requests] == [True, False, True, False]
    assert thread.errors == []  # type: ignore[attr-defined]
    thread.close()


def test_side_queue_classify_raises_the_requests_own_422() -> None:
    queue = SideQueue(timeout_s=5)
    thread = InferenceThread()
    answers: dict[str, object] = {}

    def ask(name: str, value: float) -> None:
        try:
            answers[name] = queue.classify(np.full((1, LENGTH, CHANNELS), value, np.float32))
        except RequestRejected as exc:
            answers[name] = exc.status

    askers = [threading.Thread(target=ask, args=(n, v)) for n, v in (("ok", 3.0), ("bad", np.inf))]
    for asker in askers:
        asker.start()
    while len(queue) < 2:
        threading.Event().wait(0.01)
    thread.submit(
        PickyPredictor(), make_rows(0, length=LENGTH, channels=CHANNELS), 1, queue.take(10)
    )
    for asker in askers:
        asker.join(5)
    assert answers["bad"] == 422
    np.testing.assert_array_equal(answers["ok"], [[3.0, -3.0]])
    thread.close()


def test_each_batch_runs_on_the_predictor_it_was_submitted_with() -> None:
    old, new = PickyPredictor(), PickyPredictor()
    thread = InferenceThread(max_in_flight=3)
    thread.submit(old, make_rows(2, length=LENGTH, channels=CHANNELS), 1)
    thread.submit(new, make_rows(3, length=LENGTH, channels=CHANNELS), 2)
    thread.submit(old, make_rows(1, length=LENGTH, channels=CHANNELS), 3)
    done: list = []
    while len(done) < 3:
        done += thread.collect(timeout_s=5)
    assert [(d.token, d.predictor) for d in done] == [(1, old), (2, new), (3, old)]
    assert old.calls == [2, 1] and new.calls == [3]
    thread.close()
