"""The worker's configuration as data: one frozen section per TOML table, checked at load.

Each section rejects unknown keys and checks its own values and cross-field rules;
reading the file, the environment and --set is stream/config/loading.py.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from stream.config.kafka_security import client_security_settings
from stream.config.packages import (
    CODEC_PACKAGES,
    GPU_RUNTIME_PACKAGES,
    RUNTIME_PACKAGES,
    require_package,
)
from windows.config import MAX_DEVICES, MAX_DURATION_MS, MAX_HOP, MAX_LENGTH, WindowConfig

DEFAULT_MODEL_PATH = "models/uwave"

# Kafka's protocol carries sizes and timeouts as int32.
INT32_MAX = 2**31 - 1
# The longest a shutdown or flush may be asked to wait, in seconds (one day).
MAX_WAIT_S = 86_400.0
# Kafka topic names: at most 249 of these characters, and not "." or "..".
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],]+):(\d{1,5})$")
MAX_CONSECUTIVE = 10_000  # bounds the per-(device, rule) run kept in memory
MAX_LABEL_LENGTH = 1000  # as the manifest bounds its strings
MAX_DRIFT_SAMPLES = 1_000_000_000  # only a bounded, evenly spaced sample of them is kept
MAX_DRIFT_EVENTS = 10_000_000  # every one kept: 2 bytes each


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
        if isinstance(value, str) and value in CODEC_PACKAGES:
            require_package(value, CODEC_PACKAGES, "codec")
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
    """[model]: where the exported model lives, what runs it, and when a window abstains."""

    path: Annotated[Path, Field(strict=False)] = Path(DEFAULT_MODEL_PATH)
    device: str = Field("cpu", pattern=r"^(cpu|gpu|gpu:\d+)$")
    # what runs the model: ONNX Runtime (model.onnx; the fastest that keeps batch
    # invariance and accuracy), OpenVINO (model.onnx) or Paddle Inference (model.json);
    # its package is checked even when the key is left at the default
    runtime: Literal["paddle", "onnxruntime", "openvino"] = Field(
        "onnxruntime", validate_default=True
    )
    threads: int = Field(2, gt=0, le=1024)
    # a window whose top probability is below min_score gets abstain_label (0.0: never)
    min_score: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    abstain_label: str = Field("unknown", min_length=1, max_length=MAX_LABEL_LENGTH)
    # the manifest version at `path` is checked this often (0: only on SIGHUP)
    reload_interval_s: float = Field(10.0, ge=0.0, le=MAX_WAIT_S, allow_inf_nan=False)

    @field_validator("runtime")
    @classmethod
    def _runtime_installed(cls, value: str, info: ValidationInfo) -> str:
        """A runtime whose package is missing stops start-up here, with what to install."""
        gpu = info.data.get("device", "cpu") != "cpu"  # device is checked before runtime
        require_package(value, GPU_RUNTIME_PACKAGES if gpu else RUNTIME_PACKAGES, "runtime")
        return value


class ShadowConfig(_Section):
    """[shadow]: a candidate model classifying the same windows, published to its own topic."""

    path: Annotated[Path | None, Field(strict=False)] = None  # unset: no shadow
    topic: str | None = None  # default <output_topic>.shadow
    # batches the shadow may fall behind by before batches are skipped for it
    max_queued_batches: int = Field(4, gt=0, le=1024)

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str | None) -> str | None:
        """A topic name Kafka accepts."""
        if value is not None:
            check_topic_name(value)
        return value


class DriftConfig(_Section):
    """[drift]: how much recent input and how many recent events are compared with training."""

    window_samples: int = Field(100_000, ge=100, le=MAX_DRIFT_SAMPLES)
    window_events: int = Field(1000, ge=10, le=MAX_DRIFT_EVENTS)
    interval_s: float = Field(10.0, ge=0.1, le=86_400, allow_inf_nan=False)


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


class AlertRule(BaseModel):
    """One `[[alerts]]` table: fire when `label` scores within range for N windows in a row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    label: str = Field(min_length=1)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    max_score: float = Field(default=1.0, ge=0.0, le=1.0)
    min_consecutive: int = Field(default=1, ge=1, le=MAX_CONSECUTIVE)
    cooldown_s: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _range(self) -> AlertRule:
        if self.max_score < self.min_score:
            raise ValueError(
                f"max_score ({self.max_score}) must be >= min_score ({self.min_score})"
            )
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
    drift: DriftConfig = Field(default_factory=DriftConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    alerts: tuple[AlertRule, ...] = ()  # [[alerts]]: label + confidence range rules


def shadow_topic(config: Config) -> str:
    """Where shadow events go: [shadow] topic, else the output topic + ".shadow"."""
    return config.shadow.topic or f"{config.kafka.output_topic}.shadow"


# the TOML tables: every field of Config whose type is a section ([[alerts]] is not one)
SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
}


def check_topic_name(name: str) -> None:
    """ValueError unless Kafka accepts `name` as a topic."""
    if not _TOPIC_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"expected Kafka topic names (1-249 of A-Z a-z 0-9 . _ -), not {name!r}")


def check_security_keys(kafka: Any) -> None:
    """SASL keys only with a SASL protocol (and then all of them), TLS files only with TLS.

    Raises ValueError whose message starts with the key it blames (a config validator).
    """
    sasl = kafka.security_protocol.startswith("SASL_")
    tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    for key in ("sasl_mechanism", "sasl_username", "sasl_password_env", "sasl_password_file"):
        if not sasl and getattr(kafka, key) is not None:
            raise ValueError(
                f"{key}: only used with security_protocol SASL_SSL or SASL_PLAINTEXT "
                f"(got {kafka.security_protocol}); set the protocol or remove the key"
            )
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if not tls and getattr(kafka, key) is not None:
            raise ValueError(
                f"{key}: only used with security_protocol SSL or SASL_SSL "
                f"(got {kafka.security_protocol}); set the protocol or remove the key"
            )
    if (kafka.ssl_certfile is None) != (kafka.ssl_keyfile is None):
        raise ValueError(
            "ssl_certfile: a client certificate needs its key: set both ssl_certfile and "
            "ssl_keyfile, or neither"
        )
    if not sasl:
        return
    for key in ("sasl_mechanism", "sasl_username"):
        if getattr(kafka, key) is None:
            raise ValueError(f"{key}: required with security_protocol {kafka.security_protocol}")
    if (kafka.sasl_password_env is None) == (kafka.sasl_password_file is None):
        raise ValueError(
            "sasl_password_env: set exactly one of sasl_password_env (an environment variable "
            "name) or sasl_password_file (a path); the password itself never goes in the config"
        )
