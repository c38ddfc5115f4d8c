"""A navigation administration's daily exchange against the real broker: an XLSX of ships from
长江航务管理局 (party CJ), dropped into its inbox under ship/<YYYYMMDD>/, is published to
prov.CJ.changes with the row errors report beside it; roadx check on the same file finds the same
rows, and the file of a register CJ may not publish is refused while the others go on."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from openpyxl import Workbook

from deploy import check
from deploy.topics import create_topics, exchange_topics
from producers.files.adapter import FileAdapterOptions
from producers.files.watch import DropFolder
from schemas import signing
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

pytestmark = pytest.mark.integration
PARTY = "CJ"
HEADER = ("船舶识别号", "船名", "IMO编号", "MMSI", "船籍港", "总吨", "船舶种类", "经营人统一社会信用代码", "状态")
ROWS = [  # (cells, the adapter's rule for the row: None when it loads)
    (("CN20190001", "长航货运1", "IMO 9074729", "413000001", "武汉", "1,200", "散货船", "91350100M000100Y43", "营运"), None),
    (("CN20190002", "长航集装箱8", "", "413000002", "南京", "5600", "集装箱船", "91110000600037341L", "营运"), None),
    (("CN20190003", "江海直达2", "9074728", "413000003", "重庆", "3000", "散货船", "91350100M000100Y43", "营运"),
     "invalid_imo"),   # a wrong check digit
    (("CN20190004", "长航客1", "", "41300004", "宜昌", "800", "客船", "91350100M000100Y43", "营运"),
     "invalid_mmsi"),  # 8 digits
    (("CN20190005", "长航拖9", "", "413000005", "芜湖", "300", "拖船", "91350100M000100Y43", "停航"), None),
]


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=("44", PARTY),
                    topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    return made


def ships_xlsx(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    sheet = book.active
    sheet.title = "营运船舶"
    sheet.append(HEADER)
    for cells, _rule in ROWS:
        sheet.append(cells)
    book.save(path)
    return path


def consume(settings: Settings, party: str, expected: int, timeout: float = 60) -> list[dict]:
    """Every event on ``prov.<party>.changes``, each signature checked with the party's key."""
    consumer = Consumer({**settings.kafka_conf(), "group.id": f"{settings.topic_prefix}check",
                         "enable.auto.commit": False, "session.timeout.ms": settings.session_timeout_ms})
    codec, key = EventCodec(EmbeddedRegistry()), settings.province_key(party)
    topic = settings.topics.province_changes(party)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(100, 0.5) if m.error() is None]
        messages += [m for m in consumer.consume(100, 1.0) if m.error() is None]  # nothing more should come
    finally:
        consumer.close()
    events = []
    for message in messages:
        assert signing.verify(message.value(), key)
        events.append(codec.decode(message.value())[1])
    return events


def report_rows(path: Path) -> list[tuple[int, str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as file:
        return [(int(row["row"]), row["field"], row["rule"]) for row in csv.DictReader(file)]


def test_ships_dropped_into_the_inbox_are_published_by_the_watcher_and_roadx_check_finds_the_same_rows(
        settings, tmp_path):
    inbox = tmp_path / "inbox"
    ships = ships_xlsx(inbox / "ship" / "20240601" / "长江航务管理局-营运船舶.xlsx")
    refused = inbox / "vehicle" / "20240601" / "vehicles.csv"
    refused.parent.mkdir(parents=True)
    refused.write_text("车牌号码,车牌颜色\n粤B12345,2\n", "utf-8")
    # roadx check, before sending: the same adapter rows, and the hub rejects nothing else
    checked = check.check_file(ships, PARTY, "ship", check.CheckOptions(report=tmp_path / "check.errors.csv"))
    folder = DropFolder(settings, PARTY, inbox, None, FileAdapterOptions(receipt_seconds=0))
    try:
        time.sleep(0.3)  # let the files' mtimes age past the settle time
        results = {r.path.name: r for r in folder.run(settle_s=0.2, poll_s=0.1, report=lambda _r: None, once=True)}
    finally:
        folder.close()

    loaded = results[ships.name]
    assert (loaded.status, loaded.rows, loaded.bad_rows, loaded.creates) == ("loaded", 5, 2, 3)
    processed = ships.parent / "processed"
    assert loaded.moved_to == processed / ships.name and not ships.exists()
    report = processed / f"{ships.name}.errors.csv"
    bad = [(number, rule) for number, (_cells, rule) in enumerate(ROWS, start=2) if rule]
    assert [(row, rule) for row, _field, rule in report_rows(report) if rule != "normalised"] == bad
    assert ("imo", "normalised") in [(field, rule) for _row, field, rule in report_rows(report)]

    assert results[refused.name].status == "rejected" and "register_not_allowed" in results[refused.name].reason
    assert (refused.parent / "rejected" / f"{refused.name}.reason").exists()

    events = consume(settings, PARTY, expected=3)
    assert sorted(e["entity_key"] for e in events) == ["ship:CN20190001", "ship:CN20190002", "ship:CN20190005"]
    assert all(e["entity_type"] == "ship" and e["op"] == "c" and e["source"]["province"] == PARTY for e in events)
    first = next(e["after"] for e in events if e["entity_key"] == "ship:CN20190001")
    assert (first["imo"], first["gross_tonnage"], first["ship_type"], first["status"]) == \
        ("9074729", 1200, "bulk_carrier", "active")
    tug = next(e["after"] for e in events if e["entity_key"] == "ship:CN20190005")
    assert (tug["ship_type"], tug["status"]) == ("tug", "laid_up")

    assert checked.status == "checked" and checked.rows == 5
    assert report_rows(tmp_path / "check.errors.csv") == report_rows(report)
    assert sorted((f.row, f.rule) for f in checked.findings if f.stage == "adapter" and f.rule != "normalised") == bad
    assert {f.row for f in checked.findings if f.severity == "error"} == {row for row, _rule in bad}
    assert checked.rejected_rows == 2
