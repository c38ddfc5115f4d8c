"""Open the ClickHouse store and create its schema.

With no ``clickhouse_url`` the store is chDB, the ClickHouse engine in-process, at
``settings.store_path``. chDB's constraints (measured with chdb 3 / clickhouse-connect
1.12):

- one process holds one engine path at a time: opening a second, different path while
  any client of the first is open fails; once every client is closed another path opens;
- the same path may be opened by any number of clients in one process (threads too);
- a path open in one process cannot be opened by another process (exclusive lock).

So the sink process owns the embedded store while it runs; other readers open it
after the sink has stopped, or use a ClickHouse server. ``FreedMemoryRelease`` keeps that
process's memory to what the engine uses (see there).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.settings import Settings

from .errors import StoreError

log = logging.getLogger("roadx.sinks")

RELEASE_EVERY_SECONDS = 1.0


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


class FreedMemoryRelease:
    """Hands the pages the embedded engine has freed back to the system, at most every ``every`` seconds.

    chDB allocates with jemalloc built with ``dirty_decay_ms:5000`` and no background thread, so
    pages freed after an insert or a merge go back only when the engine allocates again at least
    5 s later; a sink's RSS then carries hundreds of MiB it no longer uses, and more as the
    store's merges grow. Measured with chdb 4.4: after a 1M-row insert the engine held 1,169 MiB
    resident with 50 MiB allocated; ``SYSTEM JEMALLOC PURGE`` took 60 ms and left the process at
    356 MiB; with nothing to hand back it takes 0.4 ms. A ClickHouse server returns freed pages
    itself, so with ``embedded`` false this does nothing; an engine that refuses the statement is
    logged once and not asked again.
    """

    def __init__(self, store: Any, embedded: bool, every: float = RELEASE_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._enabled, self._every, self._clock = store, embedded, every, clock
        self._next = clock() + every

    def tick(self) -> None:
        now = self._clock()
        if not self._enabled or now < self._next:
            return
        self._next = now + self._every
        try:
            self._store.command("SYSTEM JEMALLOC PURGE")
        except ClickHouseError as exc:
            self._enabled = False
            log.warning("the embedded store does not hand freed memory back (%s); the sink's RSS may grow "
                        "with the store's merges", exc)
