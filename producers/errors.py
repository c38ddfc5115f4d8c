"""Errors of the producers package.

    ProducerError
    ├── GeneratorConfigError   synthetic generator parameters are out of range
    ├── SpoolError             the local spool file cannot be opened, read or written
    ├── EventEncodeError       an event does not encode with the contract's codec
    └── PublishError           the broker refused spooled entries permanently
"""

from __future__ import annotations


class ProducerError(Exception):
    """Base of every error raised by ``producers``."""


class GeneratorConfigError(ProducerError):
    pass


class SpoolError(ProducerError):
    pass


class EventEncodeError(ProducerError):
    pass


class PublishError(ProducerError):
    """Deliveries failed; ``failures`` lists (topic, error text) per failed entry."""

    def __init__(self, message: str, failures: list[tuple[str, str]] | None = None) -> None:
        self.failures = failures or []
        super().__init__(message)
