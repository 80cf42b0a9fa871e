"""The PaddleX time-series CSV reader: long format, one row per time step, one group per case.

Pad/crop and label ids follow :mod:`timesnet.dataset`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from timesnet.dataset import Dataset, build_dataset, decode_text, file_bytes, label_ids
from timesnet.errors import DataFormatError


def read_paddlex_csv(
    path_or_text: str | Path | bytes,
    length: int | None = None,
    labels: Sequence[str] | None = None,
    *,
    group_column: str = "group_id",
    time_column: str = "time",
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
) -> Dataset:
    """Read PaddleX long-format CSV (one row per time step, one group per case).

    ``path_or_text`` is a Path, a file name, or the CSV text itself (a str with a
    newline, or bytes). Cases follow the order of each group's first row; rows are
    sorted by time within a group (numbers, or ISO-8601 dates, naive ones read as UTC).
    """
    name, raw = _csv_source(path_or_text)
    reader = csv.reader(io.StringIO(decode_text(raw, name)))
    try:  # csv.Error: a field over csv's size limit, a NUL byte, a stray quote
        header = [column.strip() for column in next(reader, [])]
        if not any(header):
            raise DataFormatError(
                f"{name}: empty file; expected a header row with "
                f"{group_column}, {time_column} and feature columns"
            )
        cols = _csv_columns(header, name, group_column, time_column, label_column, feature_columns)
        rows = _collect_csv_rows(reader, len(header), cols, name)
    except csv.Error as exc:
        raise DataFormatError(
            f"{name}: line {reader.line_num}: not readable as CSV ({exc}); "
            "fields must be under 131,072 characters, without NUL "
            "bytes"
        ) from None
    values = _csv_features(rows.features, rows.lines, header, cols.features, name)  # [rows, C]
    stamps = _csv_times(rows.times, rows.lines, time_column, name)  # [rows]
    series: list[np.ndarray] = []
    group_labels: list[str] = []
    group_lines: list[int] = []
    for group, members in rows.groups.items():
        idx = np.asarray(members, dtype=np.int64)
        order = idx[np.argsort(stamps[idx], kind="stable")]
        repeated = np.flatnonzero(np.diff(stamps[order]) == 0)
        if repeated.size:
            second = order[repeated[0] + 1]
            raise DataFormatError(
                f"{name}: line {rows.lines[second]}: group {group!r} has two "
                f"rows at time {rows.times[second]!r}"
            )
        series.append(values[order])  # [T, C]
        group_lines.append(rows.lines[members[0]])
        if cols.label is not None:
            group_labels.append(_group_label(group, members, rows, name))
    y: np.ndarray | None = None
    vocab = tuple(str(label) for label in labels) if labels is not None else ()
    if cols.label is not None:
        y, vocab = label_ids(group_labels, group_lines, name, labels, None)
    return build_dataset(name, series, length, y, vocab, hashlib.sha256(raw).hexdigest())


_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class _CsvColumns:
    """Positions of the CSV columns by role."""

    group: int
    time: int
    label: int | None
    features: list[int]


@dataclass(frozen=True)
class _CsvRows:
    """The raw fields of every data row, and each group's row indices in file order."""

    groups: dict[str, list[int]]
    times: list[str]
    features: list[list[str]]
    labels: list[str]
    lines: list[int]  # file line number of each row, for messages


def _csv_source(path_or_text: str | Path | bytes) -> tuple[str, bytes]:
    """(name for messages, bytes) from a path or from the CSV text itself."""
    if isinstance(path_or_text, bytes):
        return "<csv text>", path_or_text
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return "<csv text>", path_or_text.encode("utf-8")
    return Path(path_or_text).name, file_bytes(path_or_text)


def _csv_columns(
    header: list[str],
    name: str,
    group_column: str,
    time_column: str,
    label_column: str,
    feature_columns: Sequence[str] | None,
) -> _CsvColumns:
    """Column positions: group, time, optional label, and the features (default: the rest)."""
    found = ", ".join(header)
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:  # header.index would read the first copy into every one of them
        raise DataFormatError(
            f"{name}: line 1: column names {duplicates} appear more than "
            "once; give every column its own name"
        )
    for role, column in (("group", group_column), ("time", time_column)):
        if column not in header:
            raise DataFormatError(
                f"{name}: line 1: no {role} column {column!r} "
                f"(columns: {found}); rename it or pass {role}_column"
            )
    if feature_columns is None:
        taken = {group_column, time_column, label_column}
        feature_columns = [column for column in header if column not in taken]
    missing = [column for column in feature_columns if column not in header]
    if missing:
        raise DataFormatError(
            f"{name}: line 1: feature columns {missing} not in the header (columns: {found})"
        )
    if not feature_columns:
        raise DataFormatError(
            f"{name}: line 1: no feature columns besides {group_column}, "
            f"{time_column} and {label_column}"
        )
    return _CsvColumns(
        group=header.index(group_column),
        time=header.index(time_column),
        label=header.index(label_column) if label_column in header else None,
        features=[header.index(column) for column in feature_columns],
    )


def _collect_csv_rows(reader: Any, width: int, cols: _CsvColumns, name: str) -> _CsvRows:
    """Read every non-blank data row; rows must have as many fields as the header."""
    data: list[list[str]] = []
    lines: list[int] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            raise DataFormatError(
                f"{name}: line {reader.line_num}: expected {width} fields "
                f"like the header, found {len(row)}"
            )
        data.append(row)
        lines.append(reader.line_num)
    if not data:
        raise DataFormatError(f"{name}: no data rows after the header")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(data):
        groups.setdefault(row[cols.group].strip(), []).append(i)
    label = cols.label
    return _CsvRows(
        groups=groups,
        times=[row[cols.time].strip() for row in data],
        features=[[row[i] for i in cols.features] for row in data],
        labels=[row[label].strip() for row in data] if label is not None else [""] * len(data),
        lines=lines,
    )


def _csv_features(
    features: list[list[str]],
    line_numbers: list[int],
    header: list[str],
    positions: list[int],
    name: str,
) -> np.ndarray:
    """Feature strings -> float64 [rows, C]; the first bad value is named by line and column."""
    try:
        values = np.array(features, dtype=np.float64)
    except ValueError:
        values = None
    # finite in float32 too: the reader casts to float32, where 1e39 becomes inf
    if values is not None and (np.abs(values) <= _FLOAT32_MAX).all():
        return values
    for row, line in zip(features, line_numbers, strict=True):
        for text, position in zip(row, positions, strict=True):
            try:
                ok = abs(float(text)) <= _FLOAT32_MAX
            except ValueError:
                ok = False
            if not ok:
                shown = text if len(text) <= 40 else text[:40] + "..."
                raise DataFormatError(
                    f"{name}: line {line}: column {header[position]!r}: "
                    f"expected a finite number within float32 range "
                    f"(|x| <= 3.4e38), found {shown!r}"
                )
    raise DataFormatError(f"{name}: feature values could not be read as numbers")


def _csv_times(times: list[str], line_numbers: list[int], column: str, name: str) -> np.ndarray:
    """Time strings -> float64 [rows]: numbers as they are, ISO-8601 dates as epoch seconds."""
    try:
        return np.array(times, dtype=np.float64)
    except ValueError:
        pass
    if _is_number(times[0]):  # a numeric column with a stray value: name that value
        bad = next(i for i, text in enumerate(times) if not _is_number(text))
        raise DataFormatError(
            f"{name}: line {line_numbers[bad]}: column {column!r}: expected a "
            f"number like the rows before, found {times[bad]!r}"
        )
    stamps = np.empty(len(times), dtype=np.float64)
    for i, text in enumerate(times):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise DataFormatError(
                f"{name}: line {line_numbers[i]}: column {column!r}: expected a "
                f"number or an ISO-8601 date, found {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        stamps[i] = moment.timestamp()
    return stamps


def _is_number(text: str) -> bool:
    """True when text parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _group_label(group: str, members: list[int], rows: _CsvRows, name: str) -> str:
    """The one label of a group; an error naming the group if it changes or is empty."""
    first = rows.labels[members[0]]
    for member in members:
        if rows.labels[member] != first or not first:
            raise DataFormatError(
                f"{name}: line {rows.lines[member]}: group {group!r} has label "
                f"{rows.labels[member]!r} but its first row has {first!r}; "
                "a label must be constant and non-empty within a group"
            )
    return first
