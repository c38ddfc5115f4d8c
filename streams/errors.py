"""Errors of the streams package.

    StreamError
    ├── Rejection        an event breaks a rule; it goes to the DLQ (rule + message)
    ├── RuleTableError   a register declaration names a rule the stage cannot make
    ├── WorkerError      the stream worker cannot be built, started or write a batch
    ├── StateError       the local state store cannot be opened, written or restored
    └── ServiceError     the information service cannot start or read the register
        └── BadQuestion  a caller's question is refused (HTTP 4xx: status, rule, message)
"""

from __future__ import annotations


class StreamError(Exception):
    """Base of every error raised by ``streams``."""


class Rejection(StreamError):
    """An event fails provenance or validation.

    ``rule`` is a stable machine-readable name (``invalid_uscc``, ``bad_signature`` …);
    the message names the record (event id / entity key), the rule and the offending value.
    """

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.message = message
        super().__init__(message)


class RuleTableError(StreamError):
    """A register declaration names a rule the stream stage does not know, or cannot make
    (``streams.declared_rules``): raised when the rule table is built."""


class WorkerError(StreamError):
    pass


class StateError(StreamError):
    pass


class ServiceError(StreamError):
    pass


class BadQuestion(ServiceError):
    """A question the service refuses: ``status`` is the HTTP status (400, 401, 404, 413, 429),
    ``rule`` a stable machine-readable name (``invalid_uscc``, ``too_many_identifiers`` …)."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        self.status = status
        self.rule = rule
        self.message = message
        super().__init__(f"{rule}: {message}")
