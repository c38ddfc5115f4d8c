"""Event ids older than the dedup retention are dropped from their entity's state at its next
write; a resend after that is still not applied twice."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry

from test_stream_worker import USCC_44, change, operator, read_topics, running_worker, worker_settings  # noqa: F401

pytestmark = pytest.mark.integration

RETENTION_HOURS = 1 / 3600  # one second


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


def test_an_expired_event_id_is_dropped_at_the_next_write_and_its_resend_changes_nothing(worker_settings):
    settings = worker_settings
    topics = settings.topics
    codec = EventCodec(EmbeddedRegistry())
    key44 = settings.province_key("44")
    first = change("operator", operator(USCC_44))
    first_value = codec.encode(first, key44)
    same_later = change("operator", operator(USCC_44))  # the same content under a new event id
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    log = settings.data_dir / "worker.log"
    retention = {"ROADX_DEDUP_RETENTION_HOURS": str(RETENTION_HOURS)}
    entity = f"entity:{first['entity_key']}"

    def send(*values):
        for value in values:
            producer.produce(topics.province_changes("44"), value=value, key=first["entity_key"].encode())
        assert producer.flush(30) == 0

    def entity_states():
        return [json.loads(v) for k, v in changelog(settings, "44") if k == entity and v is not None]

    def states_written(count, worker):
        deadline = time.monotonic() + 60
        while len(states := entity_states()) < count:  # each read waits for a quiet spell on the changelog
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the entity's state was written {len(states)} times, not {count}"
        return states

    with running_worker(settings, log, **retention) as worker:
        send(first_value)
        assert len(read_topics(settings, {topics.national_changes: 1}, worker)[topics.national_changes]) == 1
        accepted_ms = states_written(1, worker)[0]["seen"][first["event_id"]]
        while time.time() * 1000 - accepted_ms <= RETENTION_HOURS * 3_600_000:
            time.sleep(0.1)  # wall time itself must pass the retention
        send(codec.encode(same_later, key44))  # unchanged: not forwarded, but its entity is written
        assert set(states_written(2, worker)[-1]["seen"]) == {same_later["event_id"]}  # the first id forgotten

    with running_worker(settings, log, **retention) as restarted:
        send(first_value)  # forgotten id, same content as the entity's last version
        assert first["event_id"] in states_written(3, restarted)[-1]["seen"]  # taken in again, as unchanged
        got = read_topics(settings, {topics.national_changes: 1}, restarted, quiet_seconds=1)
    assert [m.value() for m in got[topics.national_changes]] == [first_value]
