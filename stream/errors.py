"""The root of every error the stream package raises on purpose."""

from __future__ import annotations


class SensorstreamError(Exception):
    """A failure the CLI reports as one line that says what to fix (exit code 2)."""


class ConfigError(SensorstreamError):
    """A bad config file, environment override or --set value; the message names the key."""
