"""Database change capture end to end: SQLite and PostgreSQL sources, the real broker, crashes and outages."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from deploy import cli
from deploy.broker import EmbeddedBroker, free_port
from deploy.topics import create_topics, exchange_topics
from producers.database.adapter import DbAdapter, DbAdapterConfig
from producers.database.source import Position
from schemas import signing
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings, to_environ

from postgres import postgres_server

pytestmark = pytest.mark.integration
PROVINCE = "44"
REPO = Path(__file__).resolve().parents[2]
VEHICLE_TABLE = """CREATE TABLE vehicles (
    id INTEGER PRIMARY KEY, plate TEXT, plate_color INTEGER, vehicle_class TEXT, operator_uscc TEXT,
    status TEXT, seats INTEGER, updated_at TEXT, deleted INTEGER NOT NULL DEFAULT 0)"""


def vehicle(i: int, updated_at: str, status: str = "active", seats: int = 5) -> tuple:
    return (i, f"粤B{i:05d}", 2, "truck", "91350100M000100Y43", status, seats, updated_at)


def make_sqlite(path: Path, rows: list[tuple]) -> str:
    with sqlite3.connect(path) as db:
        db.execute(VEHICLE_TABLE)
        db.executemany("INSERT INTO vehicles (id, plate, plate_color, vehicle_class, operator_uscc, status, seats, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return f"sqlite:///{path}"


def vehicle_config(url: str, **overrides) -> DbAdapterConfig:
    values = dict(province=PROVINCE, url=url, table="vehicles", entity="vehicle", key="id", cursor="updated_at",
                  deleted_column="deleted")
    values.update(overrides)
    return DbAdapterConfig(**values)


@pytest.fixture
def settings(bootstrap, unique, tmp_path) -> Settings:
    made = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=bootstrap, provinces=(PROVINCE,),
                    topic_prefix=f"t{unique}.")
    create_topics(bootstrap, exchange_topics(made))
    return made


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def consume(settings: Settings, expected: int, timeout: float = 60) -> list:
    """Every message of the province topic, read from the beginning until ``expected`` arrived."""
    consumer = Consumer({
        **settings.kafka_conf(), "group.id": f"{settings.topic_prefix}check", "enable.auto.commit": False,
        "session.timeout.ms": settings.session_timeout_ms, "heartbeat.interval.ms": 1000,
    })
    topic = settings.topics.province_changes(PROVINCE)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        messages += [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        return messages
    finally:
        consumer.close()


def decoded(settings: Settings, messages: list) -> list[dict]:
    """Events in source order, each checked for signature and key."""
    codec = EventCodec(EmbeddedRegistry())
    events = []
    for message in messages:
        assert signing.verify(message.value(), settings.province_key(PROVINCE))
        event = codec.decode(message.value())[1]
        assert message.key() == event["entity_key"].encode("utf-8")
        events.append(event)
    return sorted(events, key=lambda e: e["source"]["seq"])


def run_to_end(settings: Settings, config: DbAdapterConfig, **kwargs):
    adapter = DbAdapter(settings, config, **kwargs)
    try:
        return adapter.run_once(timeout=60), Position.from_json(adapter.store.meta("acked_position"))
    finally:
        adapter.close()


def test_sqlite_inserts_updates_and_soft_deletes_arrive_as_signed_changes(settings, tmp_path):
    path = tmp_path / "province.db"
    url = make_sqlite(path, [vehicle(i, "2024-05-01 08:00:00") for i in (1, 2, 3)])
    report, _ = run_to_end(settings, vehicle_config(url))
    assert (report.read, report.spooled, report.pending) == (3, 3, 0)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE vehicles SET status = 'suspended', updated_at = '2024-05-02 09:00:00' WHERE id = 1")
        db.execute("UPDATE vehicles SET deleted = 1, updated_at = '2024-05-02 09:00:01' WHERE id = 2")
        db.execute("INSERT INTO vehicles (id, plate, plate_color, vehicle_class, operator_uscc, status, updated_at) "
                   "VALUES (4, '粤B00004', 2, 'truck', '91350100M000100Y43', 'active', '2024-05-02 09:00:02')")
    report, acked = run_to_end(settings, vehicle_config(url))
    assert report.spooled == 3 and acked == Position("2024-05-02 09:00:02", 4)

    events = decoded(settings, consume(settings, expected=6))
    assert [(e["op"], e["entity_key"]) for e in events] == [
        ("c", "vehicle:粤B00001:2"), ("c", "vehicle:粤B00002:2"), ("c", "vehicle:粤B00003:2"),
        ("u", "vehicle:粤B00001:2"), ("d", "vehicle:粤B00002:2"), ("c", "vehicle:粤B00004:2")]
    assert events[3]["before"]["status"] == "active" and events[3]["after"]["status"] == "suspended"
    assert events[4]["after"] is None and events[4]["before"]["plate"] == "粤B00002"
    assert [e["source"]["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e["source"]["table"] == "vehicles" and e["source"]["province"] == PROVINCE for e in events)
    assert events[3]["ts_ms"] == dt.datetime(2024, 5, 2, 9, tzinfo=dt.timezone.utc)
    assert len({e["event_id"] for e in events}) == 6


def test_postgres_table_polled_by_timestamp_picks_up_inserts_updates_and_deletes(settings, postgres, unique):
    import psycopg

    table = f"vehicles_{unique}"
    with psycopg.connect(postgres.url, autocommit=True) as db:
        db.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, plate text, plate_color int, vehicle_class text, "
                   f"operator_uscc text, status text, tonnage_kg numeric, updated_at timestamptz, "
                   f"is_deleted boolean NOT NULL DEFAULT false)")
        db.execute(f"INSERT INTO {table} VALUES (1, '粤A00001', 2, 'dangerous_goods', '91350100M000100Y43', 'active', "
                   f"18000, '2024-05-01 08:00+08'), (2, '粤A00002', 2, 'truck', '91350100M000100Y43', 'active', NULL, "
                   f"'2024-05-01 08:00+08')")
        config = vehicle_config(postgres.url, table=table, deleted_column="is_deleted")
        assert run_to_end(settings, config)[0].spooled == 2
        db.execute(f"UPDATE {table} SET tonnage_kg = 20000, updated_at = '2024-05-02 08:00+08' WHERE id = 1")
        db.execute(f"UPDATE {table} SET is_deleted = true, updated_at = '2024-05-02 08:00+08' WHERE id = 2")
        report, acked = run_to_end(settings, config)
    assert report.spooled == 2 and acked.key == 2
    assert acked.cursor == dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc)

    events = decoded(settings, consume(settings, expected=4))
    assert [(e["op"], e["entity_key"]) for e in events] == [
        ("c", "vehicle:粤A00001:2"), ("c", "vehicle:粤A00002:2"), ("u", "vehicle:粤A00001:2"), ("d", "vehicle:粤A00002:2")]
    assert events[2]["after"]["tonnage_kg"] == 20000 and events[2]["before"]["tonnage_kg"] == 18000


def test_postgres_outbox_carries_creates_updates_and_hard_deletes(settings, postgres, unique):
    import psycopg

    table = f"outbox_{unique}"
    first = {"uscc": "91350100M000100Y43", "name": "闽运输", "region_code": "350100", "status": "active"}
    with psycopg.connect(postgres.url, autocommit=True) as db:
        db.execute(f"CREATE TABLE {table} (outbox_id bigserial PRIMARY KEY, entity_id text NOT NULL, "
                   f"op char(1) NOT NULL, payload jsonb)")
        for op, payload in [("c", first), ("u", {**first, "status": "suspended"}), ("d", None)]:
            db.execute(f"INSERT INTO {table} (entity_id, op, payload) VALUES (%s, %s, %s)",
                       ("op-1", op, json.dumps(payload) if payload else None))
        config = DbAdapterConfig(province=PROVINCE, url=postgres.url, table=table, entity="operator",
                                 key="entity_id", cursor="outbox_id", outbox=True)
        report, acked = run_to_end(settings, config)
    assert report.spooled == 3 and acked == Position(3, "op-1")

    events = decoded(settings, consume(settings, expected=3))
    assert [(e["op"], (e["after"] or e["before"])["status"]) for e in events] == [
        ("c", "active"), ("u", "suspended"), ("d", "suspended")]
    assert {e["entity_key"] for e in events} == {"operator:91350100M000100Y43"}


def test_broker_unreachable_keeps_a_bounded_spool_and_loses_nothing_when_it_returns(tmp_path, unique):
    url = make_sqlite(tmp_path / "province.db", [vehicle(i, f"2024-05-01 08:00:{i:02d}") for i in range(1, 13)])
    port = free_port()
    settings = Settings(data_dir=tmp_path / "roadx", bootstrap_servers=f"127.0.0.1:{port}", provinces=(PROVINCE,),
                        topic_prefix=f"t{unique}.")
    adapter = DbAdapter(settings, vehicle_config(url, batch_size=5, spool_limit=5))
    broker = None
    try:
        down = adapter.cycle(wait=0.5)
        assert (down.read, down.pending) == (5, 5) and down.broker_error
        assert adapter.cycle(wait=0.2).read == 0  # the spool is full: reading waits for the broker
        assert Position.from_json(adapter.store.meta("acked_position")) is None

        broker = EmbeddedBroker.start(log_path=tmp_path / "tansu.log", port=port)
        create_topics(settings.bootstrap_servers, exchange_topics(settings))
        report = adapter.run_once(timeout=90)
        assert report.read == 7 and report.pending == 0
        assert Position.from_json(adapter.store.meta("acked_position")) == Position("2024-05-01 08:00:12", 12)

        events = decoded(settings, consume(settings, expected=12))
        assert sorted(e["entity_key"] for e in events) == sorted(f"vehicle:粤B{i:05d}:2" for i in range(1, 13))
        assert len({e["event_id"] for e in events}) == 12
    finally:
        adapter.close()
        if broker is not None:
            broker.stop()


def test_events_delivered_but_not_acknowledged_before_a_crash_are_resent_with_the_same_event_id(settings, tmp_path):
    url = make_sqlite(tmp_path / "province.db", [vehicle(i, "2024-05-01 08:00:00") for i in range(1, 21)])
    dead_broker = {"bootstrap.servers": f"127.0.0.1:{free_port()}"}
    crashed = DbAdapter(settings, vehicle_config(url), kafka_conf=dead_broker)
    try:
        assert crashed.read().spooled == 20
        # what its producer would have delivered just before the process died, acknowledgements unrecorded
        delivered = Producer(settings.kafka_conf())
        for entry in crashed.store.pending(100):
            delivered.produce(entry.topic, entry.value, entry.key)
        assert delivered.flush(30) == 0
    finally:
        crashed.close()

    report, acked = run_to_end(settings, vehicle_config(url))
    assert report.read == 0 and report.acked == 20 and acked == Position("2024-05-01 08:00:00", 20)
    messages = consume(settings, expected=40)
    values = collections.Counter(m.value() for m in messages)
    assert len(messages) == 40 and set(values.values()) == {2}  # each event twice, byte for byte
    ids = collections.Counter(e["event_id"] for e in decoded(settings, messages))
    assert len(ids) == 20 and set(ids.values()) == {2}


def test_adapter_killed_mid_run_and_restarted_delivers_every_row(settings, tmp_path):
    url = make_sqlite(tmp_path / "province.db", [vehicle(i, f"2024-05-01 08:{i // 60:02d}:{i % 60:02d}")
                                                 for i in range(1, 3001)])
    port = free_port()
    down = settings.with_overrides(bootstrap_servers=f"127.0.0.1:{port}")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}, **to_environ(down)}
    command = [sys.executable, "-m", "deploy.cli", "produce", "db", "--province", PROVINCE, "--url", url,
               "--table", "vehicles", "--entity", "vehicle", "--key", "id", "--cursor", "updated_at",
               "--deleted-column", "deleted", "--batch", "100", "--once", "--timeout", "300"]
    config = vehicle_config(url, batch_size=100)
    state = settings.data_dir / "adapters" / f"{config.state_name}.db"
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while spooled(state) < 1000 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert process.poll() is None, "the adapter stopped before it was killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    waiting = spooled(state)
    assert waiting >= 1000

    broker = EmbeddedBroker.start(log_path=tmp_path / "tansu.log", port=port)
    try:
        create_topics(down.bootstrap_servers, exchange_topics(down))
        report, acked = run_to_end(down, config)
        assert report.acked == 3000 and report.read == 3000 - waiting
        assert acked == Position("2024-05-01 08:50:00", 3000)
        events = decoded(down, consume(down, expected=3000))
    finally:
        broker.stop()
    assert sorted(e["entity_key"] for e in events) == sorted(f"vehicle:粤B{i:05d}:2" for i in range(1, 3001))
    assert [e["source"]["seq"] for e in events] == list(range(1, 3001))
    assert all(e["op"] == "c" for e in events)


def test_continuous_mode_picks_up_new_rows_until_terminated(settings, tmp_path):
    path = tmp_path / "province.db"
    url = make_sqlite(path, [vehicle(1, "2024-05-01 08:00:00")])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}, **to_environ(settings)}
    command = [sys.executable, "-m", "deploy.cli", "produce", "db", "--province", PROVINCE, "--url", url,
               *VEHICLE_ARGS, "--interval", "0.2"]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert len(consume(settings, expected=1)) == 1
        with sqlite3.connect(path) as db:
            db.execute("UPDATE vehicles SET seats = 7, updated_at = '2024-05-01 08:01:00' WHERE id = 1")
        events = decoded(settings, consume(settings, expected=2))
        assert [(e["op"], e["after"]["seats"]) for e in events] == [("c", 5), ("u", 7)]
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()


def spooled(state: Path) -> int:
    """Events waiting in an adapter's spool, read from outside the adapter."""
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM entries").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def run_cli(monkeypatch, settings: Settings, *args: str) -> int:
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    return cli.main(["produce", "db", "--province", PROVINCE, *args])


VEHICLE_ARGS = ("--table", "vehicles", "--entity", "vehicle", "--key", "id", "--cursor", "updated_at")


@pytest.mark.parametrize("args, message", [
    (("--url", "mysql://h/db", *VEHICLE_ARGS), "unsupported database URL"),
    (("--url", "sqlite:////no/such/dir/x.db", *VEHICLE_ARGS), "cannot open SQLite database"),
    (("--url", "{db}", "--table", "lorries", *VEHICLE_ARGS[2:]), "table 'lorries' cannot be read"),
    (("--url", "{db}", *VEHICLE_ARGS[:-1], "version"), "no column 'version'"),
    (("--url", "{db}", *VEHICLE_ARGS[:3], "operator", *VEHICLE_ARGS[4:]), "required operator field"),
    (("--url", "{db}", *VEHICLE_ARGS, "--entity", "truck"), "unknown entity 'truck'"),
    (("--url", "{db}", *VEHICLE_ARGS, "--map", "plate"), "expected COLUMN=FIELD"),
])
def test_bad_source_settings_fail_with_a_clear_error(monkeypatch, capsys, settings, tmp_path, args, message):
    url = make_sqlite(tmp_path / "province.db", [])
    assert run_cli(monkeypatch, settings, *(a.replace("{db}", url) for a in args), "--once") == 2
    assert message in capsys.readouterr().err


def test_null_cursors_and_rows_missing_required_fields_are_reported_and_the_rest_flows(
        monkeypatch, capsys, settings, tmp_path):
    rows = [vehicle(1, "2024-05-01"), vehicle(2, None), vehicle(3, "2024-05-02", status=None), vehicle(4, "2024-05-03")]
    url = make_sqlite(tmp_path / "province.db", rows)
    assert run_cli(monkeypatch, settings, "--url", url, *VEHICLE_ARGS, "--once") == 1
    out, err = capsys.readouterr()
    assert "read 3 rows, 2 events spooled, 2 acknowledged, 0 waiting, 1 rows rejected" in out
    assert "rejected: row 3: field 'status': required" in err
    assert "1 rows have a NULL updated_at or id and are never read (keys: 2)" in err
    report_file, = (settings.data_dir / "adapters").glob("*.errors.jsonl")
    reported = [json.loads(line) for line in report_file.read_text("utf-8").splitlines()]
    assert [(r["key"], r["field"], r["rule"]) for r in reported] == [("3", "status", "required")]
    assert reported[0]["row"]["plate"] == "粤B00003"

    events = decoded(settings, consume(settings, expected=2))
    assert [e["entity_key"] for e in events] == ["vehicle:粤B00001:2", "vehicle:粤B00004:2"]


def test_identifiers_of_database_rows_are_sent_canonical_and_each_rewrite_is_noted(settings, tmp_path):
    row = (1, "粤b 00001", 2, "truck", "９1350100M000100Y43", "active", 5, "2024-05-01")
    url = make_sqlite(tmp_path / "province.db", [row, vehicle(2, "2024-05-02")])
    report, _position = run_to_end(settings, vehicle_config(url))
    assert (report.spooled, report.rejected, report.normalised) == (2, [], 2)

    events = decoded(settings, consume(settings, expected=2))
    assert [e["entity_key"] for e in events] == ["vehicle:粤B00001:2", "vehicle:粤B00002:2"]
    assert events[0]["after"]["operator_uscc"] == "91350100M000100Y43"
    report_file, = (settings.data_dir / "adapters").glob("*.errors.jsonl")
    noted = [json.loads(line) for line in report_file.read_text("utf-8").splitlines()]
    assert [(n["key"], n["field"], n["rule"], n["raw"], n["value"]) for n in noted] == [
        ("1", "plate", "normalised", "粤b 00001", "粤B00001"),
        ("1", "operator_uscc", "normalised", "９1350100M000100Y43", "91350100M000100Y43")]
