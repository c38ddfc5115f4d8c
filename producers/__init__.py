"""Provincial adapters: what turns a province's register changes into signed change events
on ``prov.<P>.changes``.

Three adapters, one sub-package each:

- ``producers.files`` — daily file drops (CSV/XLSX): parse, check, diff against the last
  snapshot, publish; a watched drop folder.
- ``producers.database`` — database change capture: poll a table (or its outbox) by cursor.
- ``producers.synthetic`` — synthetic provinces for the demo, tests, chaos and bench.

What all three share lives here: the durable spool every event is written to before it is
sent (``spool``), the state file helper it and the snapshot store open their SQLite files
with (``state``), the publisher that drains a spool to Kafka (``publisher``), the
submissions every batch is sent as and their signed manifests (``submissions``), the hub's
receipts as an adapter verifies and keeps them (``receipts``), the adapter metrics
(``metrics``) and the error tree (``errors``).
"""

from __future__ import annotations

from schemas.exports import lazy_modules


__all__ = ["database", "errors", "files", "metrics", "publisher", "receipts", "spool", "state", "submissions",
           "synthetic"]
__getattr__ = lazy_modules(__name__, __all__)
