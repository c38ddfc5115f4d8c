"""Errors of the producers package.

    ProducerError
    ├── GeneratorConfigError   synthetic generator parameters are out of range
    ├── SpoolError             the local spool file cannot be opened, read or written
    ├── EventEncodeError       an event does not encode with the contract's codec
    ├── PublishError           the broker refused spooled entries permanently
    ├── SubmissionError        a submission cannot be recorded, closed or sent again
    ├── ReceiptError           receipts cannot be read from the broker
    ├── MetricsError           a metric is given an unknown adapter label
    ├── FileAdapterError       the daily file adapter cannot go on
    │   ├── FileRejected       a file cannot be read at all (moved aside with its reason)
    │   ├── MappingError       a header mapping file is unreadable or maps to unknown fields
    │   ├── BadRow             one row of a file breaks a rule (reported, the file goes on)
    │   └── AdapterBusyError   another adapter holds this province and entity
    ├── DbSourceError          the source database cannot be used (bad URL, unreachable, failed query)
    │   ├── SourceUrlError     the URL names no supported database, or its database cannot be opened
    │   ├── SourceSchemaError  the table or a named column does not exist in the source
    │   └── SourceQueryError   a polling query failed
    └── RowRejected            one source row breaks a rule (reported, the poll goes on)
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


class SubmissionError(ProducerError):
    pass


class ReceiptError(ProducerError):
    pass


class FileAdapterError(ProducerError):
    pass


class FileRejected(FileAdapterError):
    """A whole file is unusable; ``rule`` is a stable reason, the message says why."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}")


class MappingError(FileAdapterError):
    pass


class AdapterBusyError(FileAdapterError):
    pass


class BadRow(FileAdapterError):
    """One bad input row of a daily file: ``field`` (or None for the whole row), ``rule`` and the message."""

    def __init__(self, field: str | None, rule: str, message: str) -> None:
        self.field = field
        self.rule = rule
        self.detail = message
        super().__init__(f"{field or 'row'}: {rule}: {message}")


class MetricsError(ProducerError):
    pass


class DbSourceError(ProducerError):
    """The source database cannot be used: bad URL, unreachable, or a query failed."""


class SourceUrlError(DbSourceError):
    """The URL names no supported database, or its database cannot be opened."""


class SourceSchemaError(DbSourceError):
    """The table or a named column does not exist in the source."""


class SourceQueryError(DbSourceError):
    """A polling query failed."""


class RowRejected(ProducerError):
    """One source row breaks a rule; ``rule`` is machine-readable, ``field`` may be empty."""

    def __init__(self, key: str, field: str, rule: str, message: str) -> None:
        self.key, self.field, self.rule = key, field, rule
        where = f"field {field!r}: " if field else ""
        super().__init__(f"row {key}: {where}{rule}: {message}")
