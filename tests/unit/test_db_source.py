"""Polling a table by (cursor, key): query building, positions, bad URLs and tables (SQLite files)."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3

import pytest

from producers.database.source import Position, TableQuery, TableReader, connect, quote_identifier, redact_url, value_text
from producers.errors import DbSourceError, SourceSchemaError, SourceUrlError


def make_db(path, rows, columns="id INTEGER, updated_at TEXT, name TEXT"):
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE reg ({columns})")
    marks = ", ".join("?" for _ in columns.split(","))
    db.executemany(f"INSERT INTO reg VALUES ({marks})", rows)
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def read_all(reader: TableReader, batch: int) -> list[tuple]:
    seen, position = [], None
    while rows := reader.poll(position, batch):
        seen += [(r["updated_at"], r["id"]) for r in rows]
        position = Position(rows[-1]["updated_at"], rows[-1]["id"])
    return seen


def test_rows_sharing_a_cursor_value_across_batch_boundaries_are_read_once(tmp_path):
    rows = [(i, "2024-01-01 10:00:00" if i < 7 else "2024-01-02 00:00:00", f"n{i}") for i in range(1, 10)]
    url = make_db(tmp_path / "src.db", rows)
    reader = TableReader(connect(url), "reg", "updated_at", "id")
    seen = read_all(reader, batch=2)
    assert [key for _c, key in seen] == list(range(1, 10))


def test_a_row_updated_after_being_read_is_read_again_at_its_new_cursor(tmp_path):
    path = tmp_path / "src.db"
    url = make_db(path, [(1, "2024-01-01", "a"), (2, "2024-01-02", "b")])
    reader = TableReader(connect(url), "reg", "updated_at", "id")
    first = reader.poll(None, 10)
    after = Position(first[-1]["updated_at"], first[-1]["id"])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE reg SET updated_at = '2024-01-03', name = 'a2' WHERE id = 1")
    again = reader.poll(after, 10)
    assert [(r["id"], r["name"]) for r in again] == [(1, "a2")]


def test_rows_with_null_cursor_or_key_are_counted_and_named(tmp_path):
    url = make_db(tmp_path / "src.db", [(1, None, "a"), (2, "2024-01-01", "b"), (None, "2024-01-01", "c")])
    reader = TableReader(connect(url), "reg", "updated_at", "id")
    assert [r["id"] for r in reader.poll(None, 10)] == [2]
    unorderable = reader.unorderable()
    assert unorderable.count == 2 and "1" in unorderable.sample_keys


def test_poll_query_orders_by_cursor_then_key_with_typed_parameters():
    sql, params = TableQuery("reg", "updated_at", "id", "%s").poll(Position(5, "k"), 100)
    assert 'ORDER BY "updated_at", "id" LIMIT %s' in sql
    assert '("updated_at" > %s OR ("updated_at" = %s AND "id" > %s))' in sql
    assert params == [5, 5, "k", 100]


@pytest.mark.parametrize("name", ["reg; DROP TABLE reg", 'a"b', "", "a.b.c", "1abc"])
def test_names_that_are_not_plain_identifiers_are_refused(name):
    with pytest.raises(SourceSchemaError, match="not a plain"):
        quote_identifier(name)


def test_schema_qualified_names_are_quoted_per_part():
    assert quote_identifier("prov.vehicles") == '"prov"."vehicles"'


@pytest.mark.parametrize("value", [
    dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.timezone.utc), dt.datetime(2024, 5, 1, 8, 30), dt.date(2024, 5, 1),
    decimal.Decimal("12.50"), 42, "粤B12345", b"\x00\x01", None,
])
def test_positions_round_trip_with_their_types(value):
    back = Position.from_json(Position(value, 7).to_json())
    assert back == Position(value, 7) and type(back.cursor) is type(value)


def test_an_unreadable_stored_position_is_a_clear_error():
    with pytest.raises(DbSourceError, match="not readable"):
        Position.from_json("{not json")


def test_value_text_is_stable_for_timestamps():
    stamp = dt.datetime(2024, 5, 1, 8, 30)
    assert value_text(stamp) == value_text(dt.datetime(2024, 5, 1, 8, 30)) != value_text(dt.datetime(2024, 5, 1, 8, 31))


@pytest.mark.parametrize("url, message", [
    ("mysql://host/db", "unsupported database URL"),
    ("just-a-path.db", "unsupported database URL"),
    ("sqlite://relative.db", "sqlite:///relative/path"),
    ("sqlite:////no/such/dir/x.db", "cannot open SQLite database"),
])
def test_bad_urls_are_refused_with_the_reason(url, message):
    with pytest.raises(SourceUrlError, match=message):
        connect(url)


def test_an_unreachable_postgres_url_names_the_server_without_the_password():
    with pytest.raises(SourceUrlError) as raised:
        connect("postgresql://roadx:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(raised.value) and "***" in str(raised.value)


def test_redact_url_hides_only_the_password():
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_missing_table_is_named(tmp_path):
    url = make_db(tmp_path / "src.db", [])
    with pytest.raises(SourceSchemaError, match="'vehicles'"):
        TableReader(connect(url), "vehicles", "updated_at", "id")


def test_a_missing_column_is_named_with_the_columns_there_are(tmp_path):
    url = make_db(tmp_path / "src.db", [])
    with pytest.raises(SourceSchemaError, match=r"no column 'version'.*columns: id, updated_at, name"):
        TableReader(connect(url), "reg", "version", "id")


def test_a_sqlite_source_is_opened_read_only(tmp_path):
    url = make_db(tmp_path / "src.db", [(1, "2024-01-01", "a")])
    connection = connect(url)
    with pytest.raises(DbSourceError, match="readonly"):
        connection.fetch("DELETE FROM reg", [])
