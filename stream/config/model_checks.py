"""The loaded config against the model it serves: window length, channels, memory, labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from stream.config.schema import AlertRule, Config, ModelConfig
from stream.errors import ConfigError


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


def check_rules_against_labels(rules: Sequence[AlertRule], labels: Sequence[str]) -> None:
    """Raise ConfigError when a rule names a label the model lacks or reuses a rule name."""
    known = set(labels)
    first_index: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.label not in known:
            raise ConfigError(
                f"alerts[{index}].label: unknown label {rule.label!r}; the model's labels are "
                f"{', '.join(repr(label) for label in labels)}; use one of them"
            )
        if rule.name in first_index:
            raise ConfigError(
                f"alerts[{index}].name: {rule.name!r} is already the name of "
                f"alerts[{first_index[rule.name]}]; give every rule its own name"
            )
        first_index[rule.name] = index


def check_abstain_label(model: ModelConfig, labels: Sequence[str]) -> None:
    """Raise ConfigError when `[model] abstain_label` is one of the model's own labels."""
    if model.abstain_label in labels:
        raise ConfigError(
            f"model.abstain_label: {model.abstain_label!r} is one of the model's labels, so an "
            "abstained window would read as that class; choose a label the model lacks "
            '(the default is "unknown")'
        )
