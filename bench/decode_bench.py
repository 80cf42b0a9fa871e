"""Hot-path decode: the hand-written RecordDecoder against a pydantic validator, side by side.

Both turn the same polls of Kafka record values into the same columns (device ids,
int64 timestamps, float32 [N, C] values) and dead letters. Two workloads: single-sample
records and 100-sample chunk records. Then the same 100-sample chunks as JSON and as
binary SSB1 records (stream/decode/binary_records.py) through RecordDecoder, side by side.
Prints records/s, samples/s and microseconds per record, best of a few runs.

The binary figure depends on the allocator: a poll's arrays are megabytes, and when
glibc gives them back to the OS after each poll (its trim threshold adapts to the
largest block freed so far), the next poll's page faults cost more than the decoding
itself. --binary-only shows that state; with MALLOC_MMAP_THRESHOLD_=33554432 and
MALLOC_TRIM_THRESHOLD_=134217728 in the environment the pages stay and it goes away.

    python -m bench.decode_bench [--polls 20] [--poll-records 2000] [--repeats 5] [--binary-only]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stream.config.schema import RecordsConfig
from stream.decode.binary_format import encode_chunk
from stream.decode.router import RecordDecoder
from stream.decode.types import DeadLetter, InputRecord, SampleBatch

CHANNELS = 3
CHUNK_SAMPLES = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# pydantic error type -> our dead-letter reason (what the pydantic path can tell apart).
_REASONS = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "json_invalid": "invalid_json",
    "model_type": "not_an_object",
    "too_short": "wrong_channel_count",
    "too_long": "wrong_channel_count",
    "finite_number": "non_finite_value",
    "timezone_aware": "bad_timestamp",
    "datetime_from_date_parsing": "bad_timestamp",
    "greater_than_equal": "bad_interval",
}


def build_pydantic_decoder(
    channels: int, limits: RecordsConfig
) -> Callable[[Sequence[InputRecord]], Any]:
    """A decoder with the same output as RecordDecoder, validating with pydantic models."""
    row = Annotated[list[float], Field(min_length=channels, max_length=channels)]
    strict = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    device = Annotated[str, Field(min_length=1, max_length=limits.max_device_id_length)]
    stamp = Annotated[int, Field(ge=0)] | AwareDatetime

    class Sample(BaseModel):
        model_config = strict
        device_id: device
        ts: stamp
        values: row

    class Chunk(BaseModel):
        model_config = strict
        device_id: device
        ts: stamp
        interval_ms: Annotated[float, Field(ge=1)]
        values: Annotated[list[row], Field(min_length=1, max_length=limits.max_chunk_samples)]

    sample_adapter, chunk_adapter = TypeAdapter(Sample), TypeAdapter(Chunk)

    def decode(records: Sequence[InputRecord]) -> tuple[SampleBatch, list[DeadLetter]]:
        devices: list[str] = []
        stamps: list[np.ndarray] = []
        blocks: list[np.ndarray] = []
        index: list[np.ndarray] = []
        singles: list[list[float]] = []
        dead: list[DeadLetter] = []
        for i, record in enumerate(records):
            value = record.value or b""
            is_chunk = b'"interval_ms"' in value
            try:
                parsed = (chunk_adapter if is_chunk else sample_adapter).validate_json(value)
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                reason = _REASONS.get(error["type"], "wrong_type")
                dead.append(DeadLetter(record, reason, f"{error['loc']}: {error['msg']}"))
                continue
            ts = (
                parsed.ts
                if type(parsed.ts) is int
                else (parsed.ts - _EPOCH) // np.timedelta64(1, "ms")
            )
            if is_chunk:
                n = len(parsed.values)
                blocks.append(np.array(parsed.values, dtype=np.float32))
                stamps.append(ts + np.rint(np.arange(n) * parsed.interval_ms).astype(np.int64))
                devices.extend([parsed.device_id] * n)
                index.append(np.full(n, i, dtype=np.int32))
            else:
                singles.append(parsed.values)
                stamps.append(np.array([ts], dtype=np.int64))
                devices.append(parsed.device_id)
                index.append(np.array([i], dtype=np.int32))
        if singles:
            blocks.append(np.array(singles, dtype=np.float32))
        values = np.concatenate(blocks) if blocks else np.empty((0, channels), np.float32)
        batch = SampleBatch.from_samples(
            devices, np.concatenate(stamps), values, np.concatenate(index)
        )
        return batch, dead

    return decode


def make_polls(kind: str, polls: int, per_poll: int) -> list[list[InputRecord]]:
    """Polls of valid records from 50 devices: single samples, 100-sample JSON chunks
    ("chunk") or the same chunks as binary SSB1 records ("binary")."""
    rng = np.random.default_rng(7)
    out = []
    offset = 0
    for _ in range(polls):
        poll = []
        for _ in range(per_poll):
            device = f"glove-{offset % 50}"
            ts = 1_732_280_000_000 + offset * 10
            if kind == "sample":
                values: Any = np.round(rng.normal(size=CHANNELS), 4).tolist()
                value = orjson.dumps({"device_id": device, "ts": ts, "values": values})
            else:
                values = np.round(rng.normal(size=(CHUNK_SAMPLES, CHANNELS)), 4)
                obj = {"device_id": device, "ts": ts, "interval_ms": 10, "values": values}
                value = (
                    encode_chunk(device, ts, 10, values)
                    if kind == "binary"
                    else orjson.dumps({**obj, "values": values.tolist()})
                )
            poll.append(InputRecord("samples", 0, offset, ts, device.encode(), value, []))
            offset += 1
        out.append(poll)
    return out


Decode = Callable[[Sequence[InputRecord]], Any]


def measure(
    decoders: dict[str, Decode],
    polls: list[list[InputRecord]],
    repeats: int,
) -> dict[str, tuple[float, float]]:
    """(records/s, samples/s) per decoder from each poll's fastest of `repeats` runs."""
    return measure_cases({name: (decode, polls) for name, decode in decoders.items()}, repeats)


def measure_cases(
    cases: dict[str, tuple[Decode, list[list[InputRecord]]]], repeats: int
) -> dict[str, tuple[float, float]]:
    """(records/s, samples/s) per case (a decoder and its polls), fastest of `repeats` per poll.

    The cases take turns on every poll index and the minimum per poll is kept, so a
    machine shared with other work slows every side alike and spikes drop out.
    """
    seconds = {name: 0.0 for name in cases}
    samples = {name: 0 for name in cases}
    records = {name: sum(len(p) for p in polls) for name, (_, polls) in cases.items()}
    for i in range(min(len(polls) for _, polls in cases.values())):
        best = {name: float("inf") for name in cases}
        count = {}
        for _ in range(repeats):
            for name, (decode, polls) in cases.items():
                start = time.perf_counter()
                batch, dead = decode(polls[i])
                best[name] = min(best[name], time.perf_counter() - start)
                assert not dead, dead[0]
                count[name] = len(batch)
                del batch, dead  # as the worker does: a poll's arrays go before the next poll
        for name in cases:
            seconds[name] += best[name]
            samples[name] += count[name]
    return {name: (records[name] / seconds[name], samples[name] / seconds[name]) for name in cases}


def _row(workload: str, name: str, rate: tuple[float, float]) -> str:
    micros = 1e6 / rate[0]
    return f"{workload:<12} {name:<34} {rate[0]:>12,.0f} {rate[1]:>12,.0f} {micros:>10.2f}"


HEADER = f"{'workload':<12} {'decoder':<34} {'records/s':>12} {'samples/s':>12} {'us/record':>10}"


def compare_validators(limits: RecordsConfig, polls: int, per_poll: int, repeats: int) -> None:
    """Hand-written vs pydantic on single samples and on JSON chunks."""
    decoders = {
        "hand-written (orjson + numpy)": RecordDecoder(CHANNELS, limits).decode,
        "pydantic (validate_json, strict)": build_pydantic_decoder(CHANNELS, limits),
    }
    print(HEADER)
    for kind, made in (
        ("sample", make_polls("sample", polls, per_poll)),
        ("chunk100", make_polls("chunk", max(1, polls // 10), per_poll // 2)),
    ):
        rates = measure(decoders, made, repeats)
        for name in decoders:
            print(_row(kind, name, rates[name]))
        hand, pyd = rates.values()
        print(f"{kind:<12} {'ratio hand-written / pydantic':<34} {hand[0] / pyd[0]:>12.2f}x")


def compare_formats(
    limits: RecordsConfig, polls: int, per_poll: int, repeats: int, binary_only: bool
) -> None:
    """The same 100-sample chunks as JSON and as binary records, through RecordDecoder."""
    decode: Decode = RecordDecoder(CHANNELS, limits).decode
    formats = {"binary chunk (SSB1, numpy)": (decode, make_polls("binary", polls, per_poll))}
    if not binary_only:
        formats["JSON chunk (orjson + numpy)"] = (decode, make_polls("chunk", polls, per_poll))
    rates = measure_cases(formats, repeats)
    print(HEADER)
    for name in reversed(formats):
        print(_row("chunk100", name, rates[name]))
    if not binary_only:
        ratio = rates["binary chunk (SSB1, numpy)"][0] / rates["JSON chunk (orjson + numpy)"][0]
        print(f"{'chunk100':<12} {'ratio binary / JSON':<34} {ratio:>12.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the validators on both workloads, then JSON vs binary chunks; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--poll-records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--binary-only",
        action="store_true",
        help="decode only binary polls (no JSON work in the process to grow glibc's "
        "thresholds): each poll's arrays are fresh pages unless MALLOC_* is set",
    )
    args = parser.parse_args(argv)
    limits = RecordsConfig()
    if not args.binary_only:
        compare_validators(limits, args.polls, args.poll_records, args.repeats)
        print()
    # Issue 6: full-size polls of 100-sample chunks, a quarter as many polls (each is 100x).
    chunk_polls = max(1, args.polls // 4)
    compare_formats(limits, chunk_polls, args.poll_records, args.repeats, args.binary_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
