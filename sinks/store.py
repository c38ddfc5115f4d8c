"""Open the ClickHouse store and create its schema.

With no ``clickhouse_url`` the store is chDB, the ClickHouse engine in-process, at
``settings.store_path``. chDB's constraints (measured with chdb 3 / clickhouse-connect
1.12):

- one process holds one engine path at a time: opening a second, different path while
  any client of the first is open fails; once every client is closed another path opens;
- the same path may be opened by any number of clients in one process (threads too);
- a path open in one process cannot be opened by another process (exclusive lock).

So the sink process owns the embedded store while it runs; other readers open it
after the sink has stopped, or use a ClickHouse server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.settings import Settings

from .errors import StoreError


def open_store(settings: Settings, database: str | None = None) -> Any:
    """A clickhouse-connect client: chDB at ``settings.store_path``, or the server URL.

    With ``database`` the client's default database is that one (it must exist), whatever
    a server URL's path says; readers pass ``settings.clickhouse_database``. The sink opens
    without one, since it creates the database.
    """
    if settings.clickhouse_url:
        return _connect(settings.clickhouse_url, "the ClickHouse server", database)
    path = Path(settings.store_path).resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store directory {path}: {exc}") from exc
    return _connect(f"chdb://{path}", f"the embedded store at {path}", database)


def _connect(dsn: str, what: str, database: str | None) -> Any:
    try:
        return clickhouse_connect.get_client(dsn=dsn, database=database)
    except (ClickHouseError, OSError, RuntimeError) as exc:
        if database and "UNKNOWN_DATABASE" in str(exc):
            raise StoreError(f"{what} has no database {database!r} yet: the sink creates it when it starts") from exc
        raise StoreError(f"cannot open {what}: {exc}") from exc


def ensure_schema(client: Any, database: str) -> list[int]:
    """Apply every pending schema migration (safe to run every start); returns the versions applied."""
    from .migrations import apply_migrations

    return apply_migrations(client, database)
