"""A client for the store, wherever it is: the one way commands reach it.

The ClickHouse server when ``clickhouse_url`` is set; the running sink's read-only HTTP
endpoint (``sinks.http_server``) while the embedded stack runs; otherwise the embedded
store directly (the stack is down, so no other process holds it).
"""

from __future__ import annotations

from typing import Any

from .errors import StoreError


def store_client(settings: Any, wait_seconds: float = 30) -> Any:
    """A clickhouse-connect client for the store; the caller closes it.

    The ClickHouse server when ``clickhouse_url`` is set; the sink's HTTP endpoint while
    the embedded stack runs; otherwise the embedded store itself. Whichever it is, its
    default database is ``settings.clickhouse_database``, where the sink writes.
    """
    from deploy.broker import wait_for_port
    from deploy.errors import StackError
    from deploy.stack import StackInfo

    from .store import open_store

    database = settings.clickhouse_database
    if settings.clickhouse_url:
        return open_store(settings, database)
    info = StackInfo.read(settings.stack_file)
    if info is not None:
        endpoint = getattr(info, "store_http", "")
        if not endpoint:
            raise StoreError(f"the store in {settings.data_dir} is held by the running sink and not served; "
                             f"stop the stack (roadx down) to query it")
        host, _, port = endpoint.rpartition(":")
        try:
            wait_for_port(int(port), wait_seconds)
        except StackError as exc:
            raise StoreError(f"the sink does not serve the store on {endpoint}: {exc}") from exc
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
