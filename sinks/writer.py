"""Write a planned batch to the store exactly once.

Per (table, topic, partition) group: ask the offset ledger what the store already holds,
``decide`` insert / skip / trim, insert with the group's deduplication token (retriable
errors retried with backoff), then remember the new highest offset. A row is only ever
skipped after the store confirmed it holds that row (same offset and identity: event id,
finding id, request id, reply id, alert id, dead letter bytes), so offsets that restarted from 0 (an in-memory broker
started afresh over a kept store) are inserted, not mistaken for stored ones. When the store
refuses rows of a group (a value that does not convert), the refused rows are found on a
``Null``-engine copy of the table (nothing is written while searching), turned into dead
letters and written to ``dlq`` *before* the rest of the group, so a crash at any point and
a replay of the batch finds the same rows refused and stores each row once.

The decided groups of one table are written in one insert (``CombinedInsert``: one part,
all or nothing, with a token naming every group's offset range), since each insert costs
the store far more than its rows do; only when the store refuses rows of it are that
table's groups written one by one as above.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
import weakref
from typing import Any, Callable, Mapping, Protocol, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError, DataError, OperationalError

from . import metrics
from .decision import Action, decide
from .errors import StoreError
from .inserts import CombinedInsert, TableInsert, keep_rows

log = logging.getLogger("roadx.sinks")

RULE_REFUSED = "sink_refused_row"

# ClickHouse error codes meaning "this value does not fit the column": the row is refused.
_REFUSAL_CODES = frozenset({6, 27, 38, 41, 53, 69, 70, 72, 117, 321, 349, 377})
# Codes worth retrying: overload, limits, timeouts, network, parts not merged yet.
_RETRIABLE_CODES = frozenset({3, 159, 202, 203, 209, 210, 241, 242, 252, 285, 319, 425, 999, 1000})
_CODE = re.compile(r"Code: (\d+)")
# The column telling two rows of one table apart, to confirm a row is really stored.
IDENTITY = {"change_log": "event_id", "routed_cases": "event_id", "quality_findings": "finding_id",
            "service_requests": "request_id", "case_replies": "reply_id", "case_alerts": "alert_id",
            "dlq": "raw_base64", "submission_manifests": "manifest_digest", "submission_tallies": "tally_id"}


def error_code(exc: BaseException) -> int | None:
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


def is_refusal(exc: BaseException) -> bool:
    """The store (or the client converting for it) refused a value of some row."""
    if isinstance(exc, (DataError, ValueError, TypeError, OverflowError)):
        return True
    return isinstance(exc, ClickHouseError) and error_code(exc) in _REFUSAL_CODES


def is_retriable(exc: BaseException) -> bool:
    """A failure that may pass on retry: connection trouble, overload, limits, timeouts."""
    if isinstance(exc, (OperationalError, OSError)):
        return True
    if isinstance(exc, ClickHouseError):
        code = error_code(exc)
        return code is None or code in _RETRIABLE_CODES
    return False


class RowsRefused(Exception):
    """Raised by ``insert_rows`` when the store refuses a value; nothing was written."""


class Ledger(Protocol):
    def stored_max(self, table: str, topic: str, partition: int) -> int | None: ...
    def stored_rows(self, table: str, topic: str, partition: int, first: int, last: int) -> set[tuple[int, str]]: ...
    def record(self, table: str, topic: str, partition: int, last_offset: int) -> None: ...
    def prefetch(self, table: str, partitions: Sequence[tuple[str, int]]) -> None: ...


class NoLedger:
    """Knows of nothing stored: every group is inserted (its token still deduplicates)."""

    def stored_max(self, table: str, topic: str, partition: int) -> int | None:
        return None

    def stored_rows(self, table: str, topic: str, partition: int, first: int, last: int) -> set[tuple[int, str]]:
        return set()

    def record(self, table: str, topic: str, partition: int, last_offset: int) -> None:
        return None

    def prefetch(self, table: str, partitions: Sequence[tuple[str, int]]) -> None:
        return None


class StoreLedger:
    """Highest stored offset per (table, topic, partition), read from the table once, then kept.

    Call ``forget`` on every rebalance (another sink may have written the partition since).
    """

    def __init__(self, store: Any, database: str) -> None:
        self._store, self._database = store, database
        self._known: dict[tuple[str, str, int], int | None] = {}

    def stored_max(self, table: str, topic: str, partition: int) -> int | None:
        key = (table, topic, partition)
        if key not in self._known:
            self._known[key] = self._load(table, topic, partition)
        return self._known[key]

    def record(self, table: str, topic: str, partition: int, last_offset: int) -> None:
        key = (table, topic, partition)
        current = self._known.get(key)
        self._known[key] = last_offset if current is None else max(current, last_offset)

    def forget(self) -> None:
        self._known.clear()

    def prefetch(self, table: str, partitions: Sequence[tuple[str, int]]) -> None:
        """Read the highest stored offset of every not yet known (topic, partition) of ``table`` in one query."""
        wanted = {(topic, partition) for topic, partition in partitions if (table, topic, partition) not in self._known}
        if len(wanted) < 2:
            return
        topics = sorted({topic for topic, _ in wanted})
        sql = (f"SELECT topic, partition, max(offset) FROM {self._database}.{table} "
               "WHERE topic IN %(topics)s GROUP BY topic, partition")
        rows = self._query(sql, {"topics": topics}, table, ", ".join(topics))
        found = {(str(t), int(p)): int(o) for t, p, o in rows}
        for topic, partition in wanted:
            self._known[(table, topic, partition)] = found.get((topic, partition))

    def stored_rows(self, table: str, topic: str, partition: int, first: int, last: int) -> set[tuple[int, str]]:
        """(offset, identity) of the rows stored from ``topic[partition]`` at offsets ``first..last``."""
        sql = (f"SELECT offset, toString({IDENTITY[table]}) FROM {self._database}.{table} "
               "WHERE topic = %(topic)s AND partition = %(partition)s AND offset BETWEEN %(first)s AND %(last)s")
        params = {"topic": topic, "partition": partition, "first": first, "last": last}
        return {(int(o), str(i)) for o, i in self._query(sql, params, table, f"{topic}[{partition}]")}

    def _load(self, table: str, topic: str, partition: int) -> int | None:
        sql = (f"SELECT maxOrNull(offset) FROM {self._database}.{table} "
               "WHERE topic = %(topic)s AND partition = %(partition)s")
        rows = self._query(sql, {"topic": topic, "partition": partition}, table, f"{topic}[{partition}]")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def _query(self, sql: str, params: dict[str, Any], table: str, where: str) -> list:
        try:
            return self._store.query(sql, parameters=params).result_rows
        except ClickHouseError as exc:
            raise StoreError(f"cannot read the stored offsets of {table} for {where}: {exc}") from exc


_COLUMN_TYPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> (db, table, columns) -> types


def column_types(store: Any, database: str, table: str, columns: Sequence[str]) -> Sequence[Any]:
    """The store's types of ``columns`` of ``table``, asked once per client and kept.

    An insert given no types first asks the store for them (a ``DESCRIBE``: on the embedded
    store about as costly as a tenth of a small insert), so the sink asks once per table.
    """
    known = _COLUMN_TYPES.setdefault(store, {})
    key = (database, table, tuple(columns))
    if key not in known:
        known[key] = store.create_insert_context(table, list(columns), database=database).column_types
    return known[key]


def insert_rows(store: Any, database: str, insert: TableInsert | CombinedInsert, columns: Sequence[str],
                attempts: int = 4, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
    """Insert one group with its dedup token, retrying retriable errors with backoff.

    An acknowledged insert is counted in the sink's metrics (rows, insert seconds,
    source-to-store seconds). Raises ``RowsRefused`` when a value does not convert, ``StoreError`` otherwise.
    """
    token = insert.token
    for attempt in range(1, attempts + 1):
        try:
            started = time.perf_counter()
            store.insert(insert.table, insert.rows, column_names=list(columns), database=database,
                         column_types=column_types(store, database, insert.table, columns),
                         settings={"insert_deduplication_token": token})
            metrics.observe_insert(insert.table, insert.rows, columns, time.perf_counter() - started)
            return
        except (ClickHouseError, OSError, ValueError, TypeError, OverflowError) as exc:
            where = f"insert into {database}.{insert.table} of {insert.where}"
            if is_refusal(exc):
                raise RowsRefused(f"{where}: {exc}") from exc
            if not is_retriable(exc):
                raise StoreError(f"{where} failed: {exc}") from exc
            if attempt == attempts:
                raise StoreError(f"{where} failed {attempts} times: {exc}") from exc
            log.warning("insert into %s failed (attempt %d/%d), retrying: %s", insert.table, attempt, attempts, exc)
            sleep(backoff * 2 ** (attempt - 1))


def find_refused(store: Any, database: str, table: str, rows: Sequence[tuple],
                 columns: Sequence[str]) -> dict[int, str]:
    """Index -> reason of each row the store refuses, found on a ``Null``-engine copy of ``table``."""
    probe = f"sink_probe_{table}_{uuid.uuid4().hex[:8]}"
    try:
        store.command(f"CREATE TABLE {database}.{probe} AS {database}.{table} ENGINE = Null")
    except ClickHouseError as exc:
        raise StoreError(f"cannot create the refusal probe for {table}: {exc}") from exc
    try:
        types = column_types(store, database, table, columns)  # the probe's are the table's
        return _bisect(store, database, probe, list(rows), 0, list(columns), types)
    finally:
        try:
            store.command(f"DROP TABLE IF EXISTS {database}.{probe}")
        except ClickHouseError as exc:
            log.warning("cannot drop the refusal probe %s: %s", probe, exc)


def _bisect(store: Any, database: str, probe: str, rows: list[tuple], start: int,
            columns: list[str], types: Sequence[Any]) -> dict[int, str]:
    try:
        store.insert(probe, rows, column_names=columns, column_types=types, database=database)
        return {}
    except (ClickHouseError, ValueError, TypeError, OverflowError) as exc:
        if not is_refusal(exc):
            raise StoreError(f"probing rows of {probe} failed: {exc}") from exc
        if len(rows) == 1:
            return {start: _reason(exc)}
    middle = len(rows) // 2
    found = _bisect(store, database, probe, rows[:middle], start, columns, types)
    found.update(_bisect(store, database, probe, rows[middle:], start + middle, columns, types))
    return found


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return text[:500]


DeadLetter = Callable[[Any, str], tuple]  # (message, reason) -> a dlq row


def write_plan(store: Any, database: str, inserts: Sequence[TableInsert], columns: Mapping[str, Sequence[str]],
               ledger: Ledger, dead_letter: DeadLetter | None = None, **retry: Any) -> list[str]:
    """Write every group exactly once; returns the reasons of rows the store refused.

    Data tables go first, ``dlq`` after them, each table's decided groups in one insert.
    When the store refuses rows of a table, its groups are written one by one: a group
    with refused rows has its topic-partition's ``dlq`` group, with those rows merged in,
    written before the accepted rest.
    """
    dlq_groups = {(i.topic, i.partition): i for i in inserts if i.table == "dlq"}
    dlq_written: set[tuple[str, int]] = set()
    refused_reasons: list[str] = []
    per_table: dict[str, list[TableInsert]] = {}
    for table in {insert.table for insert in inserts}:
        ledger.prefetch(table, [(i.topic, i.partition) for i in inserts if i.table == table])
    for insert in inserts:
        if insert.table == "dlq":
            continue
        group = decided(insert, ledger, columns[insert.table])
        if group is not None:
            per_table.setdefault(group.table, []).append(group)
    for table, groups in per_table.items():
        try:
            _insert_together(store, database, groups, columns[table], ledger, **retry)
            continue
        except RowsRefused:
            log.info("%s: the store refuses rows of %s, writing its groups one by one", table,
                     ", ".join(group.where for group in groups))
        for group in groups:
            try:
                _insert_together(store, database, [group], columns[table], ledger, **retry)
            except RowsRefused as exc:
                refused_reasons += _write_refused(store, database, group, columns, ledger, dead_letter,
                                                  dlq_groups, exc, **retry)
                dlq_written.add((group.topic, group.partition))
    pending = [decided(dlq, ledger, columns["dlq"]) for tp, dlq in dlq_groups.items() if tp not in dlq_written]
    pending_groups = [group for group in pending if group is not None]
    if pending_groups:
        try:
            _insert_together(store, database, pending_groups, columns["dlq"], ledger, **retry)
        except RowsRefused as exc:
            raise StoreError(f"the store refuses a dead letter: {exc}") from exc
    return refused_reasons


def _insert_together(store: Any, database: str, groups: list[TableInsert], columns: Sequence[str], ledger: Ledger,
                     **retry: Any) -> None:
    """Insert decided groups of one table as one insert, then record each group's highest offset."""
    insert_rows(store, database, CombinedInsert(groups[0].table, groups), columns, **retry)
    for group in groups:
        ledger.record(group.table, group.topic, group.partition, group.last_offset)


def _write_refused(store: Any, database: str, group: TableInsert, columns: Mapping[str, Sequence[str]],
                   ledger: Ledger, dead_letter: DeadLetter | None, dlq_groups: Mapping[tuple[str, int], TableInsert],
                   exc: RowsRefused, **retry: Any) -> list[str]:
    """Store a group's refused rows as dead letters (with its ``dlq`` group), then the accepted rest."""
    refused = find_refused(store, database, group.table, group.rows, columns[group.table])
    if not refused or dead_letter is None or not group.messages:
        raise StoreError(f"{exc}; no single row of it is refused on its own") from exc
    dead = [(group.messages[i], reason) for i, reason in sorted(refused.items())]
    reasons = [f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {reason}" for msg, reason in dead]
    merged = merge_dead_letters(dlq_groups.get((group.topic, group.partition)), group.topic, group.partition,
                                [dead_letter(msg, reason) for msg, reason in dead],
                                [msg for msg, _ in dead], columns["dlq"])
    _write_decided(store, database, merged, columns["dlq"], ledger, **retry)
    offsets = _offsets(group, columns[group.table])
    accepted = keep_rows(group, offsets, lambda i, _offset: i not in refused)
    if accepted is not None:
        try:
            insert_rows(store, database, accepted, columns[group.table], **retry)
        except RowsRefused as again:
            raise StoreError(f"rows accepted one by one are refused together: {again}") from again
    ledger.record(group.table, group.topic, group.partition, group.last_offset)
    return reasons


def decided(insert: TableInsert, ledger: Ledger, columns: Sequence[str]) -> TableInsert | None:
    """The group as the exactly-once decision leaves it: whole, trimmed, or ``None`` (skip).

    Rows the decision would drop are dropped only when the store confirms it holds them.
    """
    decision = decide(insert.first_offset, insert.last_offset,
                      ledger.stored_max(insert.table, insert.topic, insert.partition))
    if decision.action is Action.INSERT:
        return insert
    offsets = _offsets(insert, columns)
    upto = insert.last_offset if decision.keep_from is None else decision.keep_from - 1
    stored = ledger.stored_rows(insert.table, insert.topic, insert.partition, insert.first_offset, upto)
    where = list(columns).index(IDENTITY[insert.table])
    identities = [str(row[where]) for row in insert.rows]
    unconfirmed = [o for o, i in zip(offsets, identities) if not decision.keeps(o) and (o, i) not in stored]
    if unconfirmed:
        log.warning("%s holds other rows at offsets %s..%s of %s[%d] (offsets restarted?): inserting them",
                    insert.table, unconfirmed[0], unconfirmed[-1], insert.topic, insert.partition)
    kept = keep_rows(insert, offsets, lambda i, offset: decision.keeps(offset) or (offset, identities[i]) not in stored)
    if kept is None:
        log.info("%s of %s[%d]@%d-%d already stored: skipped", insert.table, insert.topic, insert.partition,
                 insert.first_offset, insert.last_offset)
    return kept


def merge_dead_letters(planned: TableInsert | None, topic: str, partition: int, rows: list[tuple],
                       messages: list[Any], columns: Sequence[str]) -> TableInsert:
    """The ``dlq`` group of a topic-partition with more dead letters merged in, in offset order."""
    pairs = list(zip(planned.rows, planned.messages or [None] * len(planned.rows))) if planned else []
    pairs += list(zip(rows, messages))
    where = list(columns).index("offset")
    pairs.sort(key=lambda pair: pair[0][where])
    offsets = [row[where] for row, _ in pairs]
    return TableInsert("dlq", topic, partition, min(offsets), max(offsets),
                       [row for row, _ in pairs], [msg for _, msg in pairs])


def _write_decided(store: Any, database: str, insert: TableInsert, columns: Sequence[str], ledger: Ledger,
                   **retry: Any) -> None:
    group = decided(insert, ledger, columns)
    if group is None:
        return
    try:
        insert_rows(store, database, group, columns, **retry)
    except RowsRefused as exc:
        raise StoreError(f"the store refuses a dead letter: {exc}") from exc
    ledger.record(group.table, group.topic, group.partition, group.last_offset)


def _offsets(insert: TableInsert, columns: Sequence[str]) -> list[int]:
    where = list(columns).index("offset")
    return [int(row[where]) for row in insert.rows]
