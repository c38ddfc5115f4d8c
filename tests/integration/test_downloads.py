"""Bulk downloads against a real chDB store holding three provinces' registers.

The store is filled the way the sink fills it (synthetic provincial events, ``change_log_row``,
personal numbers masked); each download is read back (csv with ``csv``, parquet with pyarrow,
xlsx with openpyxl) and compared with a plain SELECT of the register's ``current_*`` view.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from deploy.broker import free_port
from producers.synthetic.generator import SyntheticProvinces
from schemas.pii import PiiMasker
from schemas.settings import Settings
from sinks import downloads
from sinks.downloads import Download, parse_download_request, register_counts, stream_download
from sinks.errors import DownloadError, QueryError, StoreError
from sinks.http_server import StoreServer
from sinks.rows import CHANGE_LOG_COLUMNS, change_log_row
from sinks.store import ensure_schema, open_store
from sinks.store_client import store_client

pytestmark = pytest.mark.integration

PROVINCES = ("44", "12", "11")
DB = "roadx"
VIEWS = {"operator": "current_operators", "vehicle": "current_vehicles", "practitioner": "current_practitioners",
         "licence": "current_licences", "case": "current_cases"}
WATER_VIEWS = {"ship": "current_ships", "shipping_enterprise": "current_shipping_enterprises",
               "port_enterprise": "current_port_enterprises", "waterway_project": "current_waterway_projects"}
FORMATS = ("csv", "parquet", "xlsx")
TODAY = dt.date(2026, 11, 29)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class National:
    settings: Settings
    events: list[dict]


def fill(data_dir: Path, events: list[dict]) -> Settings:
    """Settings of a store under ``data_dir`` holding ``events``, written as the sink writes them."""
    settings = Settings(data_dir=data_dir)
    pii = PiiMasker(settings.pii_key())
    rows = [change_log_row(event, 1, "national.changes", 0, offset, pii) for offset, event in enumerate(events)]
    client = open_store(settings)
    try:
        ensure_schema(client, DB)
        client.insert("change_log", rows, column_names=CHANGE_LOG_COLUMNS, database=DB)
    finally:
        client.close()
    return settings


@pytest.fixture(scope="module")
def national(tmp_path_factory) -> National:
    """Three provinces' registers: creates, updates and deletes of all five entity types."""
    events = [g.event for g in SyntheticProvinces(PROVINCES, seed=11, duplicate_rate=0, invalid_rate=0).events(900)]
    return National(fill(tmp_path_factory.mktemp("downloads"), events), events)


@pytest.fixture
def client(national):
    store = open_store(national.settings, DB)
    yield store
    store.close()


# -- what the store says, and what a download says ---------------------------------------


def served_columns(client, register) -> list[str]:
    described = client.query(f"DESCRIBE TABLE {DB}.{VIEWS[register]}").result_rows
    return [row[0] for row in described if row[0] not in ("last_op", "seq")]


def view_rows(client, register, where="", parameters=None, limit="") -> list[tuple]:
    """The plain SELECT a download must match."""
    columns = ", ".join(served_columns(client, register))
    sql = f"SELECT {columns} FROM {DB}.{VIEWS[register]} {where} ORDER BY entity_key {limit}"
    return [tuple(row) for row in client.query(sql, parameters=parameters).result_rows]


def download(client, **params) -> Download:
    return stream_download(client, DB, parse_download_request(params, PROVINCES), today=TODAY)


def csv_text(value) -> str:
    """A store value as ClickHouse's CSV writes it (NULL ``\\N``, times UTC to the millisecond)."""
    if value is None:
        return "\\N"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, list):
        return "[" + ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in value) + "]"
    return str(value)


def xlsx_value(value):
    """A store value as openpyxl reads it back from the workbook."""
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    return value


def naive_utc(value):
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, dt.datetime) and value.tzinfo else value


def read(fmt, data: bytes) -> tuple[list[str], list[tuple]]:
    """(header, rows) of a downloaded file, values as its reader gives them."""
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        return lines[0], [tuple(line) for line in lines[1:]]
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
        return table.column_names, [tuple(naive_utc(v) for v in row.values()) for row in table.to_pylist()]
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    sheets = [[tuple(cell.value for cell in row) for row in sheet.iter_rows()] for sheet in book.worksheets]
    assert all(sheet[0] == sheets[0][0] for sheet in sheets), "every sheet starts with the header"
    return list(sheets[0][0]), [row for sheet in sheets for row in sheet[1:]]


def expected(fmt, rows: list[tuple]) -> list[tuple]:
    convert = {"csv": csv_text, "parquet": lambda v: v, "xlsx": xlsx_value}[fmt]
    return [tuple(convert(v) for v in row) for row in rows]


def fetched(client, fmt, **params) -> tuple[list[str], list[tuple]]:
    return read(fmt, b"".join(download(client, format=fmt, **params).chunks))


# -- the records -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("register", VIEWS)
def test_a_download_is_the_view_row_for_row(client, register, fmt):
    rows = view_rows(client, register)
    assert len(rows) > 20
    header, got = fetched(client, fmt, register=register)
    assert header == served_columns(client, register)
    assert got == expected(fmt, rows)


def personal_numbers(events) -> set[str]:
    """Every ID and mobile number the provinces sent in clear."""
    return {value for event in events for record in (event["before"], event["after"]) if record
            for name, value in record.items() if isinstance(value, str) and value
            and (name.endswith("id_number") or name.endswith("phone"))}


@pytest.mark.parametrize("register", VIEWS)
def test_the_columns_are_the_record_its_key_party_and_change_time_with_personal_numbers_masked(
        national, client, register):
    data = b"".join(download(client, register=register).chunks).decode("utf-8")
    header = data.splitlines()[0].replace('"', "").split(",")
    assert header[0] == "entity_key" and header[-2:] == ["province", "ts"]
    assert "last_op" not in header and "seq" not in header
    clear = personal_numbers(national.events)
    assert len(clear) > 50
    assert not [number for number in clear if number in data]


def test_masked_id_numbers_are_served_as_the_view_has_them(client):
    data = b"".join(download(client, register="practitioner").chunks).decode("utf-8")
    assert re.search(r'"[1-9][0-9]{5}\*{8}[0-9]{3}[0-9Xx]"', data)


def test_a_null_is_ch_csv_null_and_an_empty_file_is_its_header(client):
    header, rows = fetched(client, "csv", register="vehicle")
    assert any("\\N" in row for row in rows), "optional fields (vin, seats, tonnage) left empty somewhere"
    data = b"".join(download(client, register="vehicle", changed_since="2030-01-01").chunks)
    assert data.decode("utf-8").splitlines() == [",".join(f'"{name}"' for name in header)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_nothing_changed_since_gives_an_empty_file_with_the_columns(client, fmt):
    header, rows = fetched(client, fmt, register="case", changed_since="2030-01-01")
    assert (header, rows) == (served_columns(client, "case"), [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_party_filter_narrows_to_that_party(client, fmt):
    every = view_rows(client, "licence")
    seen = []
    for party in PROVINCES:
        rows = view_rows(client, "licence", "WHERE province = {p:String}", {"p": party})
        assert 0 < len(rows) < len(every)
        assert fetched(client, fmt, register="licence", party=party)[1] == expected(fmt, rows)
        seen += rows
    assert sorted(seen) == sorted(every)


@pytest.mark.parametrize("fmt", FORMATS)
def test_changed_since_keeps_the_records_changed_at_or_after_it(client, fmt):
    rows = view_rows(client, "vehicle")
    ts = served_columns(client, "vehicle").index("ts")
    boundary = sorted(row[ts] for row in rows)[len(rows) // 2]
    later = [row for row in rows if row[ts] >= boundary]
    assert 0 < len(later) < len(rows) and any(row[ts] == boundary for row in later)
    as_utc = boundary.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    as_beijing = (boundary + dt.timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+08:00"
    for since in (as_utc, as_beijing):
        assert fetched(client, fmt, register="vehicle", changed_since=since)[1] == expected(fmt, later)
    day = boundary.date().isoformat()  # midnight UTC of that day: everything of that day
    assert fetched(client, fmt, register="vehicle", changed_since=day)[1] == expected(fmt, rows)


def test_party_changed_since_and_limit_together(client):
    rows = view_rows(client, "practitioner", "WHERE province = {p:String} AND ts >= {s:DateTime64(3, 'UTC')}",
                     {"p": "44", "s": "2024-06-01 00:00:03"}, limit="LIMIT 7")
    assert len(rows) == 7
    got = fetched(client, "parquet", register="practitioner", party="44", changed_since="2024-06-01T00:00:03",
                  limit="7")[1]
    assert got == rows


@pytest.mark.parametrize("fmt, content_type", [
    ("csv", "text/csv; charset=utf-8"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("parquet", "application/vnd.apache.parquet"),
])
def test_file_name_and_content_type(client, fmt, content_type):
    answer = download(client, register="vehicle", party="44", format=fmt)
    assert (answer.filename, answer.content_type) == (f"roadx-vehicle-44-20261129.{fmt}", content_type)
    answer.chunks.close()
    assert download(client, register="case", format=fmt).filename == f"roadx-case-20261129.{fmt}"


# -- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_file_comes_in_chunks_and_a_stopped_download_frees_the_store(client, fmt, monkeypatch):
    monkeypatch.setattr(downloads, "CHUNK_BYTES", 512)
    chunks = list(download(client, register="licence", format=fmt).chunks)
    assert len(chunks) > 3 and all(0 < len(c) <= 512 for c in chunks)
    assert read(fmt, b"".join(chunks))[1] == expected(fmt, view_rows(client, "licence"))

    stopped = download(client, register="licence", format=fmt).chunks
    assert next(stopped)
    stopped.close()
    assert client.command(f"SELECT count() FROM {DB}.current_licences") == len(view_rows(client, "licence"))


def test_nothing_is_read_before_the_chunks_are_asked_for(client):
    answer = download(client, register="operator")
    assert client.command("SELECT 1") == 1  # no query holds the embedded store's client
    assert b"".join(answer.chunks).startswith(b'"entity_key"')


def test_xlsx_starts_a_new_sheet_when_one_is_full(client, monkeypatch):
    monkeypatch.setattr(downloads, "SHEET_ROWS", 11)
    rows = view_rows(client, "operator")
    data = b"".join(download(client, register="operator", format="xlsx").chunks)
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames[:2] == ["operator", "operator (2)"] and len(book.sheetnames) == -(-len(rows) // 10)
    assert read("xlsx", data)[1] == expected("xlsx", rows)


def test_xlsx_keeps_formula_looking_text_as_text_and_replaces_what_excel_cannot_hold(tmp_path):
    events = [g.event for g in SyntheticProvinces(["44"], seed=3, duplicate_rate=0, invalid_rate=0).events(40)]
    operators = [e for e in events if e["entity_type"] == "operator" and e["op"] == "c"][:2]
    formula, control = (copy.deepcopy(e) for e in operators)
    formula["after"]["name"] = '=HYPERLINK("http://example.invalid","x")'
    control["after"]["name"] = "运输\x01公司\x1f"
    settings = fill(tmp_path, [formula, control])
    client = open_store(settings, DB)
    try:
        data = b"".join(stream_download(client, DB, parse_download_request(
            {"register": "operator", "format": "xlsx"}, ["44"])).chunks)
    finally:
        client.close()
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    name = [cell.value for cell in sheet[1]].index("name") + 1
    cells = {sheet.cell(row, name).value: sheet.cell(row, name).data_type for row in (2, 3)}
    assert cells == {'=HYPERLINK("http://example.invalid","x")': "s", "运输\ufffd公司\ufffd": "s"}


def test_the_served_store_gives_the_same_files(national, client):
    server = StoreServer.start(national.settings.store_path, free_port())
    try:
        served = store_client(national.settings, served=f"127.0.0.1:{server.port}")
        try:
            for fmt in FORMATS:
                rows = view_rows(client, "case", "WHERE province = {p:String}", {"p": "12"})
                assert fetched(served, fmt, register="case", party="12")[1] == expected(fmt, rows)
            assert register_counts(served, DB) == register_counts(client, DB)
        finally:
            served.close()
    finally:
        server.close()


# -- the catalogue -----------------------------------------------------------------------


def test_register_counts_are_the_views_counts_and_the_last_change_per_party(national, client):
    counts = register_counts(client, DB)
    assert list(counts) == [*VIEWS, *WATER_VIEWS]
    assert all(counts[register] == {} for register in WATER_VIEWS), "no water records were stored"
    latest: dict[str, dict] = {}
    last_change: dict[tuple[str, str], dt.datetime] = {}
    for event in national.events:  # events of one entity all come from its own province, in order
        latest[event["entity_key"]] = event
        key = (event["entity_type"], event["source"]["province"])
        when = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=event["ts_ms"])
        last_change[key] = max(last_change.get(key, when), when)
    deleted = {e["entity_type"] for e in latest.values() if e["op"] == "d"}
    assert deleted, "the registers include deletions"
    for register, view in VIEWS.items():
        in_view = dict(client.query(f"SELECT province, count() FROM {DB}.{view} GROUP BY province").result_rows)
        live = {p: sum(1 for e in latest.values() if e["entity_type"] == register and e["op"] != "d"
                       and e["source"]["province"] == p) for p in PROVINCES}
        assert {p: n for p, (n, _) in counts[register].items()} == {**{p: 0 for p in PROVINCES}, **in_view} == live
        assert {p: when for p, (_, when) in counts[register].items()} == {
            p: last_change[(register, p)] for p in PROVINCES}


def test_register_counts_of_an_empty_store_name_every_register(tmp_path):
    settings = fill(tmp_path, [])
    client = open_store(settings, DB)
    try:
        assert register_counts(client, DB) == {register: {} for register in [*VIEWS, *WATER_VIEWS]}
    finally:
        client.close()


# -- refusals ----------------------------------------------------------------------------


def test_a_store_without_the_database_or_a_malformed_name_fails_before_any_chunk(client):
    request = parse_download_request({"register": "vehicle"}, PROVINCES)
    with pytest.raises(QueryError, match="UNKNOWN_DATABASE|does not exist"):
        stream_download(client, "no_such_db", request)
    with pytest.raises(StoreError, match="not a plain identifier"):
        stream_download(client, "roadx; DROP DATABASE roadx", request)
    with pytest.raises(StoreError, match="not a plain identifier"):
        register_counts(client, "../roadx")


HOSTILE = ("x' OR '1'='1", "44'; DROP TABLE roadx.change_log; --", "../../etc/passwd", "{party:String}")
BAD = [
    ({"register": "ships"}, "register"),
    ({"register": "vehicle", "party": "99"}, "party"),
    ({"register": "vehicle", "changed_since": "2024-02-30"}, "changed_since"),
    ({"register": "vehicle", "format": "xls"}, "format"),
    ({"register": "vehicle", "limit": "0"}, "limit"),
    ({"register": "vehicle", "limit": "ten"}, "limit"),
    ({"register": "vehicle", "page": "2"}, "'page'"),
] + [({"register": "vehicle", name: value}, name)
     for name in ("register", "party", "changed_since", "format", "limit")
     for value in HOSTILE]


@pytest.mark.parametrize("params, parameter", BAD)
def test_bad_input_is_refused_naming_the_parameter_and_the_store_is_untouched(national, client, params, parameter):
    before = client.query(f"SHOW TABLES FROM {DB}").result_rows
    with pytest.raises(DownloadError) as caught:
        stream_download(client, DB, parse_download_request(params, (*PROVINCES, *HOSTILE)))  # odd codes listed too
    assert caught.value.parameter == parameter and str(caught.value).startswith(f"{parameter}: ")
    assert client.query(f"SHOW TABLES FROM {DB}").result_rows == before
    assert client.command(f"SELECT count() FROM {DB}.change_log") == len(national.events)
