"""The worker's configuration: config.toml + environment + --set, checked at load.

Precedence: ``--set section.key=value`` beats ``SENSORSTREAM__SECTION__KEY=value``,
which beats the file, which beats the defaults (stream/config/schema.py). Every error
is one line naming where the value came from, the key and the form it should take.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stream.config.schema import DEFAULT_MODEL_PATH, SECTIONS, AlertRule, Config
from stream.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "SENSORSTREAM__"


def load_config(
    path: str | Path | None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the file (or the defaults when path is None), apply env then --set, validate."""
    raw: dict[str, dict[str, Any]] = {}
    sources: dict[tuple[str, str], str] = {}
    base_dir = Path.cwd()
    label = "defaults"
    alerts: tuple[AlertRule, ...] = ()
    if path is not None:
        file_path = Path(path)
        label = str(path)
        doc = _read_toml(file_path)
        alerts = _alert_rules(doc.pop("alerts", []), label)
        _merge(raw, sources, doc, label)
        base_dir = file_path.resolve().parent
    env = os.environ if environ is None else environ
    for name in sorted(env):
        if name.startswith(ENV_PREFIX):
            section, key = _env_key(name)
            _merge(raw, sources, {section: {key: _parse_value(env[name])}}, name)
    for item in overrides:
        section, key, value = _set_item(item)
        _merge(raw, sources, {section: {key: _parse_value(value)}}, "--set")
    _resolve_model_path(raw, sources, base_dir, label)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources, label)) from None
    return config.model_copy(update={"alerts": alerts})


def _alert_rules(tables: Any, label: str) -> tuple[AlertRule, ...]:
    """[[alerts]] tables as rules, or one line naming alerts[i].key and the expected form."""
    if not isinstance(tables, list):
        raise ConfigError(f"{label}: alerts: expected [[alerts]] tables, got {tables!r}")
    rules = []
    for index, table in enumerate(tables):
        try:
            rules.append(AlertRule.model_validate(table))
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ConfigError(
                f"{label}: alerts[{index}]{'.' + where if where else ''}: {error['msg']}"
            ) from None
    return tuple(rules)


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML document, or a ConfigError naming the file and the line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found; pass --config with an existing file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _merge(
    raw: dict[str, dict[str, Any]],
    sources: dict[tuple[str, str], str],
    doc: Mapping[str, Any],
    label: str,
) -> None:
    """Fold one layer into raw, rejecting unknown sections and keys with a suggestion."""
    for section, table in doc.items():
        if section not in SECTIONS:
            hint = _suggest(section, SECTIONS)
            raise ConfigError(f"{label}: unknown section [{section}]{hint}")
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: {section}: expected a table [{section}], got {table!r}")
        fields = SECTIONS[section].model_fields
        for key, value in table.items():
            if (section, key) == ("kafka", "sasl_password"):
                raise ConfigError(
                    f"{label}: kafka.sasl_password: the password never goes in the config; "
                    "set kafka.sasl_password_env (a variable name) or kafka.sasl_password_file"
                )
            if key not in fields:
                hint = _suggest(key, fields)
                raise ConfigError(f"{label}: unknown key {section}.{key}{hint}")
            raw.setdefault(section, {})[key] = value
            sources[(section, key)] = label


def _suggest(name: str, choices: Mapping[str, Any]) -> str:
    """' (did you mean x?)' for the closest known name, else ' (known: ...)'."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known: {', '.join(choices)})"


def _env_key(name: str) -> tuple[str, str]:
    """('windows', 'hop') from SENSORSTREAM__WINDOWS__HOP."""
    parts = name[len(ENV_PREFIX) :].split("__")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"{name}: expected an environment variable named {ENV_PREFIX}SECTION__KEY"
        )
    return parts[0].lower(), parts[1].lower()


_SET_ITEM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def _set_item(item: str) -> tuple[str, str, str]:
    """('windows', 'hop', '10') from 'windows.hop=10'."""
    match = _SET_ITEM.match(item.strip())
    if match is None:
        raise ConfigError(f"--set {item}: expected section.key=value, e.g. windows.hop=105")
    return match.group(1), match.group(2), match.group(3)


def _parse_value(text: str) -> Any:
    """The TOML value the text spells (10, ["a"], "gpu", true), else the text itself."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _resolve_model_path(
    raw: dict[str, dict[str, Any]],
    sources: dict[tuple[str, str], str],
    base_dir: Path,
    file_label: str,
) -> None:
    """Make model.path and shadow.path absolute: file values against the file's folder,
    overrides against cwd. Symlinks are kept, not followed: repointing one is how a new
    model version is swapped in (hot reload)."""
    for section, default in (("model", DEFAULT_MODEL_PATH), ("shadow", None)):
        values = raw.setdefault(section, {})
        value = values.get("path", default)
        if value is None or not isinstance(value, str | Path):
            continue  # unset, or left for validation to reject with the key's name
        from_file = sources.get((section, "path"), file_label) == file_label
        root = base_dir if from_file else Path.cwd()
        values["path"] = Path(os.path.abspath(root / Path(value).expanduser()))


def _describe(exc: ValidationError, sources: Mapping[tuple[str, str], str], label: str) -> str:
    """One line for the first validation error: source: section.key: expected form, got value."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    section = loc[0] if loc else ""
    if error["type"] == "value_error" and len(loc) == 1:
        # A cross-field check: its message starts with the key it blames, but the
        # value that broke it may be its partner, so name the last layer that set either.
        text = str(error["ctx"]["error"])
        key = text.split(":", 1)[0]
        in_section = [src for (sec, _), src in sources.items() if sec == section]
        source = sources.get((section, key)) or (in_section[-1] if in_section else label)
        return f"{source}: {section}.{text}"
    key = loc[1] if len(loc) > 1 else ""
    where = ".".join(loc)
    source = sources.get((section, key), label)
    expected = _expected(error, section, key)
    return f"{source}: {where}: {expected}, got {error['input']!r}"


# Fields whose expected form is clearer spelled out than derived from the type.
_FORMS: dict[tuple[str, str], str] = {
    ("kafka", "input_topics"): 'expected a non-empty list of topic names, e.g. ["sensor-samples"]',
    ("kafka", "compression_type"): 'expected one of "none", "gzip", "lz4", "zstd", "snappy"',
    ("model", "device"): 'expected "cpu", "gpu" or "gpu:N"',
}


def _expected(error: Mapping[str, Any], section: str, key: str) -> str:
    """The form a value should take, worded from the pydantic error and the field's type."""
    if (section, key) in _FORMS and error["type"] != "value_error":
        return _FORMS[(section, key)]
    kind = "integer"
    section_model = SECTIONS.get(section)
    if section_model is not None and key in section_model.model_fields:
        annotation = section_model.model_fields[key].annotation
        kind = "integer" if annotation is int else "number"
    article = "an" if kind == "integer" else "a"
    ctx = error.get("ctx") or {}
    words = {
        "int_type": "expected an integer",
        "float_type": "expected a number",
        "string_type": "expected a string",
        "list_type": "expected a list of strings",
        "bool_type": "expected true or false",
        "path_type": "expected a path string",
        "too_short": "expected a non-empty value",
        "finite_number": "expected a finite number",
    }
    kind_type = error["type"]
    if kind_type == "greater_than":
        return (
            f"expected a positive {kind}"
            if ctx["gt"] == 0
            else f"expected {article} {kind} > {ctx['gt']}"
        )
    if kind_type == "greater_than_equal":
        return (
            f"expected a non-negative {kind}"
            if ctx["ge"] == 0
            else f"expected {article} {kind} >= {ctx['ge']}"
        )
    if kind_type == "less_than_equal":
        return f"expected {article} {kind} <= {ctx['le']}"
    if kind_type == "literal_error":
        return f"expected one of {ctx['expected']}"
    if kind_type == "value_error":
        return str(ctx["error"])
    return words.get(kind_type, error["msg"])
