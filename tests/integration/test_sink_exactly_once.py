"""Exactly-once: a sink worker killed with SIGKILL mid-run and restarted, then a full replay.

The synthetic generator's valid events (what the stream worker would accept) are
published straight to ``national.changes``; the sink runs as ``roadx worker sink``
in a child process, is killed twice while storing, restarted, and finally a new consumer
group replays every partition from offset 0 into the populated store. The store must hold
exactly one ``change_log`` row per event and current views equal to the generator's truth.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from deploy.broker import free_port
from deploy.topics import create_topics, exchange_topics
from deploy.worker import worker_argv
from producers.synthetic.generator import SyntheticProvinces
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings, to_environ
from schemas.pii import PiiMasker
from sinks.store import open_store

from test_sink import scalar, sink_until_drained

pytestmark = pytest.mark.integration

EVENTS = 200_000
VIEWS = {"operator": "current_operators", "vehicle": "current_vehicles", "practitioner": "current_practitioners",
         "licence": "current_licences", "case": "current_cases"}


def publish_valid_events(settings: Settings, total: int) -> tuple[list[dict], int]:
    """The generator's valid events, encoded and published to national.changes; returns them and the count."""
    generator = SyntheticProvinces(settings.provinces, seed=5)
    codec = EventCodec(EmbeddedRegistry())
    producer = Producer(settings.kafka_conf(**{"enable.idempotence": True, "linger.ms": 20,
                                               "queue.buffering.max.messages": 500_000}))
    topic = settings.topics.national_changes
    events = []
    for item in generator.events(total):
        if item.kind != "valid":
            continue
        event = item.event
        events.append(event)
        producer.produce(topic, codec.encode(event), key=event["entity_key"].encode())
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("events not delivered")
    assert generator.expected.valid == len(events)
    return events, len(events)


def ground_truth(events: list[dict], pii: PiiMasker) -> dict[str, set[str]]:
    """Live entity keys (as stored, ID numbers tokenised) per entity type: the last event of each key wins."""
    last: dict[tuple[str, str], str] = {}
    for event in events:
        last[(event["entity_type"], event["entity_key"])] = event["op"]
    live: dict[str, set[str]] = {t: set() for t in VIEWS}
    for (entity_type, key), op in last.items():
        if op != "d":
            live[entity_type].add(pii.entity_key(key))
    return live


def sink_env(settings: Settings, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    env.update(to_environ(settings.with_overrides(metrics_port=metrics_port)))
    return env


def start_worker(settings: Settings, log_path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(log_path, "ab")
    try:
        worker = subprocess.Popen([sys.executable, *worker_argv("sink")], env=sink_env(settings, port),
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
    return worker, port


def rows_seen(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("roadx_sink_rows_total{"))


def wait_for_rows(worker: subprocess.Popen, port: int, at_least: float, timeout: float, log_path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"sink exited early: {log_path.read_text('utf-8', errors='replace')[-3000:]}")
        if rows_seen(port) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"sink stored fewer than {at_least} rows in {timeout}s")


def committed_everything(settings: Settings) -> bool:
    """Whether the sink group's committed offsets reached the end of every national.changes partition."""
    consumer = Consumer(settings.kafka_conf(**{"group.id": settings.topics.sink_group,
                                               "session.timeout.ms": settings.session_timeout_ms}))
    try:
        parts = [TopicPartition(settings.topics.national_changes, p) for p in range(settings.national_partitions)]
        committed = consumer.committed(parts, timeout=10)
        for tp in committed:
            high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
            if tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def stop(worker: subprocess.Popen, how: signal.Signals) -> None:
    if worker.poll() is None:
        worker.send_signal(how)
    worker.wait(60)


@pytest.fixture
def big_exchange(bootstrap, unique, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                        provinces=("44", "11", "32"), partitions=1, national_partitions=3,
                        sink_flush_seconds=0.2, sink_batch_size=5000)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


@pytest.mark.timeout(900)
def test_sigkilled_sink_restarted_stores_every_event_once_and_replay_changes_nothing(big_exchange, tmp_path):
    settings = big_exchange
    events, total = publish_valid_events(settings, EVENTS)
    log_path = tmp_path / "sink.log"
    workers: list[subprocess.Popen] = []
    try:
        for fraction in (0.25, 0.6):  # killed twice, each time while storing
            worker, port = start_worker(settings, log_path)
            workers.append(worker)
            wait_for_rows(worker, port, 1, 180, log_path)
            wait_for_rows(worker, port, total * fraction * 0.5, 180, log_path)
            stop(worker, signal.SIGKILL)
            assert worker.returncode == -signal.SIGKILL
        worker, port = start_worker(settings, log_path)
        workers.append(worker)
        deadline = time.monotonic() + 300
        while not committed_everything(settings):
            assert worker.poll() is None, log_path.read_text("utf-8", errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the restarted sink did not catch up"
            time.sleep(1)
        stop(worker, signal.SIGTERM)
        assert worker.returncode == 0, log_path.read_text("utf-8", errors="replace")[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    pii = PiiMasker(settings.pii_key())
    truth = ground_truth(events, pii)
    db = settings.clickhouse_database
    store = open_store(settings)
    try:
        counts = _counts(store, db)
        assert counts == {"rows": total, "distinct_events": total, "events_daily": total, "dlq": 0}
        for entity_type, view in VIEWS.items():
            stored = {row[0] for row in store.query(f"SELECT entity_key FROM {db}.{view}").result_rows}
            assert stored == truth[entity_type], entity_type
    finally:
        store.close()

    # A new consumer group replays every partition from offset 0 into the populated store.
    sink_until_drained(settings, total, group_id=f"{settings.topic_prefix}replay", timeout=300)
    store = open_store(settings)
    try:
        assert _counts(store, db) == counts
    finally:
        store.close()


def _counts(store, db: str) -> dict[str, int]:
    return {
        "rows": scalar(store, f"SELECT count() FROM {db}.change_log"),
        "distinct_events": scalar(store, f"SELECT uniqExact(event_id) FROM {db}.change_log"),
        "events_daily": scalar(store, f"SELECT sum(events) FROM {db}.events_daily"),
        "dlq": scalar(store, f"SELECT count() FROM {db}.dlq"),
    }
