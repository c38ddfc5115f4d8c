"""The durable local spool (outbox): entries wait here until the broker acknowledged them.

One SQLite file per source. ``append`` writes a batch of (topic, key, value) entries and
the source's checkpoint in one transaction, so a restarted adapter resumes reading its
source exactly after what the spool holds. ``pending`` returns unacknowledged entries in
order; a crash between append and ack leaves them pending, and they are sent again.
``mark_acked`` deletes the acknowledged entries (one ranged statement per run of
consecutive ids). A spool written by an older version has an ``acked`` column and may hold
entries it marked acknowledged instead of deleting them: they are deleted when it is opened.

The file is a ``producers.state.StateFile`` (WAL with ``synchronous=FULL``). Commits happen once per batch (thousands of
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
from .state import StateFile, Statement

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT    NOT NULL,
    key   BLOB,
    value BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (
    only  INTEGER PRIMARY KEY CHECK (only = 1),
    value TEXT NOT NULL
);
"""

__all__ = ["Spool", "SpoolEntry", "Statement", "id_runs"]


@dataclass(frozen=True)
class SpoolEntry:
    id: int
    topic: str
    key: bytes | None
    value: bytes


class Spool:
    def __init__(self, path: Path | str) -> None:
        self._file = StateFile(path, _SCHEMA, "spool")
        self.path = self._file.path
        if "acked" in self._file.columns("entries"):  # written by an older version
            with self._file.transaction("open") as db:
                db.execute("DELETE FROM entries WHERE acked = 1")

    def add_tables(self, ddl: str) -> None:
        """Create the owner's state tables in the spool file (``CREATE TABLE IF NOT EXISTS ...``)."""
        try:
            self._file.db.executescript(ddl)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot create state tables in spool {self.path}: {exc}") from exc

    def select(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Rows of a query on the spool file (the owner's state tables)."""
        return self._file.query(sql, params)

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
        with self._file.transaction("write to") as db:
            if rows:
                db.executemany("INSERT INTO entries (topic, key, value) VALUES (?, ?, ?)", rows)
                first = db.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
            if checkpoint is not None:
                db.execute(
                    "INSERT INTO checkpoint (only, value) VALUES (1, ?) "
                    "ON CONFLICT (only) DO UPDATE SET value = excluded.value", (checkpoint,))
            for sql, params in statements:
                db.executemany(sql, params)
        return first

    def pending(self, limit: int, after_id: int = 0, before_id: int = 1 << 62) -> list[SpoolEntry]:
        """Up to ``limit`` unacknowledged entries with ``after_id`` < id < ``before_id``, oldest first."""
        rows = self._file.query("SELECT id, topic, key, value FROM entries WHERE id > ? AND id < ? ORDER BY id "
                                "LIMIT ?", (after_id, before_id, limit))
        return [SpoolEntry(*row) for row in rows]

    def mark_acked(self, ids: Iterable[int], aside: Iterable[int] = (), statements: Iterable[Statement] = ()) -> int:
        """Record the broker's acknowledgement of these entries by deleting them, with the ``aside``
        entries (not counted) and the owner's ``statements`` run after, in one transaction; returns
        how many of ``ids`` were still pending."""
        runs, aside_runs, statements = id_runs(ids), id_runs(aside), list(statements)
        if not runs and not aside_runs:
            return 0
        with self._file.transaction("mark entries acknowledged in") as db:
            before = db.total_changes
            db.executemany("DELETE FROM entries WHERE id BETWEEN ? AND ?", runs)
            counted = db.total_changes - before
            db.executemany("DELETE FROM entries WHERE id BETWEEN ? AND ?", aside_runs)
            for sql, params in statements:
                db.executemany(sql, params)
            return counted

    def first_pending(self, after_id: int = 0) -> int | None:
        """The id of the oldest unacknowledged entry after ``after_id``, or None."""
        return self._file.query("SELECT min(id) FROM entries WHERE id > ?", (after_id,))[0][0]

    def depth(self) -> int:
        """How many entries are not acknowledged yet."""
        return self._file.query("SELECT count(*) FROM entries")[0][0]

    def checkpoint(self) -> str | None:
        rows = self._file.query("SELECT value FROM checkpoint WHERE only = 1")
        return rows[0][0] if rows else None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
