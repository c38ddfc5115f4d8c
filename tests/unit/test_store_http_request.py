"""The served store's request parsing and read-only statement check (no engine)."""

from __future__ import annotations

import pytest

from sinks.errors import QueryError
from sinks.http_server import check_read_only, error_code, native_header, parse_request


def test_query_parameter_and_body_are_joined():
    request = parse_request("query=SELECT+*+FROM&database=roadx", b"dlq")
    assert request.sql == "SELECT * FROM\ndlq"
    assert request.database == "roadx" and request.fmt == "TabSeparated"


def test_format_clause_wins_over_default_format():
    assert parse_request("default_format=JSON", b"SELECT 1 FORMAT Native").fmt == "Native"
    assert parse_request("default_format=JSONEachRow&query=SELECT+1", b"").fmt == "JSONEachRow"


def test_bound_parameters_settings_and_transport_parameters_are_told_apart():
    request = parse_request(
        "query=SELECT+{n:UInt8}&param_n=4&max_threads=1&session_id=s1&query_id=q7&client_protocol_version=54405",
        b"")
    assert request.params == {"n": "4"}
    assert request.settings == {"max_threads": "1"}
    assert request.query_id == "q7"


def test_empty_query_is_a_syntax_error():
    with pytest.raises(QueryError, match="Code: 62"):
        parse_request("", b"  ;  ")


def test_setting_name_that_is_not_an_identifier_is_refused():
    with pytest.raises(QueryError, match="UNKNOWN_SETTING"):
        parse_request("query=SELECT+1&max%20threads=1", b"")


@pytest.mark.parametrize("sql", [
    "SELECT 1", "select 1", "  (SELECT 1)", "WITH x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES",
    "DESCRIBE TABLE roadx.dlq", "DESC roadx.dlq", "EXISTS TABLE roadx.dlq", "EXPLAIN SELECT 1",
    "-- note\nSELECT 1", "/* c */ SELECT ';DROP TABLE x'", "SELECT 'a;b', `c;d` FROM t",
])
def test_read_statements_pass(sql):
    check_read_only(sql)


@pytest.mark.parametrize("sql, code", [
    ("DROP TABLE roadx.dlq", 164), ("INSERT INTO roadx.dlq VALUES (1)", 164), ("SET readonly = 0", 164),
    ("ALTER TABLE roadx.dlq DELETE WHERE 1", 164), ("TRUNCATE roadx.dlq", 164), ("/* SELECT */ DROP TABLE t", 164),
    ("SELECT 1; DROP TABLE roadx.dlq", 62), ("SELECT 1; SELECT 2", 62), ("1", 62), ("SELEC 1", 62),
])
def test_anything_but_one_read_statement_is_refused_with_a_clickhouse_code(sql, code):
    with pytest.raises(QueryError) as caught:
        check_read_only(sql)
    assert error_code(caught.value.server_message) == code


def test_empty_native_block_names_its_columns():
    assert native_header([("a", "UInt8")]) == b"\x01\x00\x01a\x05UInt8"
