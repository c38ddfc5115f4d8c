"""The information service beside the analytical store: the same events on ``national.changes``
and in the store, and the service's catalog counts, downloads and verifications agree with
what the store says."""

from __future__ import annotations

import csv
import io
import os
import urllib.parse

import pyarrow.parquet as pq
import pytest

from deploy.broker import free_port
from deploy.stack import StackInfo
from deploy.topics import create_topics, exchange_topics
from producers.synthetic.generator import SyntheticProvinces
from schemas.credentials import Credentials, credentials_file
from schemas.pii import PiiMasker
from schemas.settings import Settings
from sinks.downloads import register_counts
from sinks.rows import CHANGE_LOG_COLUMNS, change_log_row
from sinks.http_server import StoreServer
from sinks.store import ensure_schema, open_store
from sinks.store_client import store_client
from sinks.verify import verify_licence
from test_service import NOW, Caller, publish, running_service, wait_until

pytestmark = pytest.mark.integration

ROAD, WATER = ("operator", "vehicle", "practitioner", "licence"), ("ship", "shipping_enterprise", "port_enterprise",
                                                                   "waterway_project")

PROVINCES = ("44", "11")
PARTIES = (*PROVINCES, "66", "CJ")  # taking part; the generator fills the provinces' registers


def fill_store(settings: Settings, events: list[dict]) -> None:
    """Write ``events`` into the store as the sink writes them."""
    pii = PiiMasker(settings.pii_key())
    rows = [change_log_row(event, 1, settings.topics.national_changes, 0, n, pii) for n, event in enumerate(events)]
    client = open_store(settings)
    try:
        ensure_schema(client, settings.clickhouse_database)
        client.insert("change_log", rows, column_names=CHANGE_LOG_COLUMNS, database=settings.clickhouse_database)
    finally:
        client.close()


@pytest.fixture(scope="module")
def national(broker, tmp_path_factory):
    """A store and a running service holding the same two provinces' registers; a token of 44."""
    bootstrap = broker.bootstrap_servers
    data_dir = tmp_path_factory.mktemp("service-store")
    settings = Settings(data_dir=data_dir, bootstrap_servers=bootstrap, topic_prefix=f"ts{free_port()}.",
                        provinces=PARTIES, service_port=free_port(), service_rate_per_second=1000)
    create_topics(bootstrap, exchange_topics(settings))
    events = [g.event for g in SyntheticProvinces(PROVINCES, seed=5, duplicate_rate=0, invalid_rate=0).events(600)]
    fill_store(settings, events)
    publish(settings, events)
    # served as the running stack serves it: the sink's read-only endpoint, named in stack.json
    server = StoreServer.start(settings.store_path, free_port())
    StackInfo(supervisor_pid=os.getpid(), bootstrap_servers=bootstrap, data_dir=str(data_dir),
              store_http=f"127.0.0.1:{server.port}").write(settings.stack_file)
    _credential, token = Credentials.load(credentials_file(data_dir)).issue("44", NOW, PARTIES)
    log_path = data_dir / "service.log"
    try:
        with running_service(settings, log_path) as proc:
            caller = Caller(settings, token)
            wait_until(lambda: caller.json("/v1/health")[0] == 200, proc, log_path, "the register to catch up")
            yield settings, caller, f"127.0.0.1:{server.port}"
    finally:
        server.close()


@pytest.fixture
def store(national):
    settings, _caller, served = national
    client = store_client(settings, served)
    yield client
    client.close()


def test_catalog_counts_match_the_store(national, store):
    settings, caller, _served = national
    status, catalog = caller.json("/v1/catalog")
    assert status == 200
    expected = register_counts(store, settings.clickhouse_database)
    assert [e["entity_type"] for e in catalog] == ["operator", "vehicle", "practitioner", "licence", "case", "ship",
                                                   "shipping_enterprise", "port_enterprise", "waterway_project"]
    assert [e["carried"] for e in catalog] == [True] * 9
    for entry in catalog:
        allowed = ["66"] if entry["entity_type"] in ROAD else ["CJ"] if entry["entity_type"] in WATER else ["66", "CJ"]
        assert entry["publishers"] == [*PROVINCES, *allowed]  # who may publish it, of those taking part
        assert entry["fields"] and all(f["label_zh"] for f in entry["fields"])
        counts = {party: (n, last) for party, (n, last) in expected.get(entry["entity_type"], {}).items()}
        assert {p: c["records"] for p, c in entry["parties"].items()} == {p: n for p, (n, _l) in counts.items()}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_downloads_match_the_store_row_for_row(national, store, fmt):
    settings, caller, _served = national
    status, ctype, body = caller.call(f"/v1/downloads?register=vehicle&party=44&format={fmt}")
    assert status == 200, body[:300]
    expected = store.query("SELECT entity_key, plate, plate_color FROM current_vehicles WHERE province = '44' "
                           "ORDER BY entity_key").result_rows
    assert expected
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
        got = [(r["entity_key"], r["plate"], int(r["plate_color"])) for r in rows]
    else:
        table = pq.read_table(io.BytesIO(body)).to_pylist()
        got = [(r["entity_key"], r["plate"], int(r["plate_color"])) for r in table]
    assert got == [tuple(r) for r in expected]


@pytest.mark.parametrize("query, rule", [
    ("register=ships", "invalid_register"),
    ("register=vehicle&party=99", "invalid_party"),
    ("register=vehicle&changed_since=yesterday", "invalid_changed_since"),
    ("register=vehicle&format=pdf", "invalid_format"),
    ("register=vehicle&limit=-1", "invalid_limit"),
    ("register=vehicle&evil=1", "unknown_parameter"),
    ("register=vehicle%27%3B%20DROP%20TABLE%20change_log%20--", "invalid_register"),
    ("register=vehicle&party=44&party=11", "repeated_parameter"),
])
def test_bad_download_requests_are_refused_naming_the_parameter(national, store, query, rule):
    _settings, caller, _served = national
    status, body = caller.json(f"/v1/downloads?{query}")
    assert (status, body["rule"]) == (400, rule), body
    assert store.command("SELECT count() FROM change_log") > 0


def test_every_verification_agrees_with_the_store(national, store):
    settings, caller, _served = national
    pii = PiiMasker(settings.pii_key())
    numbers = [r[0] for r in store.query("SELECT DISTINCT licence_no FROM current_licences "
                                         "WHERE licence_no NOT LIKE '%*%' LIMIT 60").result_rows]
    assert numbers
    for number in numbers:
        from_store = verify_licence(store, settings.clickhouse_database, number, pii)
        status, answer = caller.json(f"/v1/licences/{urllib.parse.quote(number, safe='')}/verification")
        assert status == 200
        assert (answer["status"], answer["valid_until"]) == (from_store.status, from_store.valid_until), number
