"""Replay ranges: --from/--to times and the per-partition offsets they resolve to."""

from __future__ import annotations

import pytest
from kafka.structs import TopicPartition

from stream.jobs.replay.ranges import (
    PartitionFacts,
    ReplayError,
    format_ms,
    parse_time,
    resolve_range,
)

T0 = 1_700_000_000_000


A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000000", T0),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T22:13:20.123+00:00", T0 + 123),
        ("2023-11-15T00:13:20+02:00", T0),
        (" 2023-11-14T17:13:20-05:00 ", T0),
        ("EARLIEST", None),
    ],
)
def test_times_parse_as_epoch_ms_or_iso_with_offset(text: str, expected: int | None) -> None:
    assert parse_time(text, "--from", "earliest") == expected


@pytest.mark.parametrize(
    "text", ["2023-11-14T22:13:20", "2023-11-14", "yesterday", "-5", "1.5e12", "now", ""]
)
def test_malformed_or_offsetless_times_name_the_accepted_forms(text: str) -> None:
    forms = r"^--from .*expected earliest, epoch milliseconds .* ISO-8601 with an offset"
    with pytest.raises(ReplayError, match=forms):
        parse_time(text, "--from", "earliest")


@pytest.mark.parametrize(
    "text", ["99999999999999999999999", "253402300800000", "1969-12-31T23:59:59Z"]
)
def test_times_outside_1970_to_9999_are_one_line_naming_the_range(text: str) -> None:
    with pytest.raises(ReplayError, match=r"^--from .*: expected a time from 1970-01-01T00:00:00Z"):
        parse_time(text, "--from", "earliest")


def test_format_ms_round_trips_through_parse_time() -> None:
    assert format_ms(T0 + 7) == "2023-11-14T22:13:20.007Z"
    assert parse_time(format_ms(T0 + 7), "--to", "now") == T0 + 7


def facts(
    beginning: int = 0,
    end: int = 100,
    oldest: int | None = T0,
    at_from: int | None = None,
    at_to: int | None = None,
) -> PartitionFacts:
    return PartitionFacts(beginning, end, oldest, at_from, at_to)


@pytest.mark.parametrize(
    ("name", "partitions", "from_ms", "to_ms", "expected"),
    [
        (
            "earliest to now reads everything retained",
            {A0: facts(10, 100)},
            None,
            None,
            {A0: (10, 100)},
        ),
        (
            "from/to pick the first offsets at or after each time",
            {A0: facts(at_from=20, at_to=60)},
            T0 + 5,
            T0 + 9,
            {A0: (20, 60)},
        ),
        (
            "no record at or after --to: up to the end at start",
            {A0: facts(at_from=20, at_to=None)},
            T0 + 5,
            T0 + 9,
            {A0: (20, 100)},
        ),
        (
            "a to offset past the end at start is clamped (records written after the lookup)",
            {A0: facts(end=50, at_from=20, at_to=70)},
            T0 + 5,
            T0 + 9,
            {A0: (20, 50)},
        ),
        (
            "a partition with nothing in range is left out",
            {A0: facts(at_from=20, at_to=60), A1: facts(at_from=None, at_to=None)},
            T0 + 5,
            T0 + 9,
            {A0: (20, 60)},
        ),
        (
            "empty partitions are left out",
            {A0: facts(5, 5, oldest=None), A1: facts(0, 40)},
            None,
            None,
            {A1: (0, 40)},
        ),
        ("earliest to a time", {A0: facts(3, 100, at_to=30)}, None, T0 + 9, {A0: (3, 30)}),
    ],
)
def test_range_resolution_rules(name, partitions, from_ms, to_ms, expected) -> None:
    assert resolve_range(partitions, from_ms, to_ms).bounds == expected, name


def test_from_before_the_oldest_retained_record_starts_there_with_a_note() -> None:
    partitions = {
        A0: facts(40, 100, oldest=T0, at_from=40),
        A1: facts(0, 100, oldest=T0 - 10, at_from=7),
    }
    resolved = resolve_range(partitions, T0 - 1000, None)
    assert resolved.bounds == {A0: (40, 100), A1: (7, 100)}
    (note,) = resolved.notes
    assert "before the oldest retained record of 2 of 2 partitions" in note
    assert format_ms(T0 - 10) in note


def test_from_inside_the_retained_range_gives_no_note() -> None:
    assert resolve_range({A0: facts(oldest=T0, at_from=50)}, T0 + 1, None).notes == ()


@pytest.mark.parametrize(
    ("partitions", "from_ms", "to_ms", "message"),
    [
        ({A0: facts()}, T0 + 10, T0 + 10, r"^--to .* is not after --from .*; pass a --to later"),
        ({A0: facts()}, T0 + 10, T0, r"^--to .* is not after --from"),
        (
            {A0: facts(at_from=None), A1: facts(at_from=None)},
            T0 + 10,
            None,
            r"^--from .* is after the newest retained record; pass an earlier",
        ),
        ({A0: facts(7, 7, oldest=None)}, None, None, r"no retained records"),
        (
            {A0: facts(at_from=20, at_to=20)},
            T0,
            T0 + 1,
            r"^no records between --from .* and --to .*; widen the range",
        ),
    ],
)
def test_bad_ranges_stop_with_one_line_saying_what_to_fix(
    partitions, from_ms, to_ms, message
) -> None:
    with pytest.raises(ReplayError, match=message) as info:
        resolve_range(partitions, from_ms, to_ms)
    assert "\n" not in str(info.value)
