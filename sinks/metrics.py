"""Prometheus metrics of the sink.

Rows are counted when the store acknowledged their insert (rows the exactly-once decision
skipped as already stored are not counted again); ``source_to_store_seconds`` gets one
observation per stored ``change_log`` row: the insert's end minus the event's ``ts_ms``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Sequence

from prometheus_client import Counter, Histogram

BATCHES = Counter("roadx_sink_batches", "Batches written and committed")
ROWS = Counter("roadx_sink_rows", "Rows inserted into the store", ["table"])
REFUSED = Counter("roadx_sink_refused_rows", "Rows the store refused, stored as dead letters")
COMMIT_FAILURES = Counter("roadx_sink_commit_failures", "Offset commits that failed after a successful insert")
BATCH_SIZE = Histogram("roadx_sink_batch_size", "Rows per batch taken from the broker",
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000))
INSERT_SECONDS = Histogram("roadx_sink_insert_seconds", "Duration of one successful insert call",
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SOURCE_TO_STORE = Histogram("roadx_sink_source_to_store_seconds",
                            "Store time minus the event's source commit time (source ts_ms), per stored change",
                            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
                                     6 * 3600, 86_400, 7 * 86_400, 30 * 86_400))

# The column of each table that holds the source commit time of a change.
SOURCE_TIME_COLUMN = {"change_log": "ts"}


def source_to_store_seconds(rows: Sequence[tuple], columns: Sequence[str], table: str,
                            stored_at: float) -> list[float]:
    """Seconds from each row's source commit time to ``stored_at`` (epoch seconds), at least 0.

    Empty for tables without a source time; rows whose time is not a datetime are left out.
    """
    column = SOURCE_TIME_COLUMN.get(table)
    if column is None or column not in columns:
        return []
    where = list(columns).index(column)
    out = []
    for row in rows:
        value = row[where]
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            out.append(max(stored_at - value.timestamp(), 0.0))
    return out


def observe_insert(table: str, rows: Sequence[tuple], columns: Sequence[str], seconds: float,
                   stored_at: float | None = None) -> None:
    """Count one acknowledged insert of ``rows`` into ``table`` that took ``seconds``."""
    ROWS.labels(table=table).inc(len(rows))
    INSERT_SECONDS.observe(seconds)
    for lag in source_to_store_seconds(rows, columns, table, time.time() if stored_at is None else stored_at):
        SOURCE_TO_STORE.observe(lag)


def observe_batch(rows: int) -> None:
    """Count one batch written and committed, of ``rows`` rows."""
    BATCHES.inc()
    BATCH_SIZE.observe(rows)


# The submission check (``sinks.submission_check``).
RECEIPTS = Counter("roadx_sink_receipts", "Receipts the hub signed, by status", ["status"])
PROVENANCE_FINDINGS = Counter("roadx_sink_provenance_findings",
                              "Provenance findings of the submission check (refusals, mismatches, repeats), by rule",
                              ["rule"])
RECEIPTS_RESENT = Counter("roadx_sink_receipts_resent",
                          "Stored receipts sent again: a manifest repeated, or what a restart found unsent")
_RECEIPT_COUNTS: dict[str, int] = {}


def observe_receipt(status: str, rules: Sequence[str]) -> None:
    """Count one receipt signed with ``status`` and the rules of its findings."""
    RECEIPTS.labels(status=status).inc()
    _RECEIPT_COUNTS[status] = _RECEIPT_COUNTS.get(status, 0) + 1
    for rule in rules:
        PROVENANCE_FINDINGS.labels(rule=rule).inc()


def observe_repeat(rule: str) -> None:
    RECEIPTS_RESENT.inc()
    PROVENANCE_FINDINGS.labels(rule=rule).inc()


def receipts_status() -> str:
    """A status line: the receipts this process signed, by status."""
    counts = ", ".join(f"{status} {count}" for status, count in sorted(_RECEIPT_COUNTS.items()))
    return f"receipts signed: {counts or 'none'}"
