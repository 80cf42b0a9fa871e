"""Events and dead letters: deterministic ids, JSON round trip, headers with the source."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import orjson
import pytest
from hypothesis import given, settings

from stream.core.events import (
    Event,
    EventSource,
    ModelRef,
    dead_letter_headers,
    encode_dead_letter,
    encode_events,
    event_id,
    record_size_bytes,
)
from stream.decode.types import DeadLetter, InputRecord

LABELS = ["circle", "square", "zigzag"]
MODEL = ModelRef(name="uwave", version="2024.11.1")


def encode(probabilities, device_ids=None, extra=None):
    """encode_events over W windows with simple, distinct metadata."""
    probs = np.asarray(probabilities, dtype=np.float32)
    count = len(probs)
    device_ids = device_ids or [f"glove-{w}" for w in range(count)]
    sources = [
        EventSource(topic="samples", partition=w, first_offset=10 * w, last_offset=10 * w + 9)
        for w in range(count)
    ]
    starts = np.arange(count, dtype=np.int64) * 1000
    return encode_events(
        device_ids, starts, starts + 3140, probs, LABELS, MODEL, sources, 5_000, extra
    )


def test_event_id_is_deterministic_32_hex():
    first = event_id("glove-7", 1732280003263, "v1")
    assert first == event_id("glove-7", 1732280003263, "v1")
    assert len(first) == 32 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        ("glove-8", 1732280003263, "v1"),
        ("glove-7", 1732280003264, "v1"),
        ("glove-7", 1732280003263, "v2"),
    ],
)
def test_event_id_differs_when_device_end_or_version_differs(other):
    assert event_id("glove-7", 1732280003263, "v1") != event_id(*other)


def test_event_id_separator_keeps_fields_apart():
    assert event_id("a1", 23, "v") != event_id("a", 123, "v")


def test_events_round_trip_through_the_event_model():
    probs = [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]
    encoded = encode(probs)
    events = [Event.model_validate_json(raw) for raw in encoded]
    assert [e.device_id for e in events] == ["glove-0", "glove-1"]
    assert [e.class_id for e in events] == [1, 0]
    assert [e.label for e in events] == ["square", "circle"]
    assert [e.window_start_ts for e in events] == [0, 1000]
    assert [e.window_end_ts for e in events] == [3140, 4140]
    assert events[1].source == EventSource(
        topic="samples", partition=1, first_offset=10, last_offset=19
    )
    assert events[0].model == MODEL
    assert events[0].emitted_at == 5_000
    assert events[0].event_id == event_id("glove-0", 3140, MODEL.version)


def test_probabilities_and_score_come_back_as_the_same_float32_values():
    probs = np.random.default_rng(3).dirichlet(np.ones(3), size=20).astype(np.float32)
    events = [Event.model_validate_json(raw) for raw in encode(probs)]
    back = np.array([e.probabilities for e in events], dtype=np.float32)
    np.testing.assert_array_equal(back, probs)
    scores = np.array([e.score for e in events], dtype=np.float32)
    np.testing.assert_array_equal(scores, probs.max(axis=1))


def test_event_json_has_exactly_the_documented_fields():
    document = orjson.loads(encode([[0.2, 0.3, 0.5]])[0])
    assert set(document) == {
        "event_id", "device_id", "window_start_ts", "window_end_ts", "label", "class_id",
        "score", "abstained", "probabilities", "model", "source", "emitted_at",
    }  # fmt: skip
    assert document["abstained"] is False
    assert document["source"] == {
        "topic": "samples",
        "partition": 0,
        "first_offset": 0,
        "last_offset": 9,
    }


def test_a_window_below_min_score_abstains_and_keeps_its_probabilities():
    probs = np.array([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0.34, 0.33, 0.33]], dtype=np.float32)
    sources = [EventSource(topic="t", partition=0, first_offset=w, last_offset=w) for w in range(3)]
    starts = np.arange(3, dtype=np.int64)
    encoded = encode_events(
        ["a", "b", "c"], starts, starts + 1, probs, LABELS, MODEL, sources, 0, None, 0.5, "unsure"
    )
    documents = [orjson.loads(raw) for raw in encoded]
    # a score equal to min_score does not abstain
    assert [d["label"] for d in documents] == ["zigzag", "square", "unsure"]
    assert [d["class_id"] for d in documents] == [2, 1, -1]
    assert [d["abstained"] for d in documents] == [False, False, True]
    assert [d.get("top_label") for d in documents] == [None, None, "circle"]
    assert documents[2]["score"] == np.float32(0.34)
    np.testing.assert_array_equal(np.float32(documents[2]["probabilities"]), probs[2])
    event = Event.model_validate_json(encoded[2])
    assert (event.abstained, event.top_label, event.class_id) == (True, "circle", -1)
    # the same window's id whether it abstains or not: it is the same window
    assert documents[2]["event_id"] == event_id("c", 3, MODEL.version)


def test_min_score_zero_never_abstains():
    documents = [orjson.loads(raw) for raw in encode(np.full((4, 3), 1 / 3, np.float32))]
    assert [d["abstained"] for d in documents] == [False] * 4
    assert all("top_label" not in d for d in documents)


def test_events_written_before_abstaining_parse_as_not_abstained():
    document = orjson.loads(encode([[0.2, 0.3, 0.5]])[0])
    del document["abstained"]
    event = Event.model_validate(document)
    assert (event.abstained, event.top_label) == (False, None)


def test_extra_fields_are_written_and_kept_by_the_model():
    raw = encode([[0.2, 0.3, 0.5]], extra={"replay": True, "job_id": "backfill-3"})[0]
    event = Event.model_validate_json(raw)
    assert event.model_extra == {"replay": True, "job_id": "backfill-3"}


@pytest.mark.parametrize("field", ["label", "abstained", "top_label"])
def test_extra_fields_cannot_overwrite_event_fields(field):
    with pytest.raises(ValueError, match=field):
        encode([[0.2, 0.3, 0.5]], extra={field: "forged"})


def test_probabilities_shape_must_match_windows_and_labels():
    sources = [EventSource(topic="t", partition=0, first_offset=0, last_offset=0)]
    with pytest.raises(ValueError, match=r"expected shape \[1, 3\], got \[1, 2\]"):
        encode_events(["d"], [0], [1], np.zeros((1, 2), np.float32), LABELS, MODEL, sources, 0)


def test_no_windows_no_events():
    assert encode(np.zeros((0, 3))) == []


def dead_letter(value: bytes | None) -> DeadLetter:
    record = InputRecord("samples", 4, 1042, 1732280000123, b"glove-7", value, [("trace", b"x")])
    return DeadLetter(record, "wrong_type", "values[1]: expected a number, got boolean")


def test_dead_letter_headers_carry_the_input_headers_then_source_reason_and_message():
    assert dict(dead_letter_headers(dead_letter(b'{"x": 1}'))) == {
        "trace": b"x",
        "dlq.source.topic": b"samples",
        "dlq.source.partition": b"4",
        "dlq.source.offset": b"1042",
        "dlq.source.timestamp": b"1732280000123",
        "dlq.reason": b"wrong_type",
        "dlq.message": b"values[1]: expected a number, got boolean",
    }


def test_dead_letter_keeps_original_key_and_value_bytes():
    value = b"\xff\xfe not json \x00"
    key, sent_value, headers = encode_dead_letter(dead_letter(value))
    assert key == b"glove-7" and sent_value is value
    assert all(isinstance(v, bytes) for _, v in headers)


def test_tombstone_dead_letter_is_sent_as_none():
    _, value, _ = encode_dead_letter(dead_letter(None))
    assert value is None


def test_a_null_input_header_value_is_kept_as_empty_bytes():
    record = InputRecord("samples", 0, 1, 1, None, b"x", [("schema", None), ("dlq.reason", b"a")])
    headers = dead_letter_headers(DeadLetter(record, "invalid_json", "not JSON"))
    assert headers[:2] == [("schema", b""), ("dlq.reason", b"a")]
    assert dict(headers)["dlq.reason"] == b"invalid_json"  # ours come last: dict() sees them


HEADERS = st.lists(st.tuples(st.text(max_size=30), st.binary(max_size=3000)), max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.binary(max_size=3000)),
    st.one_of(st.none(), st.binary(max_size=20_000)),
    HEADERS,
    st.integers(1024, 12_000),
)
def test_dead_letters_fit_the_limit_cut_only_when_needed_and_say_so(key, value, headers, limit):
    record = InputRecord("samples", 0, 7, 1, key, value, headers)
    dl = DeadLetter(record, "too_large", "the value is too large")
    whole = encode_dead_letter(dl)
    sent_key, sent_value, sent = encode_dead_letter(dl, limit)
    assert record_size_bytes(sent_key, sent_value, sent) <= limit
    marks = dict(sent)
    if record_size_bytes(*whole) <= limit:
        assert (sent_key, sent_value, sent) == whole
        assert "dlq.truncated" not in marks
        return
    assert marks["dlq.truncated"] == b"true"
    assert int(marks["dlq.original_bytes"]) == len(value or b"")
    assert marks["dlq.reason"] == b"too_large"
    assert (sent_value is None) == (value is None) and (value or b"").startswith(sent_value or b"")
    assert (key or b"").startswith(sent_key or b"") and (sent_key is None) == (key is None)


def test_a_ten_megabyte_value_is_cut_to_nearly_the_limit():
    record = InputRecord("samples", 0, 7, 1, b"glove-1", b"{" + b" " * 10_000_000, [])
    key, value, headers = encode_dead_letter(DeadLetter(record, "too_large", "big"), 1_048_576)
    assert key == b"glove-1"
    assert 1_048_576 - 200 < record_size_bytes(key, value, headers) <= 1_048_576
    assert dict(headers)["dlq.original_bytes"] == b"10000001"
