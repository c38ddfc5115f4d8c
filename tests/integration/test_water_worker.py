"""The water registers through the real stream worker: the Changjiang administration (CJ)
files a shipping enterprise and a ship on prov.CJ.changes, which reach national.changes; a ship
with a wrong IMO check digit goes to the DLQ under invalid_imo; a case Guangdong (44) files
against the ship is routed to xprov.CJ.inbound, the party that registered it, also when the case
arrives before the ship (it waits: ``streams.waiting``), once even if the worker dies routing it."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY
from stdnum.cn import uscc

from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from streams import commit as commit_module
from streams.runner import StreamRunner
from streams.state import StateStore

from parts import running_part
from test_party_worker import change, read_until, settings  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.integration

ENTERPRISE_USCC = "91420100MA4K0000X" + uscc.calc_check_digit("91420100MA4K0000X")


def enterprise():
    return {"uscc": ENTERPRISE_USCC, "name": "长江航运有限公司", "permit_no": "交XS2017001",
            "business_scope": ["inland", "inter_provincial"], "region_code": "420100", "status": "active"}


def ship(**overrides):
    record = {"ship_id": "CN20190001", "name": "长航货运1号", "imo": "9074729", "mmsi": "413000001",
              "port_of_registry": "武汉", "gross_tonnage": 2999, "ship_type": "bulk_carrier",
              "operator_uscc": ENTERPRISE_USCC, "status": "active"}
    return {**record, **overrides}


def ship_case():
    return {"case_no": "粤交执2024009", "region_code": "440300", "stage": "filed", "violation_code": "W201",
            "occurred_at": 1_700_000_000_000, "involved_plate": None, "involved_operator_uscc": None,
            "involved_id_number": None, "penalty_cents": None, "involved_ship_id": "CN20190001"}


def test_a_ship_from_changjiang_reaches_the_national_log_and_a_case_about_it_reaches_changjiang(settings):
    names, codec = settings.topics, EventCodec(EmbeddedRegistry())
    cj = settings.province_key("CJ")
    filed = codec.encode(change("shipping_enterprise", enterprise(), "CJ"), cj)
    good = codec.encode(change("ship", ship(), "CJ"), cj)
    bad = codec.encode(change("ship", ship(ship_id="CN20190002", imo="9074728"), "CJ"), cj)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    for value, key in ((filed, f"shipping_enterprise:{ENTERPRISE_USCC}"), (good, "ship:CN20190001"),
                       (bad, "ship:CN20190002")):
        producer.produce(names.province_changes("CJ"), value=value, key=key.encode())
    assert producer.flush(30) == 0

    log = settings.data_dir / "worker.log"
    with running_part("streams", settings, log) as worker:
        got = read_until(settings, {names.national_changes: 2, names.national_dlq: 1}, worker, log)
        assert sorted(m.value() for m in got[names.national_changes]) == sorted([filed, good])
        (dead,) = got[names.national_dlq]
        assert dead.value() == bad and dict(dead.headers())[th.DLQ_RULE] == b"invalid_imo"

        case = codec.encode(change("case", ship_case(), "44"), settings.province_key("44"))
        producer.produce(names.province_changes("44"), value=case, key=b"case:W1")
        assert producer.flush(30) == 0
        routed = read_until(settings, {names.province_inbound("CJ"): 1}, worker, log)[names.province_inbound("CJ")]

    assert [m.value() for m in routed] == [case]
    routed_headers = dict(routed[0].headers())
    assert routed_headers[th.ROUTED_FROM] == b"44" and routed_headers[th.ROUTED_TO] == b"CJ"
    assert routed_headers[th.ROUTED_REASON] == b"involved_ship_id"


def test_a_case_arriving_before_its_ship_reaches_changjiang_once_the_ship_is_registered(settings):
    """The case names a ship no register holds yet: it waits, and the moment the ship is
    registered each stage it reached meanwhile is routed, in order, once; its later stages follow
    the usual way and a stage already routed is not repeated."""
    names, codec = settings.topics, EventCodec(EmbeddedRegistry())
    gd, cj = settings.province_key("44"), settings.province_key("CJ")
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    filed = codec.encode(change("case", ship_case(), "44"), gd)
    investigating = codec.encode(change("case", {**ship_case(), "stage": "investigating"}, "44"), gd)
    for value in (filed, investigating):
        producer.produce(names.province_changes("44"), value=value, key=b"case:W1")
    assert producer.flush(30) == 0

    log = settings.data_dir / "worker.log"
    inbound = names.province_inbound("CJ")
    with running_part("streams", settings, log) as worker:
        assert [m.value() for m in read_until(settings, {names.national_changes: 2}, worker, log)[
            names.national_changes]] == [filed, investigating]
        for value, key in ((codec.encode(change("shipping_enterprise", enterprise(), "CJ"), cj),
                            f"shipping_enterprise:{ENTERPRISE_USCC}"),
                           (codec.encode(change("ship", ship(), "CJ"), cj), "ship:CN20190001")):
            producer.produce(names.province_changes("CJ"), value=value, key=key.encode())
        assert producer.flush(30) == 0
        late = read_until(settings, {inbound: 2}, worker, log)[inbound]
        assert [m.value() for m in late] == [filed, investigating]

        again = codec.encode(change("case", {**ship_case(), "stage": "investigating", "penalty_cents": 1}, "44"), gd)
        decided = codec.encode(change("case", {**ship_case(), "stage": "decided", "penalty_cents": 50_000}, "44"), gd)
        for value in (again, decided):
            producer.produce(names.province_changes("44"), value=value, key=b"case:W1")
        assert producer.flush(30) == 0
        got = read_until(settings, {names.national_changes: 6, inbound: 3}, worker, log)

    assert len(got[names.national_changes]) == 6  # the case four times, the enterprise and the ship
    routed = read_all(settings, inbound)  # to its end, once the worker has stopped
    assert [m.value() for m in routed] == [filed, investigating, decided]
    assert [dict(m.headers())[th.ROUTED_STAGE] for m in routed] == [b"filed", b"investigating", b"decided"]
    assert dict(routed[0].headers())[th.ROUTED_REASON] == b"involved_ship_id"
    assert dict(routed[0].headers())[th.ORIGIN].startswith(b"late/44/0/CJ/filed/")
    assert "routed 2 copies of waiting cases late" in log.read_text()


class Died(Exception):
    """The worker process ends here: nothing after this point is written."""


def test_a_worker_dying_while_it_routes_a_waiting_case_leaves_it_routed_once(settings, monkeypatch):
    """The late route is on the broker, the state saying so is not: the worker taking over reads
    the route back and does not write it again, and its state then says the case went there."""
    names, codec = settings.topics, EventCodec(EmbeddedRegistry())
    gd, cj = settings.province_key("44"), settings.province_key("CJ")
    filed = codec.encode(change("case", ship_case(), "44"), gd)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    producer.produce(names.province_changes("44"), value=filed, key=b"case:W1")
    assert producer.flush(30) == 0

    dying = StreamRunner(settings, StateStore(settings.data_dir / "a"))
    # State changes stay in the producer's queue until flushed, so the death below drops all of them.
    dying.producer = Producer({**settings.kafka_conf(), "enable.idempotence": True, "acks": "all",
                               "linger.ms": 60_000})
    real_flush = commit_module._flush

    def flush_then_die(producer, deliveries, subject, what):
        if what == "state changes" and "late routes" in subject:
            producer.purge(in_queue=True, in_flight=False)
            raise Died()
        real_flush(producer, deliveries, subject, what)

    monkeypatch.setattr(commit_module, "_flush", flush_then_die)
    dying.start()
    step_until(dying, lambda: dying.store.get(WAIT_KEY) is not None)
    dying.step()
    assert REGISTRY.get_sample_value("roadx_stream_cases_waiting") == 1
    for value, key in ((codec.encode(change("shipping_enterprise", enterprise(), "CJ"), cj),
                        f"shipping_enterprise:{ENTERPRISE_USCC}"),
                       (codec.encode(change("ship", ship(), "CJ"), cj), "ship:CN20190001")):
        producer.produce(names.province_changes("CJ"), value=value, key=key.encode())
    assert producer.flush(30) == 0
    with pytest.raises(Died):
        step_until(dying, lambda: False)
    dying.consumer.close()  # the group gives its partitions away; nothing more of it is written
    dying.ownership.close()
    monkeypatch.setattr(commit_module, "_flush", real_flush)
    assert [m.value() for m in read_all(settings, names.province_inbound("CJ"))] == [filed]

    before = REGISTRY.get_sample_value("roadx_stream_outputs_already_written_total") or 0.0
    taking_over = StreamRunner(settings, StateStore(settings.data_dir / "b"))
    taking_over.start()
    try:
        step_until(taking_over, lambda: (taking_over.store.get(CASE_STATE) or {}).get("routes") == {"CJ": ["filed"]})
        assert taking_over.store.get(WAIT_KEY) is None and "waiting" not in taking_over.store.get(CASE_STATE)
        assert REGISTRY.get_sample_value("roadx_stream_outputs_already_written_total") - before == 1
        assert REGISTRY.get_sample_value("roadx_stream_cases_waiting") == 0
    finally:
        taking_over.close()
    routed = read_all(settings, names.province_inbound("CJ"))
    assert [m.value() for m in routed] == [filed]


CASE_STATE = f"entity:case:{ship_case()['case_no']}"
WAIT_KEY = f"wait:ship:CN20190001|case:{ship_case()['case_no']}"


def step_until(runner, done, limit_seconds=120.0):
    started = time.monotonic()
    while not done():
        runner.step()
        assert time.monotonic() - started < limit_seconds, "the condition never came"


def read_all(settings, topic):
    """Every message of a one-partition topic, read to its end."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{settings.topics.prefix}all",
                         "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got, deadline = [], time.monotonic() + 60
        while len(got) < high - low and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
        return got
    finally:
        consumer.close()
