"""The worker's configuration: config.toml + environment + --set, checked at load.

Precedence: ``--set section.key=value`` beats ``SENSORSTREAM__SECTION__KEY=value``,
which beats the file, which beats the defaults below. Every error is one line
naming where the value came from, the key and the form it should take.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream.core.alerts import AlertRule
from stream.errors import ConfigError
from stream.kafka.security import check_security_keys, client_security_settings
from windows.config import MAX_DEVICES, MAX_DURATION_MS, MAX_HOP, MAX_LENGTH, WindowConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "SENSORSTREAM__"
DEFAULT_MODEL_PATH = "models/uwave"

# (module, pip package) kafka/codec.py imports for each codec; gzip is in the standard library.
_CODEC_PACKAGES = {
    "lz4": ("lz4", "lz4"),
    "zstd": ("zstandard", "zstandard"),
    "snappy": ("snappy", "python-snappy"),
}

# Kafka's protocol carries sizes and timeouts as int32.
INT32_MAX = 2**31 - 1
# The longest a shutdown or flush may be asked to wait, in seconds (one day).
MAX_WAIT_S = 86_400.0
# Kafka topic names: at most 249 of these characters, and not "." or "..".
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],]+):(\d{1,5})$")


class _Section(BaseModel):
    """Base of every config section: frozen, strict types, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class KafkaConfig(_Section):
    """[kafka]: broker, topics and the consumer/producer settings the worker passes on."""

    bootstrap_servers: str = Field("127.0.0.1:9092", min_length=1)
    input_topics: list[str] = Field(default_factory=lambda: ["sensor-samples"], min_length=1)
    output_topic: str = Field("sensor-events", min_length=1)
    dead_letter_topic: str = Field("sensor-dead-letters", min_length=1)
    alerts_topic: str = Field("sensor-alerts", min_length=1)
    group_id: str = Field("sensorstream", min_length=1)
    client_id: str = Field("sensorstream", min_length=1)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(2000, gt=0, le=INT32_MAX)
    fetch_min_bytes: int = Field(1, gt=0, le=INT32_MAX)
    fetch_max_wait_ms: int = Field(100, ge=0, le=INT32_MAX)
    max_partition_fetch_bytes: int = Field(4_194_304, gt=0, le=INT32_MAX)
    session_timeout_ms: int = Field(45_000, gt=0, le=INT32_MAX)
    max_poll_interval_ms: int = Field(300_000, gt=0, le=INT32_MAX)
    producer_linger_ms: int = Field(5, ge=0, le=INT32_MAX)
    producer_batch_size: int = Field(262_144, gt=0, le=INT32_MAX)
    compression_type: Literal["gzip", "lz4", "zstd", "snappy"] | None = None
    request_timeout_ms: int = Field(30_000, gt=0, le=INT32_MAX)
    # no partitions while not in a stable group, or lag with no records, this long: rejoin
    stall_timeout_s: float = Field(60.0, gt=0, le=86_400, allow_inf_nan=False)
    # Secure clusters. The password is never a value here: only where to read it.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = Field(None, min_length=1)
    sasl_password_env: str | None = Field(None, min_length=1)
    sasl_password_file: Annotated[Path, Field(strict=False)] | None = None
    ssl_cafile: Annotated[Path, Field(strict=False)] | None = None
    ssl_certfile: Annotated[Path, Field(strict=False)] | None = None
    ssl_keyfile: Annotated[Path, Field(strict=False)] | None = None
    ssl_check_hostname: bool = True

    @field_validator("compression_type", mode="before")
    @classmethod
    def _none_and_installed(cls, value: Any) -> Any:
        """TOML has no null, so "none" means no compression; other codecs need their package."""
        if value == "none":
            return None
        if isinstance(value, str) and value in _CODEC_PACKAGES:
            module, package = _CODEC_PACKAGES[value]
            if importlib.util.find_spec(module) is None:
                raise ValueError(f"{value!r} needs its codec package: pip install {package}")
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        """Every entry host:port with a port a client can connect to (kafka-python's int() else)."""
        for entry in value.split(","):
            match = _HOST_PORT.match(entry.strip())
            if match is None or not 1 <= int(match.group(2)) <= 65535:
                raise ValueError(
                    f"expected host:port[,host:port...] with ports 1-65535, e.g. "
                    f'"127.0.0.1:9092" (bad entry {entry.strip()!r})'
                )
        return value

    @field_validator("input_topics")
    @classmethod
    def _input_topic_names(cls, value: list[str]) -> list[str]:
        """Each input topic a name Kafka accepts."""
        for name in value:
            check_topic_name(name)
        return value

    @field_validator("output_topic", "dead_letter_topic", "alerts_topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        """A topic name Kafka accepts (the broker's refusal is a traceback otherwise)."""
        check_topic_name(value)
        return value

    @property
    def state_topic_name(self) -> str:
        """The compacted changelog of window anchors, one per consumer group."""
        return f"{self.group_id}-window-anchors"

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConfig:
        """Outputs must not feed back into the inputs; timeouts must nest as Kafka requires."""
        for key in ("output_topic", "dead_letter_topic", "alerts_topic"):
            if getattr(self, key) in self.input_topics:
                raise ValueError(
                    f"{key}: must differ from every input topic (a loop otherwise), "
                    f"got {getattr(self, key)!r}"
                )
        if not _TOPIC_NAME.match(self.state_topic_name):
            raise ValueError(
                f"group_id: its changelog topic {self.state_topic_name!r} is not a Kafka topic "
                "name; use at most 234 of A-Z a-z 0-9 . _ -"
            )
        if self.state_topic_name in self.input_topics:
            raise ValueError(
                f"group_id: its changelog topic {self.state_topic_name!r} is an input topic; "
                "choose another group_id"
            )
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise ValueError(
                f"fetch_max_wait_ms: expected less than request_timeout_ms "
                f"({self.request_timeout_ms}), got {self.fetch_max_wait_ms}"
            )
        check_security_keys(self)
        return self

    def security_settings(self) -> dict[str, Any]:
        """kafka-python client kwargs for TLS and SASL (the password read now, redacted in logs)."""
        return client_security_settings(self)


class WindowsConfig(_Section):
    """[windows]: window length/hop in samples, ordering, gaps, late samples, state bounds."""

    length: int = Field(315, gt=0, le=MAX_LENGTH)
    hop: int = Field(315, gt=0, le=MAX_HOP)
    reorder_ms: int = Field(0, ge=0, le=MAX_DURATION_MS)
    gap_ms: int = Field(1000, gt=0, le=MAX_DURATION_MS)
    gap_policy: Literal["reset", "fill"] = "reset"
    max_fill: int = Field(10, ge=0, le=MAX_DURATION_MS)
    interval_ms: float | None = Field(None, gt=0, le=MAX_DURATION_MS, allow_inf_nan=False)
    idle_ms: int = Field(600_000, gt=0, le=MAX_DURATION_MS)
    max_devices: int = Field(100_000, gt=0, le=MAX_DEVICES)
    late_policy: Literal["count", "dead_letter"] = "count"

    @model_validator(mode="after")
    def _consistent(self) -> WindowsConfig:
        """Reordering must settle before a gap is declared, or every reorder looks like a gap."""
        if self.reorder_ms >= self.gap_ms:
            raise ValueError(
                f"reorder_ms: expected less than gap_ms ({self.gap_ms}), got {self.reorder_ms}"
            )
        if self.max_fill > self.gap_ms:
            raise ValueError(
                f"max_fill: expected at most gap_ms ({self.gap_ms}), got {self.max_fill}"
            )
        return self

    def window_config(self, channels: int) -> WindowConfig:
        """The window store's config for these windows and the model's channel count."""
        return WindowConfig(
            length=self.length,
            hop=self.hop,
            channels=channels,
            reorder_ms=self.reorder_ms,
            gap_ms=self.gap_ms,
            gap_policy=self.gap_policy,
            max_fill=self.max_fill,
            interval_ms=self.interval_ms,
            idle_ms=self.idle_ms,
            max_devices=self.max_devices,
        )


class ModelConfig(_Section):
    """[model]: where the exported model lives and what runs it."""

    path: Annotated[Path, Field(strict=False)] = Path(DEFAULT_MODEL_PATH)
    device: str = Field("cpu", pattern=r"^(cpu|gpu|gpu:\d+)$")
    threads: int = Field(2, gt=0, le=1024)


class BatchingConfig(_Section):
    """[batching]: dynamic batch bounds and the backpressure bound on waiting windows."""

    max_batch: int = Field(32, gt=0, le=65_536)
    max_wait_ms: int = Field(20, ge=0, le=60_000)
    max_pending_windows: int = Field(4096, gt=0, le=10_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> BatchingConfig:
        """A full batch must fit under the backpressure bound, or it never fills."""
        if self.max_pending_windows < self.max_batch:
            raise ValueError(
                f"max_pending_windows: expected at least max_batch ({self.max_batch}), "
                f"got {self.max_pending_windows}"
            )
        return self


class MetricsConfig(_Section):
    """[metrics]: where /metrics, /healthz and /readyz are served (port 0 = any free port)."""

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(9108, ge=0, le=65535)


class DeliveryConfig(_Section):
    """[delivery]: delivery guarantee, commit cadence and shutdown bounds."""

    mode: Literal["at-least-once", "exactly-once"] = "at-least-once"
    commit_interval_ms: int = Field(1000, gt=0, le=INT32_MAX)
    shutdown_deadline_s: float = Field(30.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False)
    producer_flush_timeout_s: float = Field(10.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False)
    transactional_id: str | None = Field(None, min_length=1)
    transaction_timeout_ms: int = Field(60_000, ge=1000, le=INT32_MAX)
    # how long an unreachable broker is waited out (polling paused) before the worker stops
    broker_outage_s: float = Field(300.0, gt=0, le=86_400, allow_inf_nan=False)

    def transactional_id_for(self, group_id: str) -> str:
        """exactly-once: this replica's id (stable across its restarts, unique among replicas)."""
        return self.transactional_id or f"{group_id}-{socket.gethostname()}"

    @model_validator(mode="after")
    def _consistent(self) -> DeliveryConfig:
        """The final flush happens inside the shutdown deadline, so it must be shorter."""
        if self.producer_flush_timeout_s >= self.shutdown_deadline_s:
            raise ValueError(
                f"producer_flush_timeout_s: expected less than shutdown_deadline_s "
                f"({self.shutdown_deadline_s}), got {self.producer_flush_timeout_s}"
            )
        return self


class RecordsConfig(_Section):
    """[records]: bounds on one input record, enforced before any sample is buffered."""

    max_record_bytes: int = Field(1_048_576, gt=0, le=INT32_MAX)
    max_chunk_samples: int = Field(10_000, gt=0, le=10_000_000)
    max_device_id_length: int = Field(128, gt=0, le=65_535)


class HttpConfig(_Section):
    """[http]: the worker's HTTP side on the metrics port (see SECURITY.md)."""

    fetch_urls: bool = False  # let "csv" name a URL the worker fetches
    fetch_allow_hosts: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    token_env: str | None = Field(None, min_length=1)  # bearer token for classify + status page
    token_file: Annotated[Path, Field(strict=False)] | None = None
    threads: int = Field(8, gt=0, le=256)
    max_connections: int = Field(2000, gt=0, le=100_000)
    read_timeout_s: float = Field(30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _one_token_source(self) -> HttpConfig:
        """A token comes from one place, or there is none."""
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("token_env: set token_env or token_file, not both")
        return self


class Config(BaseModel):
    """The whole worker configuration, one frozen section per TOML table."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    alerts: tuple[AlertRule, ...] = ()  # [[alerts]]: label + confidence range rules


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation
    for name, field in Config.model_fields.items()  # type: ignore[misc]
    if name != "alerts"
}


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


def check_against_model(config: Config, window_length: int, channels: int) -> None:
    """Fail unless the config's windows fit the loaded model (length L, C channels)."""
    if channels <= 0:
        raise ConfigError(
            f"model.path: the model at {config.model.path} declares {channels} channels; "
            "expected a positive count in its manifest"
        )
    if config.windows.length != window_length:
        raise ConfigError(
            f"windows.length: the model at {config.model.path} takes windows of "
            f"{window_length} samples, got {config.windows.length}; set windows.length = "
            f"{window_length} or point model.path at a model trained for "
            f"{config.windows.length}"
        )
    check_window_memory(config, channels)


def check_window_memory(config: Config, channels: int) -> None:
    """Fail unless the window store's up-front reservation fits this machine's memory."""
    layout = config.windows.window_config(channels)
    limit = _memory_limit_bytes()
    if limit is None or layout.reserved_bytes <= limit:
        return
    most = limit // layout.bytes_per_device
    raise ConfigError(
        f"windows.max_devices: {config.windows.max_devices:,} devices x "
        f"{layout.bytes_per_device:,} bytes each (windows of {layout.length} samples x "
        f"{channels} channels) = {layout.reserved_bytes / 2**30:,.1f} GiB, more than this "
        f"machine's {limit / 2**30:,.1f} GiB of memory; set windows.max_devices to at most "
        f"{most:,}"
    )


def _memory_limit_bytes() -> int | None:
    """Physical memory, or the cgroup's limit when lower; None where neither is known."""
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        cgroup = "max"
    return min(limit, int(cgroup)) if cgroup.isdigit() else limit


def check_topic_name(name: str) -> None:
    """ValueError unless Kafka accepts `name` as a topic."""
    if not _TOPIC_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"expected Kafka topic names (1-249 of A-Z a-z 0-9 . _ -), not {name!r}")


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
    """Make model.path absolute: file values against the file's folder, overrides against cwd."""
    model = raw.setdefault("model", {})
    value = model.get("path", DEFAULT_MODEL_PATH)
    if not isinstance(value, str | Path):
        return  # left for validation to reject with the key's name
    from_file = sources.get(("model", "path"), file_label) == file_label
    root = base_dir if from_file else Path.cwd()
    model["path"] = (root / Path(value).expanduser()).resolve()


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
