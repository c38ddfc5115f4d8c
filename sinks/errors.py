"""Errors of the sinks package.

    SinkError
    ├── StoreError           the ClickHouse store cannot be opened, or a write/DDL failed
    │                        (after the sink's retries)
    ├── QueryError           an analyst's SQL was rejected; carries the server message
    └── RowError             an event cannot be turned into a store row (names the record)
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


class RowError(SinkError):
    pass
