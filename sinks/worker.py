"""``python -m sinks.worker``: run the sink with ``ROADX_*`` settings until SIGTERM/SIGINT.

With ``store_http_port`` > 0 and the embedded store, the worker also serves the store
read-only on that loopback port (``sinks.http_server``), so analysts can query while
data flows.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from prometheus_client import start_http_server

from deploy.errors import DeployError
from schemas.errors import SettingsError
from schemas.settings import Settings, resolve

from .errors import SinkError
from .http_server import StoreServer
from .sink import run_sink
from .store import ensure_schema, open_store

log = logging.getLogger("roadx.sinks")


def run_worker(settings: Settings) -> None:
    """Run the sink in the foreground until SIGTERM/SIGINT, then close it cleanly.

    Serves Prometheus metrics on ``metrics_host``:``metrics_port`` when the port is > 0, and the
    embedded store on 127.0.0.1:``store_http_port`` when that is > 0. Raises ``SinkError``
    (or ``DeployError`` for unusable settings) when the sink cannot go on.
    """
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if settings.metrics_port > 0:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
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
        run_sink(settings, stop)
    finally:
        if server is not None:
            server.close()
    log.info("sink stopped")


def _serve_store(settings: Settings) -> StoreServer:
    """Serve the store with the exchange's database as the default of requests that name none."""
    return StoreServer.start(settings.store_path, settings.store_http_port, database=settings.clickhouse_database)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sink %(levelname)s %(message)s")
    try:
        run_worker(resolve())
    except (SinkError, DeployError, SettingsError) as exc:
        print(f"roadx sink: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
