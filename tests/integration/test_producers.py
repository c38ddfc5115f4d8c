"""Producers against the real embedded broker: synthetic publishing, spool resend, refusals."""

from __future__ import annotations

import collections
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from deploy.topics import create_topics, exchange_topics
from producers.errors import PublishError
from producers.synthetic.generator import SyntheticProvinces
from producers.publisher import SpoolPublisher, make_producer
from producers.spool import Spool
from producers.synthetic import publish_synthetic
from schemas import signing
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

pytestmark = pytest.mark.integration
PROVINCES = ("44", "11", "50")


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, provinces=PROVINCES, topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    return made


def consume_all(settings: Settings, topics: list[str], expected: int, timeout: float = 60) -> list:
    """Read every partition of ``topics`` from the beginning until ``expected`` messages arrived."""
    consumer = Consumer({
        **settings.kafka_conf(), "group.id": f"{settings.topic_prefix}check", "enable.auto.commit": False,
        "session.timeout.ms": settings.session_timeout_ms, "heartbeat.interval.ms": 1000,
    })
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(settings.partitions)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    messages.append(message)
        # whatever else is there arrives within a short extra read
        messages += [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        return messages
    finally:
        consumer.close()


def test_published_synthetic_events_all_arrive_signed_and_decodable(settings):
    seen_progress = []
    report = publish_synthetic(settings, total=2000, seed=11, progress=lambda done, total: seen_progress.append((done, total)))
    assert report.produced == 2000 == report.valid + report.duplicates + report.invalid
    assert report.duplicates > 0 and report.invalid > 0
    assert seen_progress[-1] == (2000, 2000)

    topics = [settings.topics.province_changes(p) for p in PROVINCES]
    messages = consume_all(settings, topics, expected=2000)
    assert len(messages) == report.produced

    codec = EventCodec(EmbeddedRegistry())
    per_province = collections.Counter()
    copies: dict[str, list[bytes]] = collections.defaultdict(list)
    for message in messages:
        province = settings.topics.province_of_changes_topic(message.topic())
        assert signing.verify(message.value(), settings.province_key(province))
        _schema_id, event = codec.decode(message.value())
        assert event["source"]["province"] == province
        assert message.key() == event["entity_key"].encode("utf-8")
        per_province[province] += 1
        copies[str(event["event_id"])].append(message.value())
    assert dict(per_province) == report.per_province
    resent = [values for values in copies.values() if len(values) > 1]
    assert sum(len(values) - 1 for values in resent) == report.duplicates
    assert all(len(set(values)) == 1 for values in resent)  # a resend is the same bytes
    assert all(Spool(settings.spool_dir / f"{p}.db").depth() == 0 for p in PROVINCES)


def spooled_entries(settings: Settings, province: str, n: int) -> list[tuple[str, bytes, bytes]]:
    codec = EventCodec(EmbeddedRegistry())
    key = settings.province_key(province)
    topic = settings.topics.province_changes(province)
    items = SyntheticProvinces([province], seed=5, duplicate_rate=0, invalid_rate=0).events(n)
    return [(topic, g.event["entity_key"].encode(), codec.encode(g.event, key)) for g in items]


def test_entries_spooled_but_never_drained_are_sent_by_a_new_publisher(settings):
    entries = spooled_entries(settings, "44", 300)
    path = settings.spool_dir / "44.db"
    with Spool(path) as spool:
        spool.append(entries, checkpoint="row-300")  # the process stops here, before any send

    with Spool(path) as spool:
        publisher = SpoolPublisher(spool, settings.kafka_conf())
        assert publisher.drain() == 300
        assert spool.depth() == 0 and spool.checkpoint() == "row-300"

    messages = consume_all(settings, [settings.topics.province_changes("44")], expected=300)
    assert sorted(m.value() for m in messages) == sorted(value for _t, _k, value in entries)


def test_entries_delivered_but_not_acknowledged_are_sent_again(settings):
    entries = spooled_entries(settings, "11", 100)
    path = settings.spool_dir / "11.db"
    with Spool(path) as spool:
        spool.append(entries)
        # a publisher delivered everything, then its process died before recording the acks
        crashed = make_producer(settings.kafka_conf())
        for entry in spool.pending(1000):
            crashed.produce(entry.topic, entry.value, entry.key)
        assert crashed.flush(30) == 0
        assert spool.depth() == 100

    with Spool(path) as spool:
        assert SpoolPublisher(spool, settings.kafka_conf()).drain() == 100
        assert spool.depth() == 0

    messages = consume_all(settings, [settings.topics.province_changes("11")], expected=200)
    counts = collections.Counter(m.value() for m in messages)
    assert len(messages) == 200 and set(counts.values()) == {2}  # at-least-once: each entry twice, same bytes


def test_publishing_appended_entries_sends_older_unsent_ones_first(settings, monkeypatch):
    entries = spooled_entries(settings, "50", 30)
    with Spool(settings.spool_dir / "50.db") as spool:
        spool.append(entries[:10])  # left by an earlier run, never sent
        reads = []
        read_pending = spool.pending
        monkeypatch.setattr(spool, "pending", lambda *a, **kw: reads.append(a) or read_pending(*a, **kw))
        publisher = SpoolPublisher(spool, settings.kafka_conf())
        try:
            assert publisher.publish(spool.append_entries(entries[10:20])) == 20
            assert reads  # the older entries were read from the spool, then the new ones with them
            reads.clear()
            assert publisher.publish(spool.append_entries(entries[20:])) == 10
            assert reads == []  # caught up: the appended entries went out without a re-read
            assert publisher.finish() == 30
            assert spool.depth() == 0
        finally:
            publisher.close()

    messages = consume_all(settings, [settings.topics.province_changes("50")], expected=30)
    assert sorted(m.value() for m in messages) == sorted(value for _t, _k, value in entries)
    by_key = collections.defaultdict(list)
    for m in messages:
        by_key[m.key()].append(m.value())
    spool_order = collections.defaultdict(list)
    for _t, key, value in entries:
        spool_order[key].append(value)
    assert by_key == spool_order  # each entity's entries arrive in spool order


def test_a_refused_entry_stays_pending_and_names_its_topic(settings):
    entries = spooled_entries(settings, "50", 20)
    topic = settings.topics.province_changes("50")
    oversized = (topic, b"case:too-big", b"\x00" * 50_000)
    with Spool(settings.spool_dir / "50.db") as spool:
        spool.append(entries[:10] + [oversized] + entries[10:])
        publisher = SpoolPublisher(spool, settings.kafka_conf(**{"message.max.bytes": 10_000}))
        with pytest.raises(PublishError, match=topic) as raised:
            publisher.drain()
        assert raised.value.failures and raised.value.failures[0][0] == topic
        left = spool.pending(10)
        assert [e.key for e in left] == [b"case:too-big"]  # the rest of the batch was delivered and acknowledged

    messages = consume_all(settings, [topic], expected=20)
    assert len(messages) == 20


def test_lz4_compressed_entries_round_trip_on_the_broker(settings):
    entries = spooled_entries(settings, "44", 50)
    with Spool(settings.spool_dir / "44.db") as spool:
        spool.append(entries)
        publisher = SpoolPublisher(spool, settings.kafka_conf(**{"compression.type": "lz4"}))
        assert publisher.drain() == 50
    messages = consume_all(settings, [settings.topics.province_changes("44")], expected=50)
    assert sorted(m.value() for m in messages) == sorted(value for _t, _k, value in entries)


@pytest.mark.parametrize("at_once", [True, False], ids=["taken-in-at-once", "taken-in-only-when-waited-for"])
def test_a_case_naming_an_administrations_ship_is_sent_after_the_ship_and_the_wait_the_caller_gives(
        bootstrap, unique, tmp_path, at_once):
    """Each province chunk holding a case about a CJ or ZJ ship goes out only after the ship is on the
    administration's topic and the caller said the line took it in (``settle``); a chunk told not yet
    keeps filling and, at two chunks or at the end, waits (``block``)."""
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, provinces=("44", "11", "CJ", "ZJ"),
                        topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(settings))
    codec = EventCodec(EmbeddedRegistry())
    on_topic: dict[str, set[str]] = {"CJ": set(), "ZJ": set()}  # ship keys on the party's topic when waited for
    waited: list[tuple[str, bool]] = []

    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t{unique}.probe"})

    def settle(party):
        topic = settings.topics.province_changes(party)
        ends = sum(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(settings.partitions))
        keys = {m.key().decode() for m in consume_all(settings, [topic], ends, timeout=30)}
        def taken_in(block):
            waited.append((party, block))
            if at_once or block:
                on_topic[party].update(keys)
            return at_once or block
        return taken_in

    try:
        report = publish_synthetic(settings, total=10_000, seed=7, settle=settle)
    finally:
        probe.close()
    assert report.produced == 10_000 and {party for party, _block in waited} == {"CJ", "ZJ"}
    if not at_once:  # told not yet, a chunk kept filling and came back to wait
        assert {block for _party, block in waited} == {False, True}
    provinces = [settings.topics.province_changes(p) for p in ("44", "11")]
    named = set()
    for message in consume_all(settings, provinces, sum(report.per_province[p] for p in ("44", "11"))):
        event = codec.decode(message.value())[1]
        if event["entity_type"] == "case" and (event["after"] or {}).get("involved_ship_id"):
            named.add(f"ship:{event['after']['involved_ship_id']}")
    assert named and named <= on_topic["CJ"] | on_topic["ZJ"]
    assert {q: report.expected_routed.get(q, 0) > 0 for q in ("CJ", "ZJ")} == {"CJ": True, "ZJ": True}
