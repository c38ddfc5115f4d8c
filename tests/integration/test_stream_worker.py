"""The stream worker as a process against the real embedded broker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from stdnum.cn import uscc

from deploy.broker import die_with_parent
from deploy.topics import create_topics, exchange_topics
from deploy.worker import worker_argv
from schemas import contract
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

pytestmark = pytest.mark.integration

USCC_44 = "91440300MA5F0000X" + uscc.calc_check_digit("91440300MA5F0000X")
WAIT_SECONDS = 120
QUIET_SECONDS = 3


def change(entity_type, record, province="44"):
    return {
        "event_id": str(uuid.uuid4()), "op": "c", "entity_type": entity_type,
        "entity_key": contract.entity_key(entity_type, record), "before": None, "after": record,
        "source": {"province": province, "system": "yunzheng", "table": entity_type, "seq": 1, "snapshot": False},
        "ts_ms": 1_700_000_000_000,
    }


def operator(uscc_value):
    return {
        "uscc": uscc_value, "name": "深圳运输有限公司", "region_code": "440300", "permit_no": None,
        "business_scope": None, "status": "active", "legal_rep_id_number": None, "contact_phone": None,
    }


def cross_province_case():
    return {
        "case_no": "粤深交执2024001", "region_code": "440300", "stage": "filed", "violation_code": "V101",
        "occurred_at": 1_700_000_000_000, "involved_plate": "京A12345", "involved_operator_uscc": None,
        "involved_id_number": None, "penalty_cents": None,
    }


@pytest.fixture
def worker_settings(bootstrap, unique, tmp_path):
    settings = Settings(
        data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.", provinces=("11", "44"),
        stream_batch_size=100,
    )
    create_topics(bootstrap, exchange_topics(settings))
    return settings


@contextlib.contextmanager
def running_worker(settings, log_path, **extra_env):
    """``roadx worker streams`` as a child process, stopped on exit; ``extra_env`` adds ROADX_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    env.update(
        ROADX_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        ROADX_TOPIC_PREFIX=settings.topic_prefix,
        ROADX_PROVINCES=",".join(settings.provinces),
        ROADX_DATA_DIR=str(settings.data_dir),
        ROADX_STREAM_BATCH_SIZE=str(settings.stream_batch_size),
        **extra_env,
    )
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, *worker_argv("streams")], env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def worker(worker_settings):
    with running_worker(worker_settings, worker_settings.data_dir / "worker.log") as proc:
        yield proc


def read_topics(settings, wanted, worker, quiet_seconds=QUIET_SECONDS):
    """Poll the named topics from the beginning until ``wanted`` counts arrive, then a quiet spell."""
    topics = settings.topics
    partitions = {
        topics.national_changes: settings.national_partitions,
        topics.national_dlq: settings.partitions,
        topics.province_inbound("11"): settings.partitions,
        topics.province_inbound("44"): settings.partitions,
    }
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"{topics.prefix}reader",
        "enable.auto.commit": False, "session.timeout.ms": settings.session_timeout_ms,
    })
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, n in partitions.items() for p in range(n)])
    got = {t: [] for t in partitions}
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        quiet_until = None
        while time.monotonic() < deadline:
            assert worker.poll() is None, (settings.data_dir / "worker.log").read_text()
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got[msg.topic()].append(msg)
            done = all(len(got[t]) >= n for t, n in wanted.items())
            if done and quiet_until is None:
                quiet_until = time.monotonic() + quiet_seconds
            if quiet_until is not None and time.monotonic() >= quiet_until:
                break
    finally:
        consumer.close()
    return got


def test_worker_forwards_drops_duplicates_rejects_and_routes(worker_settings, worker):
    settings = worker_settings
    codec = EventCodec(EmbeddedRegistry())
    key44 = settings.province_key("44")
    valid = codec.encode(change("operator", operator(USCC_44)), key44)
    bad_uscc = USCC_44[:-1] + ("0" if USCC_44[-1] != "0" else "1")
    invalid = codec.encode(change("operator", operator(bad_uscc)), key44)
    case = codec.encode(change("case", cross_province_case()), key44)

    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    source = settings.topics.province_changes("44")
    for key, value in [
        (f"operator:{USCC_44}", valid),
        (f"operator:{USCC_44}", valid),
        (f"operator:{bad_uscc}", invalid),
        ("garbage", b"this is not avro"),
        ("unknown-id", b"\x00\x7f\xff\xff\xfe" + valid[5:]),
        ("case:粤深交执2024001", case),
    ]:
        producer.produce(source, value=value, key=key.encode())
    assert producer.flush(30) == 0

    topics = settings.topics
    got = read_topics(settings, {topics.national_changes: 2, topics.national_dlq: 3, topics.province_inbound("11"): 1}, worker)
    assert worker.poll() is None, (settings.data_dir / "worker.log").read_text()

    assert sorted(m.value() for m in got[topics.national_changes]) == sorted([valid, case])
    dlq = {dict(m.headers())[th.DLQ_RULE]: m for m in got[topics.national_dlq]}
    assert sorted(dlq) == [b"invalid_uscc", b"not_framed", b"unknown_schema_id"]
    assert dlq[b"not_framed"].value() == b"this is not avro"
    assert dlq[b"unknown_schema_id"].key() == b"unknown-id"
    assert dlq[b"invalid_uscc"].value() == invalid
    rejected = dict(dlq[b"invalid_uscc"].headers())
    assert f"operator:{bad_uscc}".encode() in rejected[th.DLQ_REASON]
    assert rejected[th.DLQ_ENTITY_KEY] == f"operator:{bad_uscc}".encode()
    assert rejected[th.DLQ_EVENT_ID] == str(codec.decode(invalid)[1]["event_id"]).encode()
    assert th.DLQ_EVENT_ID not in dict(dlq[b"not_framed"].headers())
    assert [m.value() for m in got[topics.province_inbound("11")]] == [case]
    assert dict(got[topics.province_inbound("11")][0].headers())[th.ROUTED_FROM] == b"44"
    assert got[topics.province_inbound("44")] == []


def test_worker_stops_cleanly_on_sigterm(worker_settings, worker):
    codec = EventCodec(EmbeddedRegistry())
    producer = Producer({"bootstrap.servers": worker_settings.bootstrap_servers})
    producer.produce(
        worker_settings.topics.province_changes("44"),
        value=codec.encode(change("operator", operator(USCC_44)), worker_settings.province_key("44")),
    )
    assert producer.flush(30) == 0
    got = read_topics(worker_settings, {worker_settings.topics.national_changes: 1}, worker)
    assert len(got[worker_settings.topics.national_changes]) == 1
    worker.terminate()
    assert worker.wait(timeout=30) == 0


def test_event_resent_after_worker_restart_is_dropped(worker_settings):
    settings = worker_settings
    topics = settings.topics
    event = change("operator", operator(USCC_44))
    value = EventCodec(EmbeddedRegistry()).encode(event, settings.province_key("44"))
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    log = settings.data_dir / "worker.log"

    with running_worker(settings, log) as first:
        producer.produce(topics.province_changes("44"), value=value, key=event["entity_key"].encode())
        assert producer.flush(30) == 0
        assert len(read_topics(settings, {topics.national_changes: 1}, first)[topics.national_changes]) == 1
    assert first.returncode == 0

    with running_worker(settings, log) as second:
        producer.produce(topics.province_changes("44"), value=value, key=event["entity_key"].encode())
        # An update of the same entity: same key and partition, so it is processed after the resend.
        update = {**change("operator", {**operator(USCC_44), "status": "suspended"}), "op": "u"}
        update_value = EventCodec(EmbeddedRegistry()).encode(update, settings.province_key("44"))
        producer.produce(topics.province_changes("44"), value=update_value, key=update["entity_key"].encode())
        assert producer.flush(30) == 0
        got = read_topics(settings, {topics.national_changes: 2}, second)
    assert sorted(m.value() for m in got[topics.national_changes]) == sorted([value, update_value])


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_worker_stopped_mid_stream_loses_nothing_after_restart(worker_settings, stop):
    settings = worker_settings
    topics = settings.topics
    codec = EventCodec(EmbeddedRegistry())
    key44 = settings.province_key("44")
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 20})
    produced = set()
    for n in range(3000):
        ev = change("operator", {**operator(USCC_44), "name": f"运输公司{n}"})
        value = codec.encode(ev, key44)
        produced.add(value)
        producer.produce(topics.province_changes("44"), value=value, key=ev["entity_key"].encode())
    assert producer.flush(60) == 0
    log = settings.data_dir / "worker.log"

    with running_worker(settings, log) as first:
        read_topics(settings, {topics.national_changes: 1}, first, quiet_seconds=0)
        if stop == "sigkill":
            first.kill()
            first.wait()
    assert first.returncode == (0 if stop == "sigterm" else -9)

    with running_worker(settings, log) as second:
        # After SIGKILL the last batch's outputs may be written twice, so reaching the count is
        # not enough: read on until a quiet spell.
        got = read_topics(settings, {topics.national_changes: len(produced)}, second,
                          quiet_seconds=0 if stop == "sigterm" else 5)
    forwarded = [m.value() for m in got[topics.national_changes]]
    assert set(forwarded) == produced, f"{len(produced - set(forwarded))} missing of {len(produced)}, " \
                                       f"{len(forwarded) - len(set(forwarded))} written twice"
    if stop == "sigterm":  # a clean stop commits what it wrote: nothing is forwarded twice
        assert len(forwarded) == len(produced)
