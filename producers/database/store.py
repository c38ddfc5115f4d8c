"""The database adapter's state, kept in its spool file so that it moves with the events it produced.

Beside the spool's entries and read position (its checkpoint): the last record sent per
source key (``db_known``), the next ``source.seq`` and the position the broker has
acknowledged everything before (``db_meta``). ``Plan`` is what one batch of rows becomes;
``AdapterStore.commit_plan`` spools it in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProducerError, RowRejected
from ..spool import Spool
from .source import Position


@dataclass(frozen=True)
class Known:
    entity_key: str
    record: dict[str, Any]


@dataclass
class Plan:
    """What one batch of rows becomes: spool entries, state updates, rejected rows, notes."""

    entries: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    known: dict[str, Known | None] = field(default_factory=dict)
    rejected: list[tuple[RowRejected, dict[str, Any]]] = field(default_factory=list)
    normalised: list[tuple[str, str, str, str]] = field(default_factory=list)  # (key, field, given, stored)
    ignored: int = 0
    next_seq: int = 1
    position: Position | None = None
    submission: str | None = None  # the submission the entries are sent in
    digests: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, digest) of each entry



class AdapterStore(Spool):
    """The adapter's spool plus its state: last record per key, next seq, acknowledged position."""

    _STATE = """
    CREATE TABLE IF NOT EXISTS db_known (key TEXT PRIMARY KEY, entity_key TEXT NOT NULL, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS db_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """
    _SET_META = ("INSERT INTO db_meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                 "DO UPDATE SET value = excluded.value")
    _SET_KNOWN = ("INSERT INTO db_known (key, entity_key, record) VALUES (?, ?, ?) ON CONFLICT "
                  "(key) DO UPDATE SET entity_key = excluded.entity_key, record = excluded.record")

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        try:
            self.add_tables(self._STATE)
        except ProducerError:
            self.close()
            raise

    def known(self, key: str) -> Known | None:
        rows = self.select("SELECT entity_key, record FROM db_known WHERE key = ?", (key,))
        return Known(rows[0][0], json.loads(rows[0][1])) if rows else None

    def meta(self, name: str) -> str | None:
        rows = self.select("SELECT value FROM db_meta WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def commit_plan(self, plan: Plan, statements: list = ()) -> None:
        """Spool the plan's events with its read position, known records, next seq and ``statements``
        (its submission): all or nothing."""
        known_rows = [(k, v.entity_key, json.dumps(v.record, ensure_ascii=False)) for k, v in plan.known.items() if v]
        gone = [(k,) for k, v in plan.known.items() if v is None]
        self.append(plan.entries, checkpoint=plan.position.to_json() if plan.position is not None else None,
                    statements=[(self._SET_KNOWN, known_rows), ("DELETE FROM db_known WHERE key = ?", gone),
                                (self._SET_META, [("next_seq", str(plan.next_seq))]), *statements])

    def set_acked_position(self, position: str) -> None:
        self.write([(self._SET_META, [("acked_position", position)])])
