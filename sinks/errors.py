"""Errors of the sinks package.

    SinkError
    ├── StoreError           the ClickHouse store cannot be opened, or a write/DDL failed
    │                        (after the sink's retries)
    ├── QueryError           an analyst's SQL was rejected; carries the server message
    ├── DownloadError        a bulk download asked for with a bad parameter (names it and the rule)
    ├── PublishError         receipts or evidence entries could not be sent now (the store holds
    │                        them; they are sent again)
    └── UnstorableMessage    a message cannot become a store row (names the record); it is
                             stored as a dead letter instead
"""

from __future__ import annotations


class SinkError(Exception):
    """Base of every error raised by ``sinks``."""


class StoreError(SinkError):
    pass


class QueryError(SinkError):
    """Bad SQL (or a failing query); ``server_message`` is ClickHouse's own text."""

    def __init__(self, sql: str, server_message: str) -> None:
        self.sql = sql
        self.server_message = server_message
        super().__init__(f"query failed: {server_message}")


class DownloadError(SinkError):
    """A download request that breaks a rule: ``parameter`` is the one at fault, ``rule`` what it must be."""

    def __init__(self, parameter: str, rule: str) -> None:
        self.parameter = parameter
        self.rule = rule
        super().__init__(f"{parameter}: {rule}")


class PublishError(SinkError):
    """Receipts or evidence entries could not be sent now; the submission check sends them again from the store."""


class UnstorableMessage(SinkError):
    """A message that cannot become a row of its table; the sink stores it as a dead letter."""
