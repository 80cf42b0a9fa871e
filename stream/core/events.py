"""What the worker writes: labeled window events (JSON) and dead letters (original bytes + headers).

An event per window, keyed by device id::

    {"event_id": "...", "device_id": "glove-7", "window_start_ts": 1732280000123,
     "window_end_ts": 1732280003263, "label": "gesture-3", "class_id": 2, "score": 0.91,
     "abstained": false, "probabilities": [...], "model": {"name": "uwave", "version": "..."},
     "source": {"topic": "sensor-samples", "partition": 3, "first_offset": 10, "last_offset": 324},
     "emitted_at": 1732280003301, ...extra}

A window whose score is below `[model] min_score` abstains (stream/core/abstain.py):
``"label": <abstain_label>, "class_id": -1, "abstained": true`` and ``"top_label"``,
the label it would have had. ``abstained`` is in every event, so consumers can
filter on it without a default; ``top_label`` only in abstained ones.

Probabilities are the predictor's float32 values written in their shortest float32
form (orjson's numpy support), so parsing them back to float32 gives the same bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from kafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import BaseModel, ConfigDict

from stream.core.abstain import decide
from stream.decode.types import DeadLetter

EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "device_id",
    "window_start_ts",
    "window_end_ts",
    "label",
    "class_id",
    "score",
    "abstained",
    "top_label",
    "probabilities",
    "model",
    "source",
    "emitted_at",
)


class ModelRef(BaseModel):
    """The model that labeled a window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str


class EventSource(BaseModel):
    """Where a window's samples came from: one partition, offsets of its first and last record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str
    partition: int
    first_offset: int
    last_offset: int


class Event(BaseModel):
    """A labeled window as consumers parse it; extra fields (replay markers, job ids) are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    event_id: str
    device_id: str
    window_start_ts: int  # epoch ms of the window's first sample
    window_end_ts: int  # epoch ms of the window's last sample
    label: str  # the abstain label when abstained
    class_id: int  # -1 when abstained
    score: float
    probabilities: list[float]  # [K]
    model: ModelRef
    source: EventSource
    emitted_at: int  # epoch ms
    abstained: bool = False  # events written before abstaining existed lack it
    top_label: str | None = None  # the label an abstained window would have had


def event_id(device_id: str, window_end_ts_ms: int, model_version: str) -> str:
    """Deterministic id (32 hex) of a device's window, so consumers can drop duplicates."""
    joined = f"{device_id}\x1f{window_end_ts_ms}\x1f{model_version}".encode()
    return hashlib.sha256(joined).hexdigest()[:32]


def encode_events(
    device_ids: Sequence[str],
    window_start_ts_ms: Sequence[int] | npt.NDArray[np.int64],
    window_end_ts_ms: Sequence[int] | npt.NDArray[np.int64],
    probabilities: npt.NDArray[np.floating[Any]],
    labels: Sequence[str],
    model: ModelRef,
    sources: Sequence[EventSource],
    emitted_at_ms: int,
    extra: Mapping[str, Any] | None = None,
    min_score: float = 0.0,
    abstain_label: str = "unknown",
) -> list[bytes]:
    """One JSON event per window; probabilities [W, K] float32, labels [K], the rest [W].

    A window whose top probability is below `min_score` abstains (module docstring).
    """
    probs = np.ascontiguousarray(probabilities, dtype=np.float32)  # [W, K]
    count = len(device_ids)
    if probs.ndim != 2 or probs.shape[0] != count or probs.shape[1] != len(labels):
        raise ValueError(
            f"probabilities: expected shape [{count}, {len(labels)}], got {list(probs.shape)}"
        )
    if not (len(window_start_ts_ms) == len(window_end_ts_ms) == len(sources) == count):
        raise ValueError(
            "device_ids, window starts/ends and sources must have one entry per window"
        )
    clashes = set(extra or ()) & set(EVENT_FIELDS)
    if clashes:
        raise ValueError(f"extra fields would overwrite event fields: {sorted(clashes)}")
    decisions = decide(probs, min_score)
    top_ids = decisions.top_ids.tolist()  # [W]
    class_ids = decisions.class_ids.tolist()  # [W]
    abstained = decisions.abstained.tolist()  # [W]
    scores = decisions.scores  # [W] float32, serialized as float32
    starts = np.asarray(window_start_ts_ms, dtype=np.int64).tolist()
    ends = np.asarray(window_end_ts_ms, dtype=np.int64).tolist()
    model_json = {"name": model.name, "version": model.version}
    tail = dict(extra or {})
    encoded = []
    for w in range(count):
        source = sources[w]
        document = {
            "event_id": event_id(device_ids[w], ends[w], model.version),
            "device_id": device_ids[w],
            "window_start_ts": starts[w],
            "window_end_ts": ends[w],
            "label": abstain_label if abstained[w] else labels[top_ids[w]],
            "class_id": class_ids[w],
            "score": scores[w],
            "abstained": abstained[w],
            **({"top_label": labels[top_ids[w]]} if abstained[w] else {}),
            "probabilities": probs[w],
            "model": model_json,
            "source": {
                "topic": source.topic,
                "partition": source.partition,
                "first_offset": source.first_offset,
                "last_offset": source.last_offset,
            },
            "emitted_at": emitted_at_ms,
            **tail,
        }
        encoded.append(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))
    return encoded


TRUNCATED_HEADER = "dlq.truncated"  # "true" when the value (and maybe key) was cut to fit
ORIGINAL_BYTES_HEADER = "dlq.original_bytes"  # the value's length before it was cut
_SIZE_SLACK_BYTES = 16  # varints of a shorter value and record length shrink, never grow


def dead_letter_headers(dead_letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The input record's own headers, then dlq.* ones (UTF-8) saying where it came from and why.

    kafka-python cannot produce a null header value, so one becomes empty bytes.
    """
    record = dead_letter.record
    kept = [(name, value if value is not None else b"") for name, value in record.headers]
    return [
        *kept,
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
        ("dlq.source.timestamp", str(record.timestamp_ms).encode()),
        ("dlq.reason", dead_letter.reason.encode()),
        ("dlq.message", dead_letter.message.encode("utf-8", errors="replace")),
    ]


def encode_dead_letter(
    dead_letter: DeadLetter, max_bytes: int | None = None
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) to produce: the original key and value bytes, cut to `max_bytes`.

    A record (as the producer sizes it) over `max_bytes` keeps the first bytes of its
    value and says so in dlq.truncated and dlq.original_bytes; if its key and headers
    alone are too large, the input record's headers are dropped and the key is cut too.
    """
    record = dead_letter.record
    key, value, headers = record.key, record.value, dead_letter_headers(dead_letter)
    if max_bytes is None or record_size_bytes(key, value, headers) <= max_bytes:
        return key, value, headers
    marks = [(TRUNCATED_HEADER, b"true"), (ORIGINAL_BYTES_HEADER, str(len(value or b"")).encode())]
    headers = headers + marks
    room = max_bytes - record_size_bytes(key, b"", headers) - _SIZE_SLACK_BYTES
    if room < 0:  # the key or the input's headers are the oversized part
        headers = dead_letter_headers(dead_letter)[len(record.headers) :] + marks
        key_room = max_bytes - record_size_bytes(b"", b"", headers) - _SIZE_SLACK_BYTES
        key = None if key is None else key[: max(key_room // 2, 0)]
        room = max_bytes - record_size_bytes(key, b"", headers) - _SIZE_SLACK_BYTES
    return key, None if value is None else value[: max(room, 0)], headers


def record_size_bytes(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> int:
    """The size kafka-python's producer checks against max_request_size (a one-record batch)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
