"""Fuzzing ``verify`` with SQL-looking licence numbers against a real chDB store.

Whatever the number, the answer is the stored licence's status when the number is one
(spaces around it aside), else ``unknown``; no SQL error, and the store is the same
afterwards. The number never becomes part of the SQL text, only a bound parameter.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.pii import PiiMasker
from sinks.store import open_store
from schemas.licences import format_verdict, well_formed
from sinks.verify import verify_licence

from test_verify import store_holding

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TODAY = dt.date(2025, 1, 15)
FAR = dt.date(2099, 12, 31)
LICENCES = {  # licence_no -> (type, status code, valid_until, expected answer)
    "津交运管许可德字120128300595号": ("operating_permit", "valid", FAR, "valid"),
    "120101000063": ("transport_cert", "suspended", FAR, "suspended"),
    "440300000001": ("transport_cert", "revoked", FAR, "revoked"),
    "440300000003": ("transport_cert", "valid", dt.date(2020, 1, 1), "expired"),
    "11010519491231002X": ("qualification", "valid", FAR, "valid"),
}
SQL_BITS = [
    "'", '"', "`", ";", "--", "/*", "*/", "#", "\\", "\\'", "%", "_", "*", "=", " OR ", " or 1=1", "' OR '1'='1",
    "'; DROP TABLE roadx.change_log; --", "1; TRUNCATE TABLE roadx.change_log", " UNION SELECT * FROM system.users",
    "SELECT", "DROP", "INSERT INTO roadx.change_log VALUES", "ALTER TABLE roadx.change_log DELETE WHERE 1",
    "{no:String}", "{keys:Array(String)}", "{", "}", "$$", "${x}", "sleep(3)", "currentUser()", "(", ")", "((",
    "))", "〔", "〕", "（", "）", "-", "\x00", "\n", "\r", "\t", " ", "\u3000", "\u202e", "\ufeff", "\\x27", "%27",
    "＇", "０", "ＤＲＯＰ", "NULL", "null", "\\N", "0x27", "char(39)", "IN", "LIKE", "ILIKE", "[", "]", "?", "@",
    "津", "交", "许可", "号", "*", "X", "x", "0", "9",
]
LICENCE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz津交运管许可德字号〔〕（）()-"


def numbers():
    """Text shaped like SQL, like a licence number, or a stored number with something around it."""
    sql_like = st.lists(st.sampled_from(SQL_BITS) | st.text(max_size=4), min_size=1, max_size=8).map("".join)
    shaped = st.text(st.sampled_from(LICENCE_ALPHABET), min_size=1, max_size=70)
    stored = st.tuples(st.sampled_from(["", " ", "\t", "\u3000", "'", "--", "(", "%"]),
                       st.sampled_from(sorted(LICENCES)),
                       st.sampled_from(["", " ", "\n", "' --", "')", "-", "%", "; DROP TABLE x"])).map("".join)
    # SQL words and brackets run together pass the licence-number shape and reach the store
    sql_words = st.lists(st.sampled_from(["SELECT", "DROP", "TABLE", "OR", "AND", "1", "0", "(", ")", "-", "--",
                                          "UNION", "roadx", "system", "users", "sleep", "3", "X", "津交", "〔", "〕"]),
                         min_size=2, max_size=10).map("".join)
    return st.one_of(sql_like, sql_words, sql_words, shaped, stored, st.text(max_size=80))


@pytest.fixture
def store(tmp_path):
    """A store holding a few licences, written as the sink writes them."""
    return store_holding(tmp_path, LICENCES)


def store_contents(client, database: str) -> dict[str, tuple[int, int]]:
    """(rows, content checksum) of every table of the store, and the set of databases and tables."""
    tables = [r[0] for r in client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT LIKE '%View' ORDER BY name",
        parameters={"db": database}).result_rows]
    contents: dict[str, tuple[int, int]] = {
        "databases": tuple(r[0] for r in client.query("SELECT name FROM system.databases ORDER BY name").result_rows),
        "tables": tuple(r[0] for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
            parameters={"db": database}).result_rows),
    }
    for table in tables:
        contents[table] = tuple(client.query(
            f"SELECT count(), groupBitXor(cityHash64(*)) FROM {database}.`{table}`").result_rows[0])
    return contents


def test_sql_looking_numbers_get_a_clear_answer_and_leave_the_store_unchanged(store):
    database = store.clickhouse_database
    pii = PiiMasker(store.pii_key())
    client = open_store(store)
    try:
        before = store_contents(client, database)
        assert before["change_log"][0] == len(LICENCES)

        @FUZZ
        @given(numbers())
        @example("x' OR '1'='1")
        @example("440300000001' --")
        @example("SELECT(1)--")
        @example("1--2")
        @example("((((((")
        @example(" 440300000001 ")
        @example("\u3000120101000063\n")
        def answer_is_clear(number):
            verdict = verify_licence(client, database, number, pii, today=TODAY)
            stored = LICENCES.get(number.strip())
            expected = stored[3] if stored is not None and well_formed(number.strip()) else "unknown"
            assert verdict.status == expected, (number, verdict)
            assert verdict.licence_no == (number.strip() if well_formed(number.strip()) else number)
            text = format_verdict(verdict)
            if not well_formed(number.strip()):
                assert verdict.register_status is None and "ill_formed_licence_no" in text and "not looked up" in text
            elif expected == "unknown":
                assert verdict.register_status is None and "no such licence" in text

        answer_is_clear()
        assert store_contents(client, database) == before
    finally:
        client.close()


class RecordingClient:
    """Records the SQL and parameters a lookup sends (the decision around it is pure)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def query(self, sql, parameters=None):
        self.calls.append((sql, parameters or {}))
        return type("Result", (), {"result_rows": []})()


def reference_sql() -> str:
    client = RecordingClient()
    verify_licence(client, "roadx", "120101000063", today=TODAY)
    return client.calls[0][0]


@settings(FUZZ, max_examples=500)
@given(numbers())
def test_a_number_reaches_the_store_only_as_a_bound_parameter(number):
    client = RecordingClient()
    verdict = verify_licence(client, "roadx", number, today=TODAY)
    assert verdict.status == "unknown"
    if not well_formed(number.strip()):
        assert client.calls == []
        return
    [(sql, parameters)] = client.calls
    assert sql == reference_sql()  # the same text whatever the number
    assert parameters["no"] == number.strip()
    assert all(key.endswith(number.strip()) for key in parameters["keys"])
