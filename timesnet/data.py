"""Datasets for the model: UEA/sktime ``.ts`` files and PaddleX time-series CSV files.

Both readers return a :class:`Dataset` of float32 windows ``[N, L, C]``.

Length rule (cases longer or shorter than the model's window length ``L``):

* **crop** keeps the LAST ``L`` samples. The worker classifies the most recent
  ``L`` samples of a device, so training on the end of a long series matches what
  the model sees in production.
* **pad** repeats the FIRST sample at the front until the case is ``L`` long, so
  the end of every case stays aligned with the end of the window (as for crop).
  Repeating the edge value looks like a sensor at rest before the motion; zeros
  would instead put a step into the series whose spectrum leaks into every FFT
  period TimesNet picks.

``lengths`` keeps each case's original length. Missing values (``?`` or ``NaN`` in
a ``.ts`` file whose header says ``@missing true``) are filled per channel by linear
interpolation between the nearest observed samples, and by the nearest observed
value at the edges.

Labels: pass the model's label list as ``labels`` so a test file maps to the same
ids as training. Without it the order is that of the ``@classLabel true ...`` header,
else the sorted unique labels (numerically when all look like numbers). A numeric
label that is not in the list verbatim matches a numerically equal one (``1`` ->
``1.0``), because CSV exports often rewrite ``1.0`` as ``1``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from timesnet.errors import DataFormatError, ModelError

logger = logging.getLogger(__name__)

_TS_KEYS = (
    "problemname",
    "timestamps",
    "missing",
    "univariate",
    "dimensions",
    "equallength",
    "serieslength",
    "classlabel",
    "data",
)


@dataclass(frozen=True)
class Dataset:
    """Cases as float32 windows [N, L, C], with int64 label ids [N] (or None) and provenance."""

    x: np.ndarray  # float32 [N, L, C]
    y: np.ndarray | None  # int64 [N], ids into labels
    labels: tuple[str, ...]  # class names in id order
    source_sha256: str  # sha256 of the file bytes
    lengths: np.ndarray  # int64 [N], original lengths before pad/crop

    @property
    def window_length(self) -> int:
        """L, the number of samples per case after pad/crop."""
        return int(self.x.shape[1])

    @property
    def n_channels(self) -> int:
        """C, the number of channels per sample."""
        return int(self.x.shape[2])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, indices: np.ndarray | Sequence[int]) -> Dataset:
        """The cases at ``indices`` (in that order), same labels and provenance."""
        idx = np.asarray(indices, dtype=np.int64)
        y = None if self.y is None else self.y[idx]
        return replace(self, x=self.x[idx], y=y, lengths=self.lengths[idx])


def read_dataset(
    path: str | Path, length: int | None = None, labels: Sequence[str] | None = None
) -> Dataset:
    """Read a ``.ts`` or PaddleX ``.csv`` file, chosen by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return read_ts(path, length, labels)
    if suffix == ".csv":
        return read_paddlex_csv(Path(path), length, labels)
    raise DataFormatError(f"{path}: unknown data file type {suffix!r}; expected a .ts or .csv file")


def split_train_validation(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split into (train, validation), stratified by class and deterministic for ``seed``.

    Each class gives round(fraction * count) cases to validation, at least one when
    fraction > 0, and always leaves at least one in train. Both parts keep file order.
    """
    if ds.y is None:
        raise ModelError("cannot split a dataset without class labels; use a labelled file")
    if not 0.0 <= fraction < 1.0:
        raise ModelError(f"validation fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for class_id in range(len(ds.labels)):
        members = np.flatnonzero(ds.y == class_id)
        if members.size == 0:
            continue
        n_val = math.floor(fraction * members.size + 0.5)
        if fraction > 0.0:
            n_val = max(n_val, 1)
        n_val = min(n_val, members.size - 1)
        val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_mask = np.ones(len(ds), dtype=bool)
    train_mask[val_idx] = False
    return ds.subset(np.flatnonzero(train_mask)), ds.subset(val_idx)


# --------------------------------------------------------------------------- shared


def fit_length(series: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack cases [T_i, C] into [N, length, C]: crop keeps the last, pad repeats the first."""
    if length <= 0:
        raise ModelError(f"window length must be positive, got {length}")
    n_channels = series[0].shape[1] if series else 0
    out = np.empty((len(series), length, n_channels), dtype=np.float32)  # [N, L, C]
    for i, case in enumerate(series):
        t = case.shape[0]
        if t >= length:
            out[i] = case[t - length :]
        else:
            out[i, : length - t] = case[0]
            out[i, length - t :] = case
    return out


def _sort_labels(unique: set[str]) -> tuple[str, ...]:
    """Sorted labels, numerically when every label parses as a number."""
    try:
        return tuple(sorted(unique, key=lambda s: (float(s), s)))
    except ValueError:
        return tuple(sorted(unique))


def _numeric_aliases(vocab: Sequence[str]) -> dict[float, int]:
    """float value -> id for numeric-looking labels, so '1' finds '1.0'."""
    aliases: dict[float, int] = {}
    for i, label in enumerate(vocab):
        try:
            aliases.setdefault(float(label), i)
        except ValueError:
            continue
    return aliases


def _label_ids(
    raw: Sequence[str],
    line_numbers: Sequence[int],
    name: str,
    given: Sequence[str] | None,
    declared: tuple[str, ...] | None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map raw label strings to ids [N] in the vocabulary (given > declared > sorted unique)."""
    if declared is not None:
        declared_set = set(declared)
        for label, line in zip(raw, line_numbers, strict=True):
            if label not in declared_set:
                raise DataFormatError(
                    f"{name}: line {line}: class label {label!r} is not declared in "
                    f"@classLabel ({' '.join(declared)}); add it to the header or fix the line"
                )
    if given is not None:
        vocab = tuple(str(label) for label in given)
    else:
        vocab = declared if declared else _sort_labels(set(raw))
    index = {label: i for i, label in enumerate(vocab)}
    aliases = _numeric_aliases(vocab)
    ids = np.empty(len(raw), dtype=np.int64)
    for k, (label, line) in enumerate(zip(raw, line_numbers, strict=True)):
        class_id = index.get(label)
        if class_id is None:
            class_id = _numeric_alias(label, aliases)
        if class_id is None:
            raise DataFormatError(
                f"{name}: line {line}: class label {label!r} is not one of the model's labels "
                f"({', '.join(vocab)}); this file does not belong to this model"
            )
        ids[k] = class_id
    return ids, vocab


def _numeric_alias(label: str, aliases: dict[float, int]) -> int | None:
    """The id of a numerically equal label, or None."""
    try:
        return aliases.get(float(label))
    except ValueError:
        return None


def _fill_missing(case: np.ndarray, name: str, line: int) -> np.ndarray:
    """Fill NaNs per channel of [T, C] by linear interpolation, nearest value at the edges."""
    steps = np.arange(case.shape[0])
    for c in range(case.shape[1]):
        missing = np.isnan(case[:, c])
        if not missing.any():
            continue
        if missing.all():
            raise DataFormatError(
                f"{name}: line {line}: channel {c + 1} has no observed value to fill "
                "missing values from; drop the case or supply at least one value"
            )
        case[missing, c] = np.interp(steps[missing], steps[~missing], case[~missing, c])
    return case


def _file_bytes(path: str | Path) -> bytes:
    """The bytes of a data file, with a clear error when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read data file: {exc.strerror or exc}") from exc


def _decode(raw: bytes, name: str) -> str:
    """UTF-8 text (a BOM is dropped), or an error naming the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc


def _finish(
    name: str,
    series: list[np.ndarray],
    length: int | None,
    y: np.ndarray | None,
    vocab: tuple[str, ...],
    digest: str,
) -> Dataset:
    """Pad/crop the cases and build the Dataset."""
    lengths = np.array([case.shape[0] for case in series], dtype=np.int64)
    target = int(lengths.max()) if length is None else int(length)
    x = fit_length(series, target)
    logger.info(
        "read dataset source=%s cases=%d length=%d channels=%d classes=%d",
        name,
        x.shape[0],
        target,
        x.shape[2],
        len(vocab),
    )
    return Dataset(x=x, y=y, labels=vocab, source_sha256=digest, lengths=lengths)


# --------------------------------------------------------------------------- .ts


@dataclass(frozen=True)
class _TsHeader:
    """The @-metadata of a .ts file that changes how its data lines are read."""

    missing: bool
    dimensions: int | None
    equal_length: bool
    series_length: int | None
    class_label: bool
    declared: tuple[str, ...] | None


def read_ts(
    path: str | Path, length: int | None = None, labels: Sequence[str] | None = None
) -> Dataset:
    """Read a UEA/sktime ``.ts`` file into a Dataset (see the module docstring for the rules)."""
    raw = _file_bytes(path)
    name = Path(path).name
    lines = _decode(raw, name).splitlines()
    header, first = _parse_ts_header(lines, name)
    series: list[np.ndarray] = []
    raw_labels: list[str] = []
    line_numbers: list[int] = []
    dims = header.dimensions
    for i in range(first, len(lines)):
        text = lines[i].strip()
        if not text or text.startswith("#"):
            continue
        case, label = _parse_ts_line(text, i + 1, header, dims, name)
        dims = case.shape[1]
        _check_ts_length(case.shape[0], header, series, i + 1, name)
        series.append(case)
        line_numbers.append(i + 1)
        if label is not None:
            raw_labels.append(label)
    if not series:
        raise DataFormatError(f"{name}: no cases after @data; expected one case per line")
    y: np.ndarray | None = None
    vocab = tuple(str(label) for label in labels) if labels is not None else ()
    if header.class_label:
        y, vocab = _label_ids(raw_labels, line_numbers, name, labels, header.declared)
    return _finish(name, series, length, y, vocab, hashlib.sha256(raw).hexdigest())


def _parse_ts_header(lines: list[str], name: str) -> tuple[_TsHeader, int]:
    """Read the @-lines up to @data; returns the header and the index of the first data line."""
    meta: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("@"):
            raise DataFormatError(
                f"{name}: line {i + 1}: expected a @header line or @data before the data, "
                f"found {text[:40]!r}"
            )
        key, _, value = text[1:].partition(" ")
        key = key.lower()
        if key not in _TS_KEYS:
            raise DataFormatError(
                f"{name}: line {i + 1}: unknown header @{key}; expected one of "
                + ", ".join("@" + k for k in _TS_KEYS)
            )
        if key == "data":
            return _build_ts_header(meta, name), i + 1
        meta[key] = (value.strip(), i + 1)
    raise DataFormatError(f"{name}: missing @data line; expected the header to end with @data")


def _ts_bool(meta: dict[str, tuple[str, int]], key: str, default: bool, name: str) -> bool:
    """A true/false header value."""
    if key not in meta:
        return default
    value, line = meta[key]
    first = value.split(" ")[0].lower()
    if first not in ("true", "false"):
        raise DataFormatError(f"{name}: line {line}: @{key} must be true or false, got {value!r}")
    return first == "true"


def _ts_int(meta: dict[str, tuple[str, int]], key: str, name: str) -> int | None:
    """A positive integer header value, or None when absent."""
    if key not in meta:
        return None
    value, line = meta[key]
    if not value.isdigit() or int(value) <= 0:
        raise DataFormatError(
            f"{name}: line {line}: @{key} must be a positive integer, got {value!r}"
        )
    return int(value)


def _build_ts_header(meta: dict[str, tuple[str, int]], name: str) -> _TsHeader:
    """Check the collected header values and keep the ones the data lines depend on."""
    if _ts_bool(meta, "timestamps", False, name):
        raise DataFormatError(
            f"{name}: line {meta['timestamps'][1]}: @timeStamps true is not supported; "
            "export the series without time stamps (@timeStamps false)"
        )
    dimensions = _ts_int(meta, "dimensions", name)
    if _ts_bool(meta, "univariate", False, name) and dimensions not in (None, 1):
        raise DataFormatError(
            f"{name}: line {meta['dimensions'][1]}: @univariate true but @dimensions {dimensions}"
        )
    if _ts_bool(meta, "univariate", False, name):
        dimensions = 1
    class_label = _ts_bool(meta, "classlabel", False, name)
    declared = None
    if class_label:
        declared = tuple(meta["classlabel"][0].split()[1:])
        if not declared:
            raise DataFormatError(
                f"{name}: line {meta['classlabel'][1]}: @classLabel true must list the labels"
            )
    return _TsHeader(
        missing=_ts_bool(meta, "missing", False, name),
        dimensions=dimensions,
        equal_length=_ts_bool(meta, "equallength", False, name),
        series_length=_ts_int(meta, "serieslength", name),
        class_label=class_label,
        declared=declared,
    )


def _parse_ts_line(
    text: str, line: int, header: _TsHeader, dims: int | None, name: str
) -> tuple[np.ndarray, str | None]:
    """One data line -> (case [T, C] float64, label or None)."""
    parts = text.split(":")
    label = None
    if header.class_label:
        label = parts.pop().strip()
        if not label or not parts:
            raise DataFormatError(
                f"{name}: line {line}: expected channels separated by ':' and the class label "
                "after the last ':'"
            )
    if dims is not None and len(parts) != dims:
        suffix = " plus the class label" if header.class_label else ""
        raise DataFormatError(
            f"{name}: line {line}: expected {dims} channels separated by ':'{suffix}, "
            f"found {len(parts)}"
        )
    channels = [_parse_ts_channel(part, line, c, header, name) for c, part in enumerate(parts)]
    sizes = {channel.size for channel in channels}
    if len(sizes) != 1:
        raise DataFormatError(
            f"{name}: line {line}: channels of one case must have the same length, "
            f"found lengths {[channel.size for channel in channels]}"
        )
    case = np.stack(channels, axis=1)  # [T, C]
    if header.missing:
        case = _fill_missing(case, name, line)
    return case, label


def _parse_ts_channel(part: str, line: int, c: int, header: _TsHeader, name: str) -> np.ndarray:
    """One channel's comma-separated values -> float64 [T]; '?' and NaN mean missing."""
    tokens = part.split(",")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = np.empty(len(tokens), dtype=np.float64)
        for j, token in enumerate(tokens):
            token = token.strip()
            if token == "?":
                values[j] = np.nan
                continue
            try:
                values[j] = float(token)
            except ValueError:
                raise DataFormatError(
                    f"{name}: line {line}: channel {c + 1}, value {j + 1}: expected a number, "
                    f"found {token!r}"
                ) from None
    if np.isnan(values).any() and not header.missing:
        raise DataFormatError(
            f"{name}: line {line}: channel {c + 1} has missing values ('?' or NaN) but the "
            "header says @missing false; set @missing true to fill them by interpolation"
        )
    if np.isinf(values).any():
        raise DataFormatError(f"{name}: line {line}: channel {c + 1} has an infinite value")
    return values


def _check_ts_length(
    t: int, header: _TsHeader, previous: list[np.ndarray], line: int, name: str
) -> None:
    """Enforce @equalLength / @seriesLength when the header promises them."""
    if not header.equal_length:
        return
    expected = header.series_length or (previous[0].shape[0] if previous else t)
    if t != expected:
        raise DataFormatError(
            f"{name}: line {line}: expected {expected} values per channel (@equalLength true), "
            f"found {t}"
        )


# --------------------------------------------------------------------------- PaddleX CSV


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
    reader = csv.reader(io.StringIO(_decode(raw, name)))
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
        y, vocab = _label_ids(group_labels, group_lines, name, labels, None)
    return _finish(name, series, length, y, vocab, hashlib.sha256(raw).hexdigest())


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
    return Path(path_or_text).name, _file_bytes(path_or_text)


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
