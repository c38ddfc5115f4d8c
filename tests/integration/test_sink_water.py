"""The water registers through the real sink: ship, enterprise and project changes from the
Changjiang navigation administration (CJ) on national.changes land in the store's water views,
the downloads and the register counts serve them, and the monthly report counts them by party."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest
from confluent_kafka import Producer
from stdnum.cn import uscc

from deploy.topics import create_topics, exchange_topics
from schemas import contract
from schemas.settings import Settings
from sinks.downloads import DownloadRequest, register_counts, stream_download
from sinks.report import load_report
from sinks.report_html import render_html

from test_sink import CODEC, OPERATOR, sink_until_drained, store_of  # noqa: F401

pytestmark = pytest.mark.integration

TS = dt.datetime(2024, 6, 3, 8, 0, tzinfo=dt.timezone.utc)
USCC = "91420100MA4K00001" + uscc.calc_check_digit("91420100MA4K00001")
SHIP = {"ship_id": "CN20190001234", "name": "长江之星", "imo": "9074729", "mmsi": "413123456",
        "port_of_registry": "武汉", "gross_tonnage": 2999, "ship_type": "bulk_carrier", "operator_uscc": USCC,
        "status": "active"}
INLAND = {**SHIP, "ship_id": "CN20190005678", "name": "汉江货1号", "imo": None, "mmsi": "413000001",
          "gross_tonnage": None}
SCRAPPED = {**SHIP, "ship_id": "CN20100000009", "name": "旧船", "imo": None, "mmsi": None}
ENTERPRISE = {"uscc": USCC, "name": "长航货运有限公司", "permit_no": "交XS2017001",
              "business_scope": ["inland", "inter_provincial"], "region_code": "420100", "status": "active"}
PORT = {"uscc": USCC, "name": "武汉港务集团", "permit_no": "(鄂汉)港经证(0012)号", "port": "武汉港",
        "region_code": "420100", "status": "active"}
PROJECT = {"project_code": "2019-420100-55-01-012345", "name": "长江中游航道整治工程", "owner_uscc": USCC,
           "region_code": "420100", "total_investment_yuan": 1_250_000_000, "start_date": dt.date(2019, 3, 1),
           "end_date": None, "status": "under_construction"}


def change(entity_type, op, record, seq, party="CJ"):
    return {"event_id": str(uuid.uuid4()), "op": op, "entity_type": entity_type,
            "entity_key": contract.entity_key(entity_type, record), "before": record if op == "d" else None,
            "after": None if op == "d" else record,
            "source": {"province": party, "system": "cj-front", "table": entity_type, "seq": seq, "snapshot": False},
            "ts_ms": TS + dt.timedelta(seconds=seq)}


@pytest.fixture
def water_exchange(bootstrap, unique, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                        provinces=("44", "CJ"), partitions=1, national_partitions=2, sink_flush_seconds=0.3)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


def publish(settings, events):
    producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))
    for ev in events:
        producer.produce(settings.topics.national_changes, CODEC.encode(ev), key=ev["entity_key"].encode())
    assert producer.flush(30) == 0


def water_events():
    return [
        change("shipping_enterprise", "c", ENTERPRISE, 1),
        change("ship", "c", SHIP, 2),
        change("ship", "c", INLAND, 3),
        change("ship", "c", SCRAPPED, 4),
        change("port_enterprise", "c", PORT, 5),
        change("waterway_project", "c", PROJECT, 6),
        change("ship", "u", {**SHIP, "status": "laid_up", "gross_tonnage": 3050}, 7),
        change("ship", "d", SCRAPPED, 8),
        change("operator", "c", {**OPERATOR, "uscc": USCC, "region_code": "420100"}, 9, party="44"),
    ]


def test_ships_from_a_navigation_administration_reach_the_water_views(water_exchange, store_of):
    events = water_events()
    publish(water_exchange, events)
    sink_until_drained(water_exchange, len(events))
    store = store_of(water_exchange)
    db = water_exchange.clickhouse_database

    ships = store.query(f"SELECT entity_key, ship_id, name, imo, mmsi, gross_tonnage, operator_uscc, status, "
                        f"province, last_op, seq FROM {db}.current_ships ORDER BY ship_id").result_rows
    assert ships == [
        ("ship:CN20190001234", "CN20190001234", "长江之星", "9074729", "413123456", 3050, USCC, "laid_up", "CJ", "u", 7),
        ("ship:CN20190005678", "CN20190005678", "汉江货1号", None, "413000001", None, USCC, "active", "CJ", "c", 3),
    ]
    assert store.query(f"SELECT uscc, name, business_scope, province FROM {db}.current_shipping_enterprises"
                       ).result_rows == [(USCC, "长航货运有限公司", ["inland", "inter_provincial"], "CJ")]
    assert store.query(f"SELECT uscc, port, province FROM {db}.current_port_enterprises").result_rows == [
        (USCC, "武汉港", "CJ")]
    assert store.query(f"SELECT project_code, total_investment_yuan, start_date, end_date "
                       f"FROM {db}.current_waterway_projects").result_rows == [
        ("2019-420100-55-01-012345", 1_250_000_000, dt.date(2019, 3, 1), None)]
    # the operator of the same USCC is the road register's, from its own party
    assert store.query(f"SELECT uscc, province FROM {db}.current_operators").result_rows == [(USCC, "44")]

    counts = register_counts(store, db)
    assert {register: {p: n for p, (n, _when) in per.items()} for register, per in counts.items() if per} == {
        "operator": {"44": 1}, "ship": {"CJ": 2}, "shipping_enterprise": {"CJ": 1}, "port_enterprise": {"CJ": 1},
        "waterway_project": {"CJ": 1}}

    download = stream_download(store, db, DownloadRequest("ship", party="CJ"), today=dt.date(2024, 6, 30))
    assert download.filename == "roadx-ship-CJ-20240630.csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(download.chunks).decode())))
    assert [(r["ship_id"], r["status"], r["province"]) for r in rows] == [
        ("CN20190001234", "laid_up", "CJ"), ("CN20190005678", "active", "CJ")]

    report = load_report(store, db, dt.date(2024, 6, 1), water_exchange.provinces)
    assert report.by_entity["CJ"] == {"ship": 5, "shipping_enterprise": 1, "port_enterprise": 1,
                                      "waterway_project": 1}
    assert report.records["ship"] == {"CJ": 2} and report.records["operator"] == {"44": 1}
    page = render_html(report)
    assert '<section class="province" data-province="CJ">' in page and "长江航务管理局" in page
    water = page[page.index('data-family="water"'):page.index('<section class="parties">')]
    assert "营运船舶 Operating ships" in water and "<td class=n>5</td><td class=n>2</td>" in water
