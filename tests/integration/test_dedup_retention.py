"""Event ids older than the dedup retention are forgotten with a changelog tombstone;
a resend after that is still not applied twice."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from stdnum.cn import uscc

from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry

from test_stream_worker import USCC_44, change, operator, read_topics, running_worker, worker_settings  # noqa: F401

pytestmark = pytest.mark.integration

RETENTION_HOURS = 1 / 3600  # one second


def other_operator(n):
    body = f"91440300MA5F{n:04d}X"
    return operator(body + uscc.calc_check_digit(body))


def changelog(settings, province):
    """Every (key, value) of the province's state changelog, in offset order per partition."""
    topic = settings.topics.stream_state(province)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"{settings.topic_prefix}cl",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
    out, idle_until = [], time.monotonic() + 3
    try:
        while time.monotonic() < idle_until:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append((msg.key().decode(), msg.value()))
                idle_until = time.monotonic() + 3
    finally:
        consumer.close()
    return out


def test_expired_event_id_is_tombstoned_and_its_resend_changes_nothing(worker_settings):
    settings = worker_settings
    topics = settings.topics
    codec = EventCodec(EmbeddedRegistry())
    key44 = settings.province_key("44")
    first = change("operator", operator(USCC_44))
    first_value = codec.encode(first, key44)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    log = settings.data_dir / "worker.log"
    retention = {"ROADX_DEDUP_RETENTION_HOURS": str(RETENTION_HOURS)}

    def send(*events):
        for ev in events:
            producer.produce(topics.province_changes("44"), value=codec.encode(ev, key44) if isinstance(ev, dict) else ev,
                             key=(ev["entity_key"] if isinstance(ev, dict) else first["entity_key"]).encode())
        assert producer.flush(30) == 0

    with running_worker(settings, log, **retention) as worker:
        send(first_value)
        assert len(read_topics(settings, {topics.national_changes: 1}, worker)[topics.national_changes]) == 1
        time.sleep(2)  # past the retention
        # Later traffic on the same partition drives the sweep.
        send(*[change("operator", other_operator(n)) for n in range(1, 21)])
        read_topics(settings, {topics.national_changes: 21}, worker)
        tombstones = [k for k, v in changelog(settings, "44") if v is None]
        assert f"seen:{first['event_id']}" in tombstones

    with running_worker(settings, log, **retention) as restarted:
        send(first_value)  # forgotten id, same content as the entity's last version
        got = read_topics(settings, {topics.national_changes: 21}, restarted, quiet_seconds=5)
    forwarded = [m.value() for m in got[topics.national_changes]]
    assert forwarded.count(first_value) == 1 and len(forwarded) == 21
