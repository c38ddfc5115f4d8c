"""A client for the store, wherever it is: the one way commands reach it.

The ClickHouse server when ``clickhouse_url`` is set; the running sink's read-only HTTP
endpoint (``sinks.http_server``) when the caller names it (``served``: the top floor finds
it in the running stack, ``deploy.stack.served_store``); otherwise the embedded store
directly (no sink holds it).
"""

from __future__ import annotations

from typing import Any

from schemas.settings import Settings

from .errors import StoreError
from .store import open_store


def store_client(settings: Settings, served: str = "") -> Any:
    """A clickhouse-connect client for the store; the caller closes it.

    The ClickHouse server when ``clickhouse_url`` is set; the sink's HTTP endpoint at
    ``served`` (``HOST:PORT``, answering already) when one is given; otherwise the embedded
    store itself. Whichever it is, its default database is ``settings.clickhouse_database``,
    where the sink writes.
    """
    database = settings.clickhouse_database
    if settings.clickhouse_url:
        return open_store(settings, database)
    if served:
        host, _, port = served.rpartition(":")
        return _http_client(host, int(port), database)
    if not settings.store_path.exists():
        raise StoreError(f"no store at {settings.store_path}: run `roadx demo` first (or start the stack: `roadx up`)")
    return open_store(settings, database)


def _http_client(host: str, port: int, database: str) -> Any:
    from clickhouse_connect.driver.exceptions import ClickHouseError
    from clickhouse_connect.driver.httpclient import HttpClient

    class ServedStoreClient(HttpClient):
        """An HTTP client of the served store, which is read-only already.

        Asking for ``readonly`` (as ``sinks.query`` does) is met by the endpoint itself,
        so that one setting is not sent; any other setting goes to the engine as usual.
        """

        def _validate_setting(self, key: str, value: Any, invalid_action: str) -> str | None:
            served = (getattr(self, "server_settings", None) or {}).get("readonly")
            if key == "readonly" and served is not None and served.value != "0" and str(value) != "0":
                return None
            return super()._validate_setting(key, value, invalid_action)

    try:
        return ServedStoreClient("http", host, port, "default", "", database, compress=False,
                                 autogenerate_session_id=False, show_clickhouse_errors="scrub")
    except (ClickHouseError, OSError) as exc:
        raise StoreError(f"cannot query the served store at {host}:{port}: {exc}") from exc
