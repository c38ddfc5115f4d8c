"""Snapshot state of one (province, entity) and the pure diff that turns a file into changes.

``diff_snapshot`` compares the previous snapshot with today's full file: new keys are
creates, changed records updates, keys missing from the file deletes (except keys whose
row was present but bad: a bad row never deletes its record). ``diff_upserts`` treats
rows as upserts (``--incremental``). Both are pure and ordered: file order, then deletes
by key, so a resumed run rebuilds exactly the same list.

``SnapshotStore`` keeps, in one SQLite state file (``producers.state``), the last committed snapshot, the last
``seq`` and every file seen (by content fingerprint). A file's changes are applied and
the file marked done in one transaction, after the broker acknowledged its events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..state import StateFile

Record = dict[str, Any]


@dataclass(frozen=True)
class Change:
    op: str  # c | u | d
    key: str
    before: Record | None
    after: Record | None
    row: int | None = None


def diff_snapshot(previous: Mapping[str, Record], current: Mapping[str, tuple[int, Record]],
                  present_but_bad: Iterable[str] = ()) -> list[Change]:
    """Creates and updates in file order, then deletes of keys no longer in the file."""
    changes = _upserts(previous, current)
    keep = set(current) | set(present_but_bad)
    changes += [Change("d", key, previous[key], None) for key in sorted(previous) if key not in keep]
    return changes


def diff_upserts(previous: Mapping[str, Record], current: Mapping[str, tuple[int, Record]]) -> list[Change]:
    """Rows as upserts: create when new, update when different, nothing when unchanged."""
    return _upserts(previous, current)


def _upserts(previous: Mapping[str, Record], current: Mapping[str, tuple[int, Record]]) -> list[Change]:
    changes = []
    for key, (row, record) in current.items():
        before = previous.get(key)
        if before is None:
            changes.append(Change("c", key, None, record, row))
        elif before != record:
            changes.append(Change("u", key, before, record, row))
    return changes


@dataclass(frozen=True)
class FileState:
    fingerprint: str
    name: str
    status: str  # started | done
    base_seq: int
    ts_ms: int
    copy: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (only INTEGER PRIMARY KEY CHECK (only = 1), seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, base_seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL, copy TEXT NOT NULL, changes INTEGER, done_ms INTEGER
);
"""


class SnapshotStore:
    """The file adapter's state for one (province, entity), in a ``StateFile``."""

    def __init__(self, path: Path) -> None:
        self._file = StateFile(path, _SCHEMA, "snapshot state")
        self.path = self._file.path

    def records(self) -> dict[str, Record]:
        return {key: json.loads(text) for key, text in self._file.query("SELECT key, record FROM records")}

    def seq(self) -> int:
        rows = self._file.query("SELECT seq FROM state WHERE only = 1")
        return rows[0][0] if rows else 0

    def file(self, fingerprint: str) -> FileState | None:
        rows = self._file.query("SELECT fingerprint, name, status, base_seq, ts_ms, copy FROM files "
                                "WHERE fingerprint = ?", (fingerprint,))
        return FileState(*rows[0]) if rows else None

    def unfinished(self) -> list[FileState]:
        rows = self._file.query("SELECT fingerprint, name, status, base_seq, ts_ms, copy FROM files "
                                "WHERE status = 'started' ORDER BY rowid")
        return [FileState(*row) for row in rows]

    def begin(self, fingerprint: str, name: str, ts_ms: int, copy: Path) -> FileState:
        """Record a file as started; its events take seq numbers after the current one."""
        state = FileState(fingerprint, name, "started", self.seq(), ts_ms, str(copy))
        self._file.write([("INSERT INTO files (fingerprint, name, status, base_seq, ts_ms, copy) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           [(state.fingerprint, name, "started", state.base_seq, ts_ms, str(copy))])])
        return state

    def commit(self, state: FileState, changes: list[Change], done_ms: int) -> None:
        """Apply a file's changes, move ``seq`` past them and mark the file done, atomically."""
        upserts = [(c.key, json.dumps(c.after, ensure_ascii=False, sort_keys=True)) for c in changes if c.op != "d"]
        deletes = [(c.key,) for c in changes if c.op == "d"]
        seq = state.base_seq + len(changes)
        self._file.write([
            ("INSERT INTO records (key, record) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET record = excluded.record",
             upserts),
            ("DELETE FROM records WHERE key = ?", deletes),
            ("INSERT INTO state (only, seq) VALUES (1, ?) ON CONFLICT (only) DO UPDATE SET seq = excluded.seq",
             [(seq,)]),
            ("UPDATE files SET status = 'done', changes = ?, done_ms = ? WHERE fingerprint = ?",
             [(len(changes), done_ms, state.fingerprint)]),
        ])

    def close(self) -> None:
        self._file.close()
