"""``roadx check`` against the real adapter and stage: the same XLSX file sent through the file
adapter to the broker, its events read back and run through the stream stage, gives the findings
the check gave offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from openpyxl import Workbook

from deploy.check import CheckOptions, check_file
from deploy.topics import create_topics, exchange_topics
from producers.files.adapter import FileAdapter, FileAdapterOptions
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import make_registry
from schemas.settings import Settings
from streams.pipeline import Inbound, StageContext, process_batch

pytestmark = pytest.mark.integration
HEADER = ["车牌号码", "车牌颜色", "车辆类型", "统一社会信用代码", "车架号", "核定吨位", "道路运输证号", "状态"]
OWNER = "91350100M000100Y43"
ROWS = [
    ["粤B12345", 2, "普通货车", OWNER, "LFV1A2B3C4D5E6F70", "18吨", "440300001", "营运"],  # good
    ["粤B12346", 2, "普通货车", "91350100M000100Y44", "LFV1A2B3C4D5E6F71", "18吨", "440300002", "营运"],  # bad USCC
    ["粤B12347", 7, "普通货车", OWNER, "LFV1A2B3C4D5E6F72", "18吨", "440300003", "营运"],  # bad plate colour
    ["粤B12348", 2, "普通货车", OWNER, "LFV1A2B3C4D5E6F73", "18吨", "y" * 1500, "营运"],  # the stage: too long
    ["京A12349", 2, "普通货车", OWNER, "", "18吨", "440300005", "营运"],  # warnings only
]


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=("44", "11", "35"),
                    topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    return made


def vehicles_xlsx(path: Path) -> Path:
    book = Workbook()
    book.active.append(HEADER)
    for row in ROWS:
        book.active.append(row)
    book.save(path)
    return path


def read_back(settings: Settings, expected: int, timeout: float = 60) -> list[Inbound]:
    consumer = Consumer({**settings.kafka_conf(), "group.id": f"{settings.topic_prefix}check-tool",
                         "enable.auto.commit": False, "session.timeout.ms": settings.session_timeout_ms})
    topic = settings.topics.province_changes("44")
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return [Inbound(m.topic(), m.partition(), m.offset(), m.key(), m.value()) for m in messages]


def test_check_gives_the_adapters_report_and_the_stages_rejections_for_the_same_xlsx(settings, tmp_path):
    (tmp_path / "sent").mkdir()
    sent = vehicles_xlsx(tmp_path / "sent" / "vehicles.xlsx")
    checked = tmp_path / "checked.xlsx"
    checked.write_bytes(sent.read_bytes())

    result = check_file(checked, "44", "vehicle", CheckOptions(uscc_allow=settings.uscc_allow()))
    with FileAdapter(settings, "44", "vehicle", FileAdapterOptions(receipt_seconds=0)) as adapter:
        loaded = adapter.process(sent)
    assert loaded.status == "loaded" and loaded.bad_rows == 2 and loaded.events == 3

    assert result.report.read_bytes() == loaded.error_report.read_bytes()
    assert [(f.row, f.rule) for f in result.findings if f.stage == "adapter"] == [(3, "invalid_uscc"),
                                                                                  (4, "invalid_plate_color")]

    batch = read_back(settings, expected=loaded.events)
    assert len(batch) == 3
    codec = EventCodec(make_registry(None))
    ctx = StageContext(codec, settings.topics, {"44": (settings.province_key("44"),)}, frozenset(settings.provinces),
                       uscc_allow=settings.uscc_allow())
    stage = process_batch(batch, ctx, {})
    dlq = {dict(o.headers)[th.DLQ_ENTITY_KEY].decode(): dict(o.headers)[th.DLQ_RULE].decode()
           for o in stage.outputs if o.topic == settings.topics.national_dlq}
    quality = {(f["entity_key"], f["rule"], f["severity"]) for f in
               (ctx.findings.decode(o.value) for o in stage.outputs if o.topic == settings.topics.national_quality)}
    hub = [f for f in result.findings if f.stage == "hub"]
    assert dlq == {f.key: f.rule for f in hub if f.severity == "error"} == {"vehicle:粤B12348:2": "field_too_long"}
    # without a snapshot the check leaves out what needs the register (a vehicle's operator)
    assert {(f.key, f.rule, f.severity) for f in hub} == {q for q in quality if q[1] != "unknown_operator"}
    assert result.rejected_rows == 3 and result.exit_status == 1
