"""The SDK's errors: a small hierarchy, so a caller catches exactly what it can handle."""

from __future__ import annotations


class AdapterError(Exception):
    """Anything the adapter SDK raises on purpose."""


class BadRecord(AdapterError):
    """A native record that cannot be parsed or mapped: it goes to the dead-letter file with
    `reason`, and the run goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(AdapterError):
    """The configuration cannot run: a missing setting, an unknown adapter, no secret key."""


class BrokerUnavailable(AdapterError):
    """The broker stayed unreachable (or answered 5xx) through every retry."""
