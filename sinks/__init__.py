"""The ClickHouse sink of the exchange: the national topics into the analytical store,
exactly once, and the store's read side.

- ``run`` (``sinks.worker``) / ``run_sink`` (``sinks.sink``): poll a batch, turn each message
  into a row of its table (``sinks.rows``, personal numbers masked by ``schemas.pii``), decide what the store already holds (``sinks.decision``) and insert
  (``sinks.writer``, ``sinks.inserts``), and only then commit the offsets;
- the store: ``open_store`` and ``ensure_schema`` (``sinks.store``, ``sinks.ddl``,
  ``sinks.migrations``), ``sinks.store_client`` for a running stack's store, ``StoreServer``
  (its read-only HTTP endpoint), ``run_query`` for analysts;
- reports: ``load_report`` and ``render_html`` (the monthly quality report), ``verify_licence``;
- downloads: ``parse_download_request``, ``stream_download`` and ``register_counts``
  (``sinks.downloads``: a register's current records as csv, xlsx or parquet);
- errors: ``SinkError`` and its tree (``sinks.errors``).

Names are imported from their modules when first asked for, so importing ``sinks`` (or
``sinks.errors``) does not load the store's libraries. A name that is also a module's
(``store_client``) is not exported: the module would shadow it once imported.
"""

from __future__ import annotations

from schemas.exports import lazy_names


_WHERE = {
    "run": "worker", "run_sink": "sink", "TopicRoles": "sink", "plan_batch": "sink", "write_then_commit": "sink",
    "open_store": "store", "ensure_schema": "store",
    "StoreServer": "http_server", "run_query": "query",
    "load_report": "report", "render_html": "report_html", "verify_licence": "verify",
    "parse_download_request": "downloads", "stream_download": "downloads", "register_counts": "downloads",
    "SinkError": "errors", "StoreError": "errors", "QueryError": "errors", "DownloadError": "errors",
    "UnstorableMessage": "errors",
}

__all__ = sorted(_WHERE)
__getattr__ = lazy_names(__name__, _WHERE)
