"""The sink against the real embedded broker and a real chDB store.

chDB holds one store path per process (another path opens only once every client of
the first is closed) and a path open in one process cannot be opened by another. So
each test uses its own store directory and closes every client it opened; the sink
runs in a thread of the test process (same path, so the test may read it too) or, for
the worker entry point, in a child process that has exited before the test reads.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Producer

from deploy.broker import free_port
from deploy.topics import create_topics, exchange_topics
from deploy.worker import worker_argv
from schemas import contract, topics as headers
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings
from sinks.errors import QueryError
from schemas.pii import PiiMasker
from sinks.query import run_query
from sinks.rows import change_log_row
from sinks.inserts import TableInsert
from sinks.sink import COLUMNS, run_sink
from sinks.writer import insert_rows
from sinks.store import ensure_schema, open_store

pytestmark = pytest.mark.integration

CODEC = EventCodec(EmbeddedRegistry())
ID = "11010519491231002X"
TS = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)

OPERATOR = {"uscc": "91350100M000100Y43", "name": "福州顺达运输有限公司", "region_code": "350100",
            "permit_no": None, "business_scope": None, "status": "active",
            "legal_rep_id_number": ID, "contact_phone": "13812345678"}
VEHICLE = {"plate": "粤B12345", "plate_color": 2, "vin": None, "vehicle_class": "truck",
           "operator_uscc": "91350100M000100Y43", "transport_cert_no": None, "seats": None,
           "tonnage_kg": 18000, "status": "active"}
OTHER_VEHICLE = {**VEHICLE, "plate": "粤B54321"}
PRACTITIONER = {"id_number": ID, "name": "张三", "qualification_cert_no": "QC0001",
                "qualification_types": ["货运驾驶员"], "region_code": "440305",
                "employer_uscc": "91350100M000100Y43", "status": "active"}
CASE = {"case_no": "44-2024-000123", "region_code": "440300", "stage": "filed", "violation_code": "11001",
        "occurred_at": TS, "involved_plate": "京A12345", "involved_operator_uscc": None,
        "involved_id_number": None, "penalty_cents": None}


def event(entity_type, op, record, seq, before=None):
    return {
        "event_id": str(uuid.uuid4()), "op": op, "entity_type": entity_type,
        "entity_key": contract.entity_key(entity_type, record), "before": before,
        "after": None if op == "d" else record,
        "source": {"province": "44", "system": "yz44", "table": entity_type, "seq": seq, "snapshot": False},
        "ts_ms": TS + dt.timedelta(seconds=seq),
    }


@pytest.fixture
def exchange(bootstrap, unique, tmp_path):
    """Settings with fresh topics, created on the shared broker."""
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{unique}.",
                        provinces=("44", "11"), partitions=1, national_partitions=2, sink_flush_seconds=0.3)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


def publish(settings):
    """Creates, an update, a delete, one undecodable change, a dead letter and a routed case."""
    names = settings.topics
    updated = {**VEHICLE, "status": "suspended", "tonnage_kg": 20000}
    changes = [
        event("operator", "c", OPERATOR, 1),
        event("vehicle", "c", VEHICLE, 2),
        event("vehicle", "c", OTHER_VEHICLE, 3),
        event("practitioner", "c", PRACTITIONER, 4),
        event("vehicle", "u", updated, 5, before=VEHICLE),
        event("vehicle", "d", OTHER_VEHICLE, 6, before=OTHER_VEHICLE),
    ]
    producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))
    for ev in changes:
        producer.produce(names.national_changes, CODEC.encode(ev), key=ev["entity_key"].encode())
    producer.produce(names.national_changes, b"\x00garbage", key=b"vehicle:bad")
    producer.produce(names.national_dlq, b"not avro at all", key=b"operator:123", headers=[
        (headers.DLQ_RULE, b"not_framed"), (headers.DLQ_REASON, b"first byte is 0x6e"),
        (headers.DLQ_TOPIC, names.province_changes("44").encode()), (headers.DLQ_PARTITION, b"0"),
        (headers.DLQ_OFFSET, b"41"),
    ])
    case = event("case", "c", CASE, 7)
    producer.produce(names.province_inbound("11"), CODEC.encode(case), key=case["entity_key"].encode(),
                     headers=[(headers.ROUTED_REASON, b"involved_plate"), (headers.ROUTED_FROM, b"44")])
    if producer.flush(30) != 0:
        raise RuntimeError("messages not delivered")
    return {"changes": changes, "case": case, "total": len(changes) + 3}


def sink_until_drained(settings, expected, group_id=None, timeout=90):
    """Run the sink in a thread until it has consumed ``expected`` messages, then stop it."""
    stop, drained, consumed, failure = threading.Event(), threading.Event(), [0], []

    def on_batch(plan):
        consumed[0] += plan.consumed
        if consumed[0] >= expected:
            drained.set()

    def target():
        try:
            run_sink(settings, stop, on_batch, group_id=group_id)
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            drained.set()

    thread = threading.Thread(target=target, name="sink", daemon=True)
    thread.start()
    try:
        drained.wait(timeout)
    finally:
        stop.set()
        thread.join(30)
    if failure:
        raise failure[0]
    assert not thread.is_alive(), "the sink did not stop"
    assert consumed[0] == expected
    return consumed[0]


@pytest.fixture
def store_of():
    opened = []

    def _open(settings):
        client = open_store(settings)
        opened.append(client)
        return client

    yield _open
    for client in opened:
        client.close()


def scalar(client, sql):
    return client.query(sql).result_rows[0][0]


def test_sink_stores_changes_dead_letters_and_routed_cases_once(exchange, store_of):
    sent = publish(exchange)
    sink_until_drained(exchange, sent["total"])
    store = store_of(exchange)
    db = exchange.clickhouse_database

    assert scalar(store, f"SELECT count() FROM {db}.change_log FINAL") == 6
    vehicles = store.query(f"SELECT plate, status, tonnage_kg, last_op, seq FROM {db}.current_vehicles").result_rows
    assert vehicles == [("粤B12345", "suspended", 20000, "u", 5)]
    assert scalar(store, f"SELECT count() FROM {db}.current_operators") == 1
    practitioner = store.query(f"SELECT entity_key, id_number, id_number_token FROM {db}.current_practitioners").result_rows
    token = PiiMasker(exchange.pii_key()).token(ID)
    assert practitioner == [(f"practitioner:tok_{token}", "110105********002X", token)]
    phone = store.query(f"SELECT contact_phone FROM {db}.current_operators").result_rows
    assert phone == [("138****5678",)]
    everything = store.query(f"SELECT * FROM {db}.change_log").result_rows
    assert ID not in repr(everything) and "13812345678" not in repr(everything)

    dead = store.query(f"SELECT rule, origin_topic, origin_offset, key FROM {db}.dlq FINAL ORDER BY rule").result_rows
    assert dead[0] == ("not_framed", exchange.topics.province_changes("44"), 41, "operator:123")
    assert dead[1][:2] == ("sink_undecodable", exchange.topics.national_changes)
    assert dead[1][3] == "vehicle:bad"
    routed = store.query(f"SELECT case_no, source_province, target_province, stage, reason FROM {db}.routed_cases FINAL").result_rows
    assert routed == [("44-2024-000123", "44", "11", "filed", "involved_plate")]

    # Replay everything with a new group, from the earliest offsets: nothing doubles.
    sink_until_drained(exchange, sent["total"], group_id=f"{exchange.topic_prefix}replay")
    assert scalar(store, f"SELECT count() FROM {db}.change_log FINAL") == 6
    assert scalar(store, f"SELECT count() FROM {db}.current_vehicles") == 1
    assert scalar(store, f"SELECT count() FROM {db}.dlq FINAL") == 2
    assert scalar(store, f"SELECT count() FROM {db}.routed_cases FINAL") == 1


def test_retried_insert_with_the_same_token_is_dropped_by_the_store(exchange, store_of):
    store = store_of(exchange)
    db = exchange.clickhouse_database
    ensure_schema(store, db)
    ev = event("vehicle", "c", VEHICLE, 1)
    row = change_log_row(ev, CODEC.schema_id, "national.changes", 0, 10, PiiMasker(b"k" * 32))
    batch = TableInsert("change_log", "national.changes", 0, 10, 10, [row])
    insert_rows(store, db, batch, COLUMNS["change_log"])
    insert_rows(store, db, batch, COLUMNS["change_log"])  # a retry after a crash before the commit
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 1
    other_range = TableInsert("change_log", "national.changes", 0, 9, 10, [row])
    insert_rows(store, db, other_range, COLUMNS["change_log"])
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 2
    assert scalar(store, f"SELECT count() FROM {db}.change_log FINAL") == 1
    assert scalar(store, f"SELECT count() FROM {db}.current_vehicles") == 1


def test_bad_sql_gives_a_query_error_with_the_server_message(exchange, store_of):
    store = store_of(exchange)
    ensure_schema(store, exchange.clickhouse_database)
    ensure_schema(store, exchange.clickhouse_database)  # idempotent
    with pytest.raises(QueryError, match="UNKNOWN_TABLE") as caught:
        run_query(store, "SELECT * FROM roadx.no_such_table", "pretty")
    assert "Traceback" not in str(caught.value)
    with pytest.raises(QueryError, match="READONLY"):
        run_query(store, "DROP TABLE roadx.change_log", "tsv")
    assert run_query(store, "SELECT count() AS n FROM roadx.change_log", "tsv") == "n\n0"


def test_worker_process_drains_and_stops_cleanly_on_sigterm(exchange, store_of, tmp_path):
    sent = publish(exchange)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    env.update({
        "ROADX_DATA_DIR": str(exchange.data_dir), "ROADX_BOOTSTRAP_SERVERS": exchange.bootstrap_servers,
        "ROADX_TOPIC_PREFIX": exchange.topic_prefix, "ROADX_PROVINCES": "44,11", "ROADX_PARTITIONS": "1",
        "ROADX_NATIONAL_PARTITIONS": "2", "ROADX_METRICS_PORT": str(port), "ROADX_SINK_FLUSH_SECONDS": "0.3",
    })
    log = open(tmp_path / "sink.log", "wb")
    worker = subprocess.Popen([sys.executable, *worker_argv("sink")], env=env, stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        stored = 0.0
        while time.monotonic() < deadline and worker.poll() is None and stored < sent["total"]:
            stored = _rows_total(port)
            time.sleep(0.3)
        assert stored == sent["total"], (tmp_path / "sink.log").read_text("utf-8", errors="replace")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
    store = store_of(exchange)
    assert scalar(store, f"SELECT count() FROM {exchange.clickhouse_database}.change_log FINAL") == 6


def _rows_total(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("roadx_sink_rows_total{"))
