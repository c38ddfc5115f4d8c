"""Reading a provincial database table by a monotonic cursor: connections, queries, positions.

A source is named by URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``
or ``postgresql://user:password@host:port/dbname`` (also ``postgres://``). SQLite files are
opened read-only. Both sit behind ``SourceConnection``: ``probe`` (the columns of a query
that returns no row) and ``fetch`` (columns and rows).

Rows are read in ``(cursor, key)`` order after the last position, so rows that share a
cursor value across a batch boundary are neither skipped nor read twice. A position is
stored as tagged JSON so it is passed back to the database with its original type.
Rows whose cursor or key is NULL can never be ordered: they are counted and reported.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import DbSourceError, SourceQueryError, SourceSchemaError, SourceUrlError

_IDENTIFIER = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")


def quote_identifier(name: str) -> str:
    """``"schema"."table"`` for ``schema.table``; rejects anything that is not a plain name."""
    parts = name.split(".")
    if not name or len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise SourceSchemaError(f"{name!r} is not a plain table or column name (letters, digits, _; optional schema.)")
    return ".".join(f'"{p}"' for p in parts)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class SourceConnection(Protocol):
    paramstyle: str  # "?" (sqlite3) or "%s" (psycopg)

    def probe(self, sql: str) -> list[str]: ...

    def fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]: ...

    def close(self) -> None: ...


class SqliteConnection:
    paramstyle = "?"

    def __init__(self, path: str) -> None:
        try:
            self._db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None)
            self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise SourceUrlError(f"cannot open SQLite database {path}: {exc}") from exc

    def probe(self, sql: str) -> list[str]:
        try:
            cursor = self._db.execute(sql)
            cursor.fetchall()
            return [d[0] for d in cursor.description]
        except sqlite3.Error as exc:
            raise SourceSchemaError(str(exc)) from exc

    def fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]:
        try:
            cursor = self._db.execute(sql, tuple(params))
            return [d[0] for d in cursor.description], cursor.fetchall()
        except sqlite3.Error as exc:
            raise SourceQueryError(f"query failed: {exc}") from exc

    def close(self) -> None:
        self._db.close()


class PostgresConnection:
    paramstyle = "%s"

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise SourceUrlError("PostgreSQL sources need the psycopg package (pip install 'psycopg[binary]')") from exc
        self._errors = psycopg.Error
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise SourceUrlError(f"cannot connect to {redact_url(url)}: {_first_line(exc)}") from exc

    def probe(self, sql: str) -> list[str]:
        try:
            with self._db.cursor() as cursor:
                cursor.execute(sql)
                return [d.name for d in cursor.description]
        except self._errors as exc:
            raise SourceSchemaError(_first_line(exc)) from exc

    def fetch(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]:
        try:
            with self._db.cursor() as cursor:
                cursor.execute(sql, tuple(params))
                return [d.name for d in cursor.description], cursor.fetchall()
        except self._errors as exc:
            raise SourceQueryError(f"query failed: {_first_line(exc)}") from exc

    def close(self) -> None:
        self._db.close()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def connect(url: str) -> SourceConnection:
    """Open the source named by ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise SourceUrlError(f"{url!r}: a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
        return SqliteConnection(url[len("sqlite:///"):])
    if scheme in ("postgresql", "postgres"):
        return PostgresConnection(url)
    raise SourceUrlError(f"{redact_url(url)!r}: unsupported database URL; use sqlite:///path or postgresql://host/db")


# -- positions -------------------------------------------------------------------------

def encode_value(value: Any) -> Any:
    """A cursor or key value as JSON that ``decode_value`` turns back into the same type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise DbSourceError(f"cursor/key values of type {type(value).__name__} are not supported")


def decode_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    (tag, text), = value.items()
    if tag == "datetime":
        return dt.datetime.fromisoformat(text)
    if tag == "date":
        return dt.date.fromisoformat(text)
    if tag == "decimal":
        return decimal.Decimal(text)
    if tag == "bytes":
        return base64.b64decode(text)
    raise DbSourceError(f"unknown position value tag {tag!r}")


def value_text(value: Any) -> str:
    """A stable text form of a cursor or key value (used in event ids and reports)."""
    encoded = encode_value(value)
    return json.dumps(encoded, sort_keys=True, ensure_ascii=False) if isinstance(encoded, dict) else str(encoded)


@dataclass(frozen=True)
class Position:
    """The last row read: its cursor value and key value."""

    cursor: Any
    key: Any

    def to_json(self) -> str:
        return json.dumps({"cursor": encode_value(self.cursor), "key": encode_value(self.key)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> "Position | None":
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(decode_value(data["cursor"]), decode_value(data["key"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DbSourceError(f"stored position {text!r} is not readable: {exc}") from exc


# -- queries ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TableQuery:
    """Query builder for one table read in (cursor, key) order."""

    table: str
    cursor: str
    key: str
    paramstyle: str = "?"

    def probe_sql(self) -> str:
        return f"SELECT * FROM {quote_identifier(self.table)} WHERE 1 = 0"

    def poll(self, after: Position | None, limit: int) -> tuple[str, list[Any]]:
        """Rows after ``after`` in (cursor, key) order, at most ``limit``."""
        if limit < 1:
            raise DbSourceError(f"batch size must be at least 1, got {limit}")
        t, c, k, p = quote_identifier(self.table), quote_identifier(self.cursor), quote_identifier(self.key), self.paramstyle
        where = f"{c} IS NOT NULL AND {k} IS NOT NULL"
        params: list[Any] = []
        if after is not None:
            where += f" AND ({c} > {p} OR ({c} = {p} AND {k} > {p}))"
            params = [after.cursor, after.cursor, after.key]
        return f"SELECT * FROM {t} WHERE {where} ORDER BY {c}, {k} LIMIT {p}", params + [limit]

    def unorderable(self, sample: int) -> tuple[str, list[Any]]:
        """Rows that polling can never reach: NULL cursor or NULL key (a sample of their keys)."""
        t, c, k, p = quote_identifier(self.table), quote_identifier(self.cursor), quote_identifier(self.key), self.paramstyle
        return f"SELECT {k}, {c} FROM {t} WHERE {c} IS NULL OR {k} IS NULL LIMIT {p}", [sample]

    def count_unorderable(self) -> tuple[str, list[Any]]:
        t, c, k = quote_identifier(self.table), quote_identifier(self.cursor), quote_identifier(self.key)
        return f"SELECT count(*) FROM {t} WHERE {c} IS NULL OR {k} IS NULL", []


@dataclass(frozen=True)
class Unorderable:
    count: int
    sample_keys: list[str]


class TableReader:
    """Polls one table of an open source connection."""

    def __init__(self, connection: SourceConnection, table: str, cursor: str, key: str,
                 required_columns: Sequence[str] = ()) -> None:
        self.connection = connection
        self.query = TableQuery(table, cursor, key, connection.paramstyle)
        try:
            self.columns = connection.probe(self.query.probe_sql())
        except SourceSchemaError as exc:
            raise SourceSchemaError(f"table {table!r} cannot be read: {exc}") from exc
        missing = [c for c in dict.fromkeys([cursor, key, *required_columns]) if c not in self.columns]
        if missing:
            raise SourceSchemaError(f"table {table!r} has no column {', '.join(map(repr, missing))} "
                                    f"(columns: {', '.join(self.columns)})")

    def poll(self, after: Position | None, limit: int) -> list[dict[str, Any]]:
        sql, params = self.query.poll(after, limit)
        columns, rows = self.connection.fetch(sql, params)
        return [dict(zip(columns, row)) for row in rows]

    def unorderable(self, sample: int = 10) -> Unorderable:
        sql, params = self.query.count_unorderable()
        (count,), = self.connection.fetch(sql, params)[1]
        if not count:
            return Unorderable(0, [])
        sql, params = self.query.unorderable(sample)
        rows = self.connection.fetch(sql, params)[1]
        return Unorderable(int(count), [value_text(k) for k, _c in rows])
