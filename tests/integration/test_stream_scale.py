"""Issue-4 behaviour of real stream workers on the embedded broker: provenance, quality
findings, content dedup, staleness, routing of cases across provinces, two workers with
one killed, and bad input that never stops a worker."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from deploy.topics import create_topics, exchange_topics
from schemas import contract
from schemas import topics as th
from schemas.codec import EventCodec, FindingCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings
from streams import subscribe

from test_stream_worker import USCC_44, operator, read_topics, running_worker

pytestmark = pytest.mark.integration

PROVINCES = ("11", "31", "44")
CODEC = EventCodec(EmbeddedRegistry())


def change(entity_type, record, province="44", op="c", seq=1):
    return {
        "event_id": str(uuid.uuid4()), "op": op, "entity_type": entity_type,
        "entity_key": contract.entity_key(entity_type, record), "before": None, "after": record,
        "source": {"province": province, "system": "yunzheng", "table": entity_type, "seq": seq, "snapshot": False},
        "ts_ms": 1_700_000_000_000,
    }


def case(stage, n=0):
    return {
        "case_no": f"粤深交执2024{n:04d}", "region_code": "440300", "stage": stage, "violation_code": "V101",
        "occurred_at": 1_700_000_000_000, "involved_plate": "京A12345",
        "involved_operator_uscc": "91310000MA1FL0000" + _check("91310000MA1FL0000"),
        "involved_id_number": None, "penalty_cents": None,
    }


def _check(body):
    from stdnum.cn import uscc
    return uscc.calc_check_digit(body)


def exchange_of_three(bootstrap, unique, tmp_path, stream_batch_size):
    """Settings of a fresh three-province exchange on the test broker, its topics created."""
    made = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.", provinces=PROVINCES,
                    stream_batch_size=stream_batch_size)
    create_topics(bootstrap, exchange_topics(made))
    return made


@pytest.fixture
def settings(bootstrap, unique, tmp_path):
    return exchange_of_three(bootstrap, unique, tmp_path, stream_batch_size=200)


def send(settings, items):
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 20,
                         "partitioner": "murmur2_random", "message.max.bytes": 16_000_000})
    for topic, key, value in items:
        producer.produce(topic, value=value, key=key.encode() if isinstance(key, str) else key)
    assert producer.flush(60) == 0


def signed(settings, ev):
    return CODEC.encode(ev, settings.province_key(ev["source"]["province"]))


def test_provenance_quality_dedup_staleness_and_routing(settings):
    topics = settings.topics
    t44 = topics.province_changes("44")
    op = operator(USCC_44)
    first = change("operator", op, seq=1)
    unchanged = change("operator", op, op="u", seq=2)
    newer = change("operator", {**op, "status": "suspended"}, op="u", seq=5)
    stale = change("operator", {**op, "name": "旧名称"}, op="u", seq=3)
    forged = CODEC.encode(change("operator", operator(USCC_44)), b"some-other-key-entirely")
    claims_11 = signed(settings, change("operator", operator(USCC_44), province="11"))
    stages = [change("case", case(s), op="c" if i == 0 else "u", seq=10 + i)
              for i, s in enumerate(["filed", "filed", "investigating", "decided"])]
    stages[1]["after"]["penalty_cents"] = 500  # same stage, new content: stored, not routed again
    no_party = change("case", {**case("filed", 1), "involved_plate": None, "involved_operator_uscc": None})
    year_9999 = change("case", {**case("filed", 2), "occurred_at": 253_402_214_400_000 - 1})
    ten_mb_name = change("operator", {**operator(USCC_44), "name": "名" * 3_500_000})
    key = f"operator:{USCC_44}"
    items = [(t44, key, signed(settings, e)) for e in (first, unchanged, newer, stale)]
    items += [(t44, key, forged), (t44, key, claims_11)]
    items += [(t44, e["entity_key"], signed(settings, e)) for e in stages + [no_party, year_9999, ten_mb_name]]
    items += [(t44, "trunc", signed(settings, first)[:20]),
              (t44, "wrong", FindingCodec(EmbeddedRegistry()).encode({
                  "finding_id": "x", "rule": "r", "dimension": "d", "severity": "s", "province": "44",
                  "message": "m", "source_topic": "t", "source_partition": 0, "source_offset": 0, "detected_ms": 0}))]
    send(settings, items)

    with running_worker(settings, settings.data_dir / "worker.log") as worker:
        got = read_topics(settings, {topics.national_changes: 8, topics.province_inbound("11"): 3}, worker)
        extra = _read(settings, [topics.national_quality, topics.province_inbound("31")])
        assert worker.poll() is None  # bad input did not stop it

    changes = got[topics.national_changes]
    forwarded = [CODEC.decode(m.value())[1]["event_id"] for m in changes]
    assert str(unchanged["event_id"]) not in map(str, forwarded)
    stale_msgs = [m for m in changes if dict(m.headers()).get(th.STALE) == b"true"]
    assert [str(CODEC.decode(m.value())[1]["event_id"]) for m in stale_msgs] == [stale["event_id"]]
    dlq_rules = sorted(dict(m.headers())[th.DLQ_RULE].decode() for m in got[topics.national_dlq])
    assert dlq_rules == sorted(["bad_signature", "province_mismatch", "implausible_date", "malformed_avro",
                                "malformed_avro", "field_too_long"])
    too_long = next(m for m in got[topics.national_dlq] if dict(m.headers())[th.DLQ_RULE] == b"field_too_long")
    assert int(dict(too_long.headers())[th.DLQ_VALUE_BYTES]) > 10_000_000
    assert len(too_long.value()) == th.DLQ_MAX_VALUE_BYTES

    to_11 = got[topics.province_inbound("11")]
    to_31 = extra[topics.province_inbound("31")]
    assert [dict(m.headers())[th.ROUTED_STAGE] for m in to_11] == [b"filed", b"investigating", b"decided"]
    assert [dict(m.headers())[th.ROUTED_STAGE] for m in to_31] == [b"filed", b"investigating", b"decided"]
    correlation = {dict(m.headers())[th.ROUTED_CORRELATION_ID] for m in to_11 + to_31}
    assert len(correlation) == 1

    findings = [FindingCodec(EmbeddedRegistry()).decode(m.value()) for m in extra[topics.national_quality]]
    rules = {f["rule"] for f in findings}
    assert {"bad_signature", "province_mismatch", "stale_event", "case_without_party", "implausible_date"} <= rules
    assert all(f["province"] == "44" for f in findings)

    stop = __import__("threading").Event()
    seen = list(subscribe.subscribe(settings, "11", True, stop, idle_exit=2))
    assert [s["stage"] for s in seen] == ["filed", "investigating", "decided"]
    assert seen[0]["entity_key"] == stages[0]["entity_key"] and seen[0]["from"] == "44"


def _read(settings, names):
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{settings.topic_prefix}x",
                         "enable.auto.commit": False})
    parts = []
    for name in names:
        meta = consumer.list_topics(name, timeout=10).topics[name]
        parts += [TopicPartition(name, p, OFFSET_BEGINNING) for p in meta.partitions]
    consumer.assign(parts)
    got = {n: [] for n in names}
    idle = 0
    while idle < 6:
        m = consumer.poll(0.5)
        if m is None:
            idle += 1
            continue
        idle = 0
        if m.error() is None:
            got[m.topic()].append(m)
    consumer.close()
    return got


def test_two_workers_one_killed_deliver_every_event_and_case_exactly_once(settings):
    """Wherever the kill lands in a batch's writes, the worker that takes over its partitions
    writes each accepted event to national.changes once and each routed case once."""
    topics = settings.topics
    items, expected, cases = [], set(), 0
    for n in range(3000):
        province = PROVINCES[n % 3]
        if n % 10 == 0:
            ev = change("case", case("filed", n), province="44")
            cases += 1
        else:
            ev = change("operator", {**operator(USCC_44), "name": f"运输公司{n}"}, province="44", seq=n)
        expected.add(ev["event_id"])
        items.append((topics.province_changes(ev["source"]["province"]), ev["entity_key"], signed(settings, ev)))
    send(settings, items)
    log = settings.data_dir / "worker.log"
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_worker(settings, log))
        second = stack.enter_context(running_worker(settings, log))
        read_topics(settings, {topics.national_changes: 300}, first, quiet_seconds=0)
        second.kill()
        second.wait()
        third = stack.enter_context(running_worker(settings, log))
        got = read_topics(settings, {topics.national_changes: len(expected), topics.province_inbound("11"): cases},
                          third)
    forwarded = [str(CODEC.decode(m.value())[1]["event_id"]) for m in got[topics.national_changes]]
    assert sorted(forwarded) == sorted(expected)
    routed = [(dict(m.headers())[th.ROUTED_CORRELATION_ID], dict(m.headers())[th.ROUTED_STAGE])
              for m in got[topics.province_inbound("11")]]
    assert len(routed) == len(set(routed)) == cases
