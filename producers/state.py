"""An adapter's state file: one SQLite file, opened one way by everything an adapter keeps.

The spool (``producers.spool``) and the file adapter's snapshot store
(``producers.files.snapshot``) both keep their state in a ``StateFile``: it creates the
folder, opens the file in WAL mode with ``synchronous=FULL`` (a committed transaction
survives a power loss, not only a process crash), creates the owner's tables if missing,
and runs the owner's statements in one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, rolled
back on any error. SQLite errors become ``SpoolError`` naming what failed and the file.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import SpoolError

__all__ = ["StateFile", "Statement"]

Statement = tuple[str, Sequence[Sequence[object]]]  # SQL and the parameter rows it runs with (executemany)


class StateFile:
    """One SQLite state file; ``kind`` names it in errors (``spool``, ``snapshot state``)."""

    def __init__(self, path: Path | str, schema: str, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(schema)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open {kind} {self.path}: {exc}") from exc

    def columns(self, table: str) -> list[str]:
        """The column names of one of the file's tables."""
        return [row[1] for row in self.query(f"PRAGMA table_info({table})")]

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read {self.kind} {self.path}: {exc}") from exc

    def write(self, statements: Iterable[Statement], doing: str = "write") -> None:
        """Run the statements (each with its parameter rows) in one transaction: all or nothing."""
        with self.transaction(doing):
            for sql, params in statements:
                self.db.executemany(sql, params)

    @contextmanager
    def transaction(self, doing: str = "write") -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` around the block (rolled back on any error); a SQLite error
        is ``SpoolError("cannot <doing> <kind> <path>: …")``."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot {doing} {self.kind} {self.path}: {exc}") from exc

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot close {self.kind} {self.path}: {exc}") from exc
