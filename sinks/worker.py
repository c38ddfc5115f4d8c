"""The sink's run: the national topics into the store until ``stop``.

With ``store_http_port`` > 0 and the embedded store, it also serves the store read-only
on that loopback port (``sinks.http_server``), so analysts can query while data flows.
Started through the worker shell (``roadx worker sink``, ``deploy.worker``), which sets
up logging, metrics, signals, the lag recorder and the exit status.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from schemas.settings import Settings

from .http_server import StoreServer
from .sink import run_sink
from .store import ensure_schema, open_store

log = logging.getLogger("roadx.sinks")


def run(settings: Settings, stop: threading.Event, lag: Callable[[Any, str], Any] | None = None) -> None:
    """Run the sink until ``stop`` is set, then close it cleanly after the batch in hand.

    Serves the embedded store on 127.0.0.1:``store_http_port`` when that is > 0.
    ``lag(consumer, group)`` makes the recorder of the consumer's lag. Raises ``SinkError``
    when the sink cannot go on.
    """
    log.info("sink starting: store %s, database %s",
             "server" if settings.clickhouse_url else settings.store_path, settings.clickhouse_database)
    server = None
    if settings.store_http_port > 0:
        if settings.clickhouse_url:
            log.info("store_http_port ignored: the store is a ClickHouse server, query it directly")
        else:
            settings.store_path.mkdir(parents=True, exist_ok=True)
            prepare = open_store(settings)  # tables first, so the first analyst query finds them
            try:
                ensure_schema(prepare, settings.clickhouse_database)
            finally:
                prepare.close()
            server = _serve_store(settings)
    try:
        run_sink(settings, stop, lag=lag)
    finally:
        if server is not None:
            server.close()
    log.info("sink stopped")


def _serve_store(settings: Settings) -> StoreServer:
    """Serve the store with the exchange's database as the default of requests that name none."""
    return StoreServer.start(settings.store_path, settings.store_http_port, database=settings.clickhouse_database)
