"""The root of every error the stream package raises on purpose."""

from __future__ import annotations


class SensorstreamError(Exception):
    """A failure the CLI reports as one line that says what to fix (exit code 2)."""


class ConfigError(SensorstreamError):
    """A bad config file, environment override or --set value; the message names the key."""


class RequestRejected(SensorstreamError):
    """An HTTP request refused for what it sent; `status` is the HTTP status and the errorCode.

    Here rather than in the HTTP modules so the predictor thread can fail one side
    request without importing the HTTP side.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
