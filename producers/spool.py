"""The durable local spool (outbox): entries wait here until the broker acknowledged them.

One SQLite file per source. ``append`` writes a batch of (topic, key, value) entries and
the source's checkpoint in one transaction, so a restarted adapter resumes reading its
source exactly after what the spool holds. ``pending`` returns unacknowledged entries in
order; a crash between append and ack leaves them pending, and they are sent again.
``mark_acked`` deletes the acknowledged entries (one ranged statement per run of
consecutive ids); ``prune`` removes rows an older version marked acknowledged.

Journal: WAL with ``synchronous=FULL``. Commits happen once per batch (thousands of
entries), so the fsync per commit costs little, and a committed append (with its moved
checkpoint) survives a power loss, not only a process crash — the source may discard
what lies before its checkpoint.

An adapter may keep its own state in the same file (``add_tables``, ``select``, and
``statements`` written in the same transaction as an ``append``, or alone with ``write``),
so its state moves together with the events it produced.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import SpoolError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT    NOT NULL,
    key   BLOB,
    value BLOB    NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_pending ON entries (id) WHERE acked = 0;
CREATE TABLE IF NOT EXISTS checkpoint (
    only  INTEGER PRIMARY KEY CHECK (only = 1),
    value TEXT NOT NULL
);
"""


Statement = tuple[str, Sequence[Sequence[object]]]  # SQL and the parameter rows it runs with (executemany)


@dataclass(frozen=True)
class SpoolEntry:
    id: int
    topic: str
    key: bytes | None
    value: bytes


class Spool:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc

    def add_tables(self, ddl: str) -> None:
        """Create the owner's state tables in the spool file (``CREATE TABLE IF NOT EXISTS ...``)."""
        try:
            self._db.executescript(ddl)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot create state tables in spool {self.path}: {exc}") from exc

    def select(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Rows of a query on the spool file (the owner's state tables)."""
        return self._query(sql, tuple(params))

    def write(self, statements: Iterable[Statement]) -> None:
        """Run the owner's statements in one transaction: all or nothing."""
        self.append((), statements=statements)

    def append(self, entries: Iterable[tuple[str, bytes | None, bytes]], checkpoint: str | None = None,
               statements: Iterable[Statement] = ()) -> int:
        """Store entries, the source checkpoint and the owner's ``statements`` in one transaction;
        returns how many entries."""
        rows = list(entries)
        self._insert(rows, checkpoint, statements)
        return len(rows)

    def append_entries(self, entries: Iterable[tuple[str, bytes | None, bytes]], checkpoint: str | None = None,
                       statements: Iterable[Statement] = ()) -> list[SpoolEntry]:
        """``append``, returning the stored entries with their ids (to send without reading them back)."""
        rows = list(entries)
        first = self._insert(rows, checkpoint, statements)
        return [SpoolEntry(first + i, topic, key, value) for i, (topic, key, value) in enumerate(rows)]

    def _insert(self, rows: list[tuple[str, bytes | None, bytes]], checkpoint: str | None,
                statements: Iterable[Statement]) -> int:
        """Write one transaction; returns the id of the first row (ids of one insert are consecutive:
        AUTOINCREMENT takes the next id for each row, and the transaction holds the write lock)."""
        for index, row in enumerate(rows):
            if len(row) != 3 or not isinstance(row[0], str) or not isinstance(row[2], (bytes, bytearray)):
                raise SpoolError(f"spool {self.path}: entry {index} is not (topic: str, key: bytes, value: bytes)")
        first = 0
        try:
            with self._transaction():
                if rows:
                    self._db.executemany("INSERT INTO entries (topic, key, value) VALUES (?, ?, ?)", rows)
                    first = self._db.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
                if checkpoint is not None:
                    self._db.execute(
                        "INSERT INTO checkpoint (only, value) VALUES (1, ?) "
                        "ON CONFLICT (only) DO UPDATE SET value = excluded.value", (checkpoint,))
                for sql, params in statements:
                    self._db.executemany(sql, params)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write to spool {self.path}: {exc}") from exc
        return first

    def pending(self, limit: int, after_id: int = 0) -> list[SpoolEntry]:
        """Up to ``limit`` unacknowledged entries with id > ``after_id``, oldest first."""
        rows = self._query(
            "SELECT id, topic, key, value FROM entries WHERE acked = 0 AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit))
        return [SpoolEntry(*row) for row in rows]

    def mark_acked(self, ids: Iterable[int]) -> int:
        """Record the broker's acknowledgement of these entries by deleting them; returns how many
        were still pending."""
        runs = id_runs(ids)
        if not runs:
            return 0
        try:
            with self._transaction():
                before = self._db.total_changes
                self._db.executemany("DELETE FROM entries WHERE id BETWEEN ? AND ? AND acked = 0", runs)
                return self._db.total_changes - before
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot mark entries acknowledged in spool {self.path}: {exc}") from exc

    def first_pending(self, after_id: int = 0) -> int | None:
        """The id of the oldest unacknowledged entry after ``after_id``, or None."""
        return self._query("SELECT min(id) FROM entries WHERE acked = 0 AND id > ?", (after_id,))[0][0]

    def prune(self) -> int:
        """Delete entries marked acknowledged by an older spool version; returns how many were removed."""
        try:
            with self._transaction():
                return self._db.execute("DELETE FROM entries WHERE acked = 1").rowcount
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot prune spool {self.path}: {exc}") from exc

    def depth(self) -> int:
        """How many entries are not acknowledged yet."""
        return self._query("SELECT count(*) FROM entries WHERE acked = 0", ())[0][0]

    def checkpoint(self) -> str | None:
        rows = self._query("SELECT value FROM checkpoint WHERE only = 1", ())
        return rows[0][0] if rows else None

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot close spool {self.path}: {exc}") from exc

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


def id_runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Distinct ids as sorted runs of consecutive ids: ``[5, 1, 2, 3, 5, 9]`` → ``[(1, 3), (5, 5), (9, 9)]``."""
    runs: list[tuple[int, int]] = []
    first = last = None
    for i in sorted(set(ids)):
        if last is not None and i == last + 1:
            last = i
            continue
        if first is not None:
            runs.append((first, last))
        first = last = i
    if first is not None:
        runs.append((first, last))
    return runs


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, _exc, _tb) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
