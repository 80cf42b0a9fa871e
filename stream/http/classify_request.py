"""The classify request's body: the "csv" field, URL or base64, UTF-8 text, the CSV's groups.

Each failure is a RequestRejected whose message says what to send instead.
"""

from __future__ import annotations

import csv
import io

import orjson

from stream.errors import RequestRejected


def csv_field(body: bytes) -> str:
    """The "csv" string of a JSON object body, or a 400 that says what is missing."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected(
            400,
            f"request body is not JSON ({exc}); send "
            '{"csv": "<base64 of the CSV file or its URL>"}',
        ) from exc
    if not isinstance(request, dict) or "csv" not in request:
        raise RequestRejected(
            400,
            'request body must be a JSON object with a "csv" key '
            "holding the base64 CSV file or its http(s) URL",
        )
    value = request["csv"]
    if not isinstance(value, str):
        raise RequestRejected(400, f'"csv" must be a string, got {type(value).__name__}')
    return value.strip()


def is_url(value: str) -> bool:
    """True when `value` looks like scheme://..."""
    scheme, separator, _ = value.partition("://")
    return bool(separator) and scheme.isalpha()


def utf8_text(raw: bytes) -> str:
    """The CSV text, or a 400 naming the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestRejected(
            400, f"the CSV file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc


def header_and_groups(text: str) -> tuple[list[str], list[str]]:
    """(feature column names, group ids in order of first row), by the reader's row rules."""
    reader = csv.reader(io.StringIO(text))
    header = [column.strip() for column in next(reader)]
    group = header.index("group_id")
    features = [c for c in header if c not in ("group_id", "time", "label")]
    seen: dict[str, None] = {}
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        seen.setdefault(row[group].strip(), None)
    return features, list(seen)
