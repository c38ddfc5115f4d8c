"""Formatting of query results for ``roadx query``."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.errors import QueryError
from sinks.query import display_width, format_result, run_query

COLUMNS = ["plate", "seats", "seen"]
ROWS = [("粤B12345", 5, dt.datetime(2024, 5, 1, 8, 30)), ("京A1", None, dt.datetime(2024, 5, 2))]


def test_pretty_aligns_columns_under_the_header():
    lines = format_result(COLUMNS, ROWS, "pretty").splitlines()
    assert lines[0].split(" │ ")[0].rstrip() == "plate"
    separators = {tuple(display_width(line[:i]) for i, ch in enumerate(line) if ch in "│┼") for line in lines[:-1]}
    assert len(separators) == 1  # column separators line up, CJK counted double width
    assert lines[2].startswith("粤B12345 │     5 │ 2024-05-01 08:30:00")
    assert "NULL" in lines[3]
    assert lines[-1] == "(2 rows)"


def test_pretty_of_an_empty_result_shows_the_header():
    out = format_result(["n"], [], "pretty")
    assert out.splitlines()[0] == "n" and out.endswith("(0 rows)")


def test_tsv_has_a_header_and_escapes_tabs_and_newlines():
    out = format_result(["a", "b"], [("x\ty", "line1\nline2"), (None, [1, 2])], "tsv")
    assert out.splitlines() == ["a\tb", "x\\ty\tline1\\nline2", "NULL\t[1,2]"]


def test_json_is_an_array_of_objects_with_text_kept():
    out = format_result(["u", "plate", "d"], [(uuid.UUID(int=1), "粤B12345", dt.date(2024, 1, 2))], "json")
    assert "粤B12345" in out
    assert json.loads(out) == [{"u": "00000000-0000-0000-0000-000000000001", "plate": "粤B12345", "d": "2024-01-02"}]


class FailingClient:
    def query(self, sql, settings=None):
        raise DatabaseError("HTTPDriver received ClickHouse error code 62\n Code: 62. DB::Exception: Syntax error")


def test_bad_sql_becomes_a_query_error_with_the_server_message():
    with pytest.raises(QueryError) as caught:
        run_query(FailingClient(), "selec 1", "pretty")
    assert caught.value.server_message == "Code: 62. DB::Exception: Syntax error"
    assert str(caught.value) == "query failed: Code: 62. DB::Exception: Syntax error"


@pytest.mark.parametrize("sql, fmt, word", [("select 1", "xml", "unknown format"), ("  ", "tsv", "empty query")])
def test_unknown_format_and_empty_query_are_refused(sql, fmt, word):
    with pytest.raises(QueryError, match=word):
        run_query(FailingClient(), sql, fmt)


def test_format_clause_is_refused_with_a_hint():
    with pytest.raises(QueryError, match="--format"):
        run_query(FailingClient(), "SELECT 1 FORMAT JSON;", "pretty")


class RecordingClient:
    def __init__(self):
        self.sql = None

    def query(self, sql, settings=None):
        self.sql = sql
        return type("Result", (), {"column_names": ("n",), "result_rows": [(1,)]})()


def test_trailing_semicolon_is_dropped_and_query_runs_read_only():
    client = RecordingClient()
    assert run_query(client, "SELECT 1 AS n;", "tsv") == "n\n1"
    assert client.sql == "SELECT 1 AS n"
