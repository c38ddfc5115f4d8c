"""A stream worker that dies after writing a batch's outputs and before its state changes:
the worker taking over its partitions writes every output exactly once, on the real broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from schemas import topics as th
from streams import commit as commit_module
from streams.runner import StreamRunner
from streams.state import StateStore

from test_stream_scale import CODEC, _read, case, change, exchange_of_three, send, signed
from test_stream_worker import USCC_44, operator

pytestmark = pytest.mark.integration


class Died(Exception):
    """The worker process ends here: nothing after this point is written."""


@pytest.fixture
def settings(bootstrap, unique, tmp_path):
    return exchange_of_three(bootstrap, unique, tmp_path, stream_batch_size=100)


def workload(settings):
    """600 events of province 44: operators, cases routed to 11 and 31, and forged ones for the DLQ."""
    items, accepted, cases, forged = [], [], 0, 0
    for n in range(600):
        if n % 10 == 0:
            ev = change("case", case("filed", n), province="44")
            cases += 1
        else:
            ev = change("operator", {**operator(USCC_44), "name": f"运输公司{n}"}, province="44", seq=n)
        value = signed(settings, ev)
        if n % 50 == 7:
            value = CODEC.encode(ev, b"not-the-key-of-44")
            forged += 1
        else:
            accepted.append(ev["event_id"])
        items.append((settings.topics.province_changes("44"), ev["entity_key"], value))
    return items, accepted, cases, forged


def already_written():
    return REGISTRY.get_sample_value("roadx_stream_outputs_already_written_total") or 0.0


def steps_until_quiet(runner, quiet_seconds=4.0, limit_seconds=120.0):
    """Step until the worker has processed something and then nothing for ``quiet_seconds``."""
    started, last = time.monotonic(), None
    while last is None or time.monotonic() - last < quiet_seconds:
        if runner.step():
            last = time.monotonic()
        assert time.monotonic() - started < limit_seconds, "the worker never went quiet"


def die_in_third_batch(settings, monkeypatch, undelivered=lambda topic: False):
    """Run a worker until it dies in its third batch, after its output flush and before its state
    flush; outputs to topics ``undelivered`` names never reach the broker in that batch (the
    kill landed while the flush had delivered only part of them). Returns how many were dropped."""
    dying = StreamRunner(settings, StateStore(settings.data_dir / "a"))
    # State changes stay in the producer's queue until flushed, so the death below drops all of them.
    dying.producer = Producer({**settings.kafka_conf(), "enable.idempotence": True, "acks": "all",
                               "linger.ms": 60_000, "partitioner": "murmur2_random"})
    real_flush, real_produce, written_batches, dropped = commit_module._flush, commit_module.produce, [], []

    def flush_then_die(producer, deliveries, subject, what):
        if what == "state changes" and len(written_batches) == 2:
            producer.purge(in_queue=True, in_flight=False)
            raise Died()
        real_flush(producer, deliveries, subject, what)
        if what == "state changes":
            written_batches.append(subject)

    def produce_part(producer, topic, *args, **kwargs):
        if len(written_batches) == 2 and undelivered(topic):
            dropped.append(topic)
            return
        real_produce(producer, topic, *args, **kwargs)

    monkeypatch.setattr(commit_module, "_flush", flush_then_die)
    monkeypatch.setattr(commit_module, "produce", produce_part)
    dying.start()
    with pytest.raises(Died):
        for _ in range(600):
            dying.step()
    dying.consumer.close()  # the group gives its partitions away; nothing more of it is written
    dying.ownership.close()
    monkeypatch.setattr(commit_module, "_flush", real_flush)
    monkeypatch.setattr(commit_module, "produce", real_produce)
    return len(dropped)


def take_over_and_check(settings, accepted, cases, forged):
    """A second worker takes the partitions over; every output must be on the broker exactly once."""
    before = already_written()
    taking_over = StreamRunner(settings, StateStore(settings.data_dir / "b"))
    taking_over.start()
    try:
        steps_until_quiet(taking_over)
    finally:
        taking_over.close()
    names = settings.topics
    got = _read(settings, [names.national_changes, names.province_inbound("11"), names.province_inbound("31"),
                           names.national_dlq, names.national_quality])
    forwarded = [str(CODEC.decode(m.value())[1]["event_id"]) for m in got[names.national_changes]]
    assert sorted(forwarded) == sorted(accepted)
    for province in ("11", "31"):
        routed = [dict(m.headers())[th.ROUTED_CORRELATION_ID] for m in got[names.province_inbound(province)]]
        assert len(routed) == len(set(routed)) == cases, province
    dead = [dict(m.headers())[th.DLQ_OFFSET] for m in got[names.national_dlq]]
    assert len(dead) == len(set(dead)) == forged
    origins = [dict(m.headers())[th.ORIGIN] for m in got[names.national_quality]]
    assert len(origins) == len(set(origins)) >= forged
    assert already_written() - before > 0, "the takeover never met an output written before it"


def test_worker_dying_between_outputs_and_state_leaves_nothing_written_twice(settings, monkeypatch):
    items, accepted, cases, forged = workload(settings)
    send(settings, items)
    die_in_third_batch(settings, monkeypatch)
    take_over_and_check(settings, accepted, cases, forged)


def test_routed_copies_undelivered_when_the_worker_died_are_written_by_the_next_owner(settings, monkeypatch):
    """The kill lands mid-flush: a case's national.changes output is on the broker, its routed
    copies are not. Both carry the same origin label, so the next owner must tell them apart
    by topic, or it leaves the routed copies out as already written and they are lost."""
    items, accepted, cases, forged = workload(settings)
    send(settings, items)
    inbound = {settings.topics.province_inbound(p) for p in ("11", "31")}
    assert die_in_third_batch(settings, monkeypatch, undelivered=inbound.__contains__) > 0
    take_over_and_check(settings, accepted, cases, forged)


def test_output_positions_follow_what_other_writers_add(settings):
    from confluent_kafka.admin import AdminClient

    from streams.handover import OutputPositions

    positions = OutputPositions(AdminClient(settings.kafka_conf()))
    topic = settings.topics.national_quality
    positions.prime([topic])
    before = positions.of(topic)
    send(settings, [(topic, f"k{n}", b"x") for n in range(50)])
    assert positions.of(topic) == before  # another writer's messages are not seen until asked
    positions.refresh()
    after = positions.of(topic)
    assert all(a >= b for a, b in zip(after, before)) and sum(after) > sum(before)
