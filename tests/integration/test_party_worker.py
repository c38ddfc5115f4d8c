"""Parties that are not provinces through the real stream worker: a navigation administration (CJ)
publishes a case on prov.CJ.changes, which reaches national.changes and the province it involves;
its road-register event is refused with register_not_allowed; its event sent under a province's
code is refused with province_mismatch; the Corps (66) publishes a road register."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from stdnum.cn import uscc

from deploy.topics import create_topics, exchange_topics
from schemas import contract
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from parts import running_part

pytestmark = pytest.mark.integration

USCC_44 = "91440300MA5F0000X" + uscc.calc_check_digit("91440300MA5F0000X")
WAIT_SECONDS = 120


def change(entity_type, record, party):
    return {
        "event_id": str(uuid.uuid4()), "op": "c", "entity_type": entity_type,
        "entity_key": contract.entity_key(entity_type, record), "before": None, "after": record,
        "source": {"province": party, "system": "cj-shipping", "table": entity_type, "seq": 1, "snapshot": False},
        "ts_ms": 1_700_000_000_000,
    }


def ship_case():
    """A case the Changjiang administration filed in Wuhan against a Guangdong-plated lorry on a ro-ro ship."""
    return {
        "case_no": "长航执2024001", "region_code": "420100", "stage": "filed", "violation_code": "V101",
        "occurred_at": 1_700_000_000_000, "involved_plate": "粤B12345", "involved_operator_uscc": None,
        "involved_id_number": None, "penalty_cents": None,
    }


def operator():
    return {
        "uscc": USCC_44, "name": "深圳运输有限公司", "region_code": "440300", "permit_no": None,
        "business_scope": None, "status": "active", "legal_rep_id_number": None, "contact_phone": None,
    }


@pytest.fixture
def settings(bootstrap, unique, tmp_path):
    s = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                 provinces=("44", "CJ", "66"), stream_batch_size=100, partitions=1, national_partitions=1)
    create_topics(bootstrap, exchange_topics(s))
    return s


def read_until(settings, wanted, worker, log):
    """Every message of the ``wanted`` topics once each has at least its count (or the wait is over)."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{settings.topics.prefix}r",
                         "enable.auto.commit": False, "session.timeout.ms": settings.session_timeout_ms})
    consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in wanted])
    got = {t: [] for t in wanted}
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and not all(len(got[t]) >= n for t, n in wanted.items()):
            assert worker.poll() is None, log.read_text()
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got[msg.topic()].append(msg)
    finally:
        consumer.close()
    return got


def test_a_navigation_administration_publishes_cases_but_not_road_registers(settings):
    names, codec = settings.topics, EventCodec(EmbeddedRegistry())
    case = codec.encode(change("case", ship_case(), "CJ"), settings.province_key("CJ"))
    road = codec.encode(change("operator", operator(), "CJ"), settings.province_key("CJ"))
    corps = codec.encode(change("operator", operator(), "66"), settings.province_key("66"))
    misplaced = codec.encode(change("case", {**ship_case(), "case_no": "长航执2024002"}, "CJ"),
                             settings.province_key("CJ"))
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    producer.produce(names.province_changes("CJ"), value=case, key=b"case:CJ1")
    producer.produce(names.province_changes("CJ"), value=road, key=f"operator:{USCC_44}".encode())
    producer.produce(names.province_changes("66"), value=corps, key=f"operator:{USCC_44}".encode())
    producer.produce(names.province_changes("44"), value=misplaced, key=b"case:CJ2")  # CJ's event under 44's code
    assert producer.flush(30) == 0

    log = settings.data_dir / "worker.log"
    with running_part("streams", settings, log) as worker:
        got = read_until(settings, {names.national_changes: 2, names.national_dlq: 2,
                                    names.province_inbound("44"): 1}, worker, log)

    assert sorted(m.value() for m in got[names.national_changes]) == sorted([case, corps])
    forwarded = {dict(m.headers())["roadx.source.topic"] for m in got[names.national_changes]}
    assert forwarded == {names.province_changes("CJ").encode(), names.province_changes("66").encode()}
    dlq = {dict(m.headers())[th.DLQ_RULE]: m for m in got[names.national_dlq]}
    assert sorted(dlq) == [b"province_mismatch", b"register_not_allowed"]
    assert dlq[b"register_not_allowed"].value() == road
    assert b"party CJ may not publish the operator register" in dict(dlq[b"register_not_allowed"].headers())[th.DLQ_REASON]
    assert dlq[b"province_mismatch"].value() == misplaced
    routed = got[names.province_inbound("44")]
    assert [m.value() for m in routed] == [case]
    assert dict(routed[0].headers())[th.ROUTED_FROM] == b"CJ"
