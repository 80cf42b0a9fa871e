"""The UEA/sktime ``.ts`` reader (the format of the UEA archive, UWave included).

Pad/crop and label ids follow :mod:`timesnet.dataset`. Missing values (``?`` or
``NaN`` in a file whose header says ``@missing true``) are filled per channel by
linear interpolation between the nearest observed samples, and by the nearest
observed value at the edges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timesnet.dataset import Dataset, build_dataset, decode_text, file_bytes, label_ids
from timesnet.errors import DataFormatError

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
    raw = file_bytes(path)
    name = Path(path).name
    lines = decode_text(raw, name).splitlines()
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
        y, vocab = label_ids(raw_labels, line_numbers, name, labels, header.declared)
    return build_dataset(name, series, length, y, vocab, hashlib.sha256(raw).hexdigest())


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
