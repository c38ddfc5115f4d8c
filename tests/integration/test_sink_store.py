"""The store's schema and analysts' tables against real chDB and the real broker.

Migrations run twice change nothing and a column added to a populated table keeps its
rows; a row the store refuses becomes a dead letter while its batch is stored (also when
its table's groups of several partitions go in one insert); quality
findings land in ``quality_findings`` and the aggregates count exactly, through retries
and a full replay; no table holds a clear ID or phone number.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from confluent_kafka import Producer

from schemas import topics as headers
from schemas.codec import FindingCodec
from schemas.registry import EmbeddedRegistry
from sinks.migrations import MIGRATIONS, Migration, apply_migrations
from schemas.pii import PiiMasker
from sinks.rows import change_log_row, dlq_row
from sinks.inserts import TableInsert
from sinks.sink import COLUMNS
from sinks.writer import RULE_REFUSED, StoreLedger, insert_rows, write_plan
from sinks.store import FreedMemoryRelease, ensure_schema

from test_sink import CODEC, ID, OPERATOR, PRACTITIONER, TS, event, exchange, publish, scalar, sink_until_drained, store_of  # noqa: F401

pytestmark = pytest.mark.integration

FINDINGS = FindingCodec(EmbeddedRegistry())
PHONE = "13812345678"
CLEAR = re.compile(r"(?<![0-9])(?:[1-9][0-9]{16}[0-9Xx]|1[3-9][0-9]{9})(?![0-9])")


def test_migrations_applied_twice_change_nothing(exchange, store_of):
    store = store_of(exchange)
    db = exchange.clickhouse_database
    assert ensure_schema(store, db) == [m.version for m in MIGRATIONS]
    tables = store.query(f"SHOW TABLES FROM {db}").result_rows
    assert ensure_schema(store, db) == []
    assert store.query(f"SHOW TABLES FROM {db}").result_rows == tables
    assert scalar(store, f"SELECT count() FROM {db}.schema_migrations") == len(MIGRATIONS)


def test_migration_adding_an_optional_field_keeps_the_stored_rows(exchange, store_of):
    store = store_of(exchange)
    db = exchange.clickhouse_database
    ensure_schema(store, db)
    pii = PiiMasker(exchange.pii_key())
    rows = [change_log_row(event("operator", "c", OPERATOR, s), CODEC.schema_id, "n", 0, s, pii) for s in (1, 2, 3)]
    insert_rows(store, db, TableInsert("change_log", "n", 0, 1, 3, rows), COLUMNS["change_log"])
    before = store.query(f"SELECT event_id, after FROM {db}.change_log ORDER BY offset").result_rows

    # A new optional field of the operator schema, say ``fleet_size``: a column with a
    # default on the log, and the current view exposing it from ``after``.
    add_field = Migration(
        MIGRATIONS[-1].version + 1, "operator.fleet_size (optional)", (
            "ALTER TABLE {db}.change_log ADD COLUMN IF NOT EXISTS fleet_size Nullable(Int32) "
            "MATERIALIZED JSONExtract(after, 'fleet_size', 'Nullable(Int32)')",
            "CREATE OR REPLACE VIEW {db}.current_operator_fleets AS SELECT entity_key, fleet_size "
            "FROM {db}.change_log FINAL WHERE entity_type = 'operator'",
        ))
    assert apply_migrations(store, db, (*MIGRATIONS, add_field)) == [add_field.version]
    assert apply_migrations(store, db, (*MIGRATIONS, add_field)) == []

    assert store.query(f"SELECT event_id, after FROM {db}.change_log ORDER BY offset").result_rows == before
    assert store.query(f"SELECT fleet_size FROM {db}.change_log").result_rows == [(None,)] * 3
    newer = change_log_row(event("operator", "u", {**OPERATOR, "fleet_size": 12}, 4), CODEC.schema_id, "n", 0, 4, pii)
    insert_rows(store, db, TableInsert("change_log", "n", 0, 4, 4, [newer]), COLUMNS["change_log"])
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 4
    assert scalar(store, f"SELECT max(fleet_size) FROM {db}.current_operator_fleets") == 12


def a_finding(n, dimension, severity, *, event_id=None, message="ok"):
    return {"finding_id": f"{event_id or n}/RQ{n:03d}", "rule": f"RQ{n:03d}", "dimension": dimension,
            "severity": severity, "province": "44", "entity_type": "operator",
            "entity_key": f"practitioner:{ID}", "event_id": event_id, "field": None, "message": message,
            "source_topic": "prov.44.changes", "source_partition": 0, "source_offset": n,
            "event_ts_ms": TS, "detected_ms": TS + dt.timedelta(seconds=1)}


def publish_more(settings):
    """A change the store refuses (negative seq), quality findings (one undecodable), a leaky dead letter."""
    names = settings.topics
    refused = event("practitioner", "c", PRACTITIONER, 8)
    refused["source"]["seq"] = -1
    findings = [
        a_finding(1, "completeness", "error", event_id="bad-1", message=f"holder {ID} phone {PHONE} missing"),
        a_finding(2, "completeness", "error", event_id="bad-1"),
        a_finding(3, "conformity", "error", event_id="bad-2"),
        a_finding(4, "relational", "warning", event_id="ok-1"),
    ]
    producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))
    producer.produce(names.national_changes, CODEC.encode(refused), key=b"practitioner:refused")
    for f in findings:
        producer.produce(names.national_quality, FINDINGS.encode(f), key=b"operator:x")
    producer.produce(names.national_quality, b"\x00\x00\x00\x00\x01junk", key=b"operator:y")
    producer.produce(names.national_dlq, f"id={ID};tel={PHONE}".encode(), key=f"practitioner:{ID}".encode(),
                     headers=[(headers.DLQ_RULE, b"RQ001"), (headers.DLQ_REASON, f"bad {ID} {PHONE}".encode())])
    if producer.flush(30) != 0:
        raise RuntimeError("messages not delivered")
    return {"refused": refused, "total": 1 + len(findings) + 1 + 1}


def test_store_refusal_quality_findings_aggregates_and_no_clear_identifiers(exchange, store_of):
    sent, more = publish(exchange), publish_more(exchange)
    sink_until_drained(exchange, sent["total"] + more["total"])
    store = store_of(exchange)
    db = exchange.clickhouse_database

    # The refused row is a dead letter with the store's reason; the rest of its batch is stored.
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 6
    refused = store.query(f"SELECT reason, origin_topic FROM {db}.dlq WHERE rule = 'sink_refused_row'").result_rows
    assert len(refused) == 1 and refused[0][1] == exchange.topics.national_changes
    assert "seq" in refused[0][0] or "column" in refused[0][0]

    assert scalar(store, f"SELECT count() FROM {db}.quality_findings") == 4
    assert scalar(store, f"SELECT count() FROM {db}.dlq WHERE rule = 'sink_undecodable'") == 2
    scores = _scores(store, db)
    # 6 accepted events (6 in 2024-05), rejected = distinct events with an error finding = 2.
    assert scores == {"completeness": pytest.approx(1 - 1 / 8), "conformity": pytest.approx(1 - 1 / 8),
                      "relational": pytest.approx(1.0)}
    aggregates = _aggregates(store, db)
    assert aggregates == {"events": 6, "findings": 4, "cases": 1, "rejected_by_rule": {"RQ001": 1, "RQ002": 1,
                                                                                         "RQ003": 1}}

    # A retried insert (same token) and a full replay by a new group change no aggregate.
    pii = PiiMasker(exchange.pii_key())
    row = change_log_row(event("operator", "c", OPERATOR, 1), CODEC.schema_id, "x", 0, 1, pii)
    insert_rows(store, db, TableInsert("change_log", "x", 0, 1, 1, [row]), COLUMNS["change_log"])
    insert_rows(store, db, TableInsert("change_log", "x", 0, 1, 1, [row]), COLUMNS["change_log"])
    assert scalar(store, f"SELECT sum(events) FROM {db}.events_daily") == 7
    sink_until_drained(exchange, sent["total"] + more["total"], group_id=f"{exchange.topic_prefix}replay")
    assert _aggregates(store, db) == {**aggregates, "events": 7}
    assert scalar(store, f"SELECT count() FROM {db}.dlq") == 5

    leaks = _clear_identifiers(store, db)
    assert leaks == []


def _scores(store, db):
    sql = f"""
    WITH
      (SELECT sum(events) FROM {db}.events_daily WHERE province = '44' AND toStartOfMonth(day) = '2024-05-01')
        AS accepted,
      (SELECT uniqExactMerge(events) FROM {db}.quality_monthly
        WHERE province = '44' AND month = '2024-05-01' AND severity = 'error') AS rejected
    SELECT d.dimension, 1 - ifNull(e.bad, 0) / (accepted + rejected)
    FROM (SELECT arrayJoin(['completeness', 'conformity', 'relational']) AS dimension) AS d
    LEFT JOIN (SELECT dimension, uniqExactMerge(events) AS bad FROM {db}.quality_monthly
               WHERE province = '44' AND month = '2024-05-01' AND severity = 'error' GROUP BY dimension) AS e
      ON d.dimension = e.dimension
    """
    return dict(store.query(sql, settings={"join_use_nulls": 1}).result_rows)


def _aggregates(store, db):
    by_rule = store.query(f"SELECT rule, sum(findings) FROM {db}.quality_monthly WHERE severity = 'error' "
                          "GROUP BY rule ORDER BY rule").result_rows
    return {
        "events": scalar(store, f"SELECT sum(events) FROM {db}.events_daily"),
        "findings": scalar(store, f"SELECT sum(findings) FROM {db}.quality_monthly"),
        "cases": scalar(store, f"SELECT sum(cases) FROM {db}.case_flows_daily"),
        "rejected_by_rule": dict(by_rule),
    }


def _clear_identifiers(store, db):
    """Every text cell of every table (dead letters' raw bytes decoded) holding a clear ID or phone number."""
    columns = store.query(
        f"SELECT table, groupArray(name) FROM system.columns WHERE database = '{db}' AND type LIKE '%String%' "
        f"AND type NOT LIKE 'AggregateFunction%' AND table IN (SELECT name FROM system.tables "
        f"WHERE database = '{db}' AND engine NOT IN ('View', 'MaterializedView')) GROUP BY table").result_rows
    assert {"change_log", "dlq", "routed_cases", "quality_findings", "quality_monthly"} <= {t for t, _ in columns}
    leaks = []
    for table, names in columns:
        result = store.query(f"SELECT {', '.join(names)} FROM {db}.{table}")
        for row in result.result_rows:
            for name, value in zip(result.column_names, row):
                text = "" if value is None else str(value)
                if name == "raw_base64":
                    text = base64.b64decode(value).decode("utf-8", errors="replace")
                if CLEAR.search(text):
                    leaks.append((table, name, text[:80]))
    return leaks


class Received:
    """A message as the sink received it: enough for a dead letter of it."""

    def __init__(self, topic, partition, offset, value):
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
    def value(self): return self._v
    def key(self): return None
    def headers(self): return None


def _groups(pii, refused_at=None):
    """change_log groups of topic ``n``: partitions 0 and 1 at offsets 0..2, partition 2 at 0..1."""
    groups = []
    for partition, offsets in ((0, range(3)), (1, range(3)), (2, range(2))):
        rows, messages = [], []
        for offset in offsets:
            changed = event("operator", "c", OPERATOR, 10 * partition + offset + 1)
            if (partition, offset) == refused_at:
                changed["source"]["seq"] = -1
            rows.append(change_log_row(changed, CODEC.schema_id, "n", partition, offset, pii))
            messages.append(Received("n", partition, offset, CODEC.encode(changed)))
        groups.append(TableInsert("change_log", "n", partition, 0, max(offsets), rows, messages))
    return groups


def _active_parts(store, db, table):
    return scalar(store, f"SELECT count() FROM system.parts WHERE database = '{db}' AND table = '{table}' AND active")


def test_groups_of_several_partitions_are_stored_as_one_part_and_a_replay_adds_nothing(exchange, store_of):
    store = store_of(exchange)
    db = exchange.clickhouse_database
    ensure_schema(store, db)
    groups = _groups(PiiMasker(exchange.pii_key()))
    assert write_plan(store, db, groups, COLUMNS, StoreLedger(store, db)) == []
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 8
    assert _active_parts(store, db, "change_log") == 1

    ledger = StoreLedger(store, db)
    ledger.prefetch("change_log", [("n", 0), ("n", 1), ("n", 2), ("n", 9)])
    assert [ledger.stored_max("change_log", "n", p) for p in (0, 1, 2, 9)] == [2, 2, 1, None]
    assert write_plan(store, db, groups, COLUMNS, ledger) == []
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 8


def test_refused_row_in_one_partition_becomes_a_dead_letter_and_every_other_row_is_stored_once(exchange, store_of):
    store = store_of(exchange)
    db = exchange.clickhouse_database
    ensure_schema(store, db)
    pii = PiiMasker(exchange.pii_key())
    groups = _groups(pii, refused_at=(1, 1))

    def dead_letter(msg, reason):
        return dlq_row(msg, pii, rule=RULE_REFUSED, reason=reason)

    reasons = write_plan(store, db, groups, COLUMNS, StoreLedger(store, db), dead_letter)
    assert len(reasons) == 1 and reasons[0].startswith("n[1]@1: ")
    stored = store.query(f"SELECT partition, offset FROM {db}.change_log ORDER BY partition, offset").result_rows
    assert stored == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    dead = store.query(f"SELECT origin_partition, origin_offset, rule FROM {db}.dlq").result_rows
    assert dead == [(1, 1, RULE_REFUSED)]

    again = write_plan(store, db, groups, COLUMNS, StoreLedger(store, db), dead_letter)
    assert [reason.split(":")[0] for reason in again] == ["n[1]@1"]  # refused again, stored once
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 7
    assert scalar(store, f"SELECT count() FROM {db}.dlq") == 1


def _unused_resident_mib(store) -> float:
    """The engine's resident pages it has not allocated (jemalloc's resident − active), in MiB."""
    stats = scalar(store, "SELECT stats FROM system.jemalloc_stats")
    found = re.search(r"Allocated: \d+, active: (\d+), metadata: \d+.*?, resident: (\d+)", stats)
    assert found, stats[:500]
    active, resident = map(int, found.groups())
    return (resident - active) / 2**20


def test_the_engines_freed_memory_is_handed_back(exchange, store_of):
    store = store_of(exchange)
    db = exchange.clickhouse_database
    ensure_schema(store, db)
    store.command(f"INSERT INTO {db}.change_log (event_id, entity_key, after, topic) "
                  "SELECT generateUUIDv4(), toString(number), repeat('x', 300), 'n' FROM numbers(300000)")
    held = _unused_resident_mib(store)
    assert held > 50, f"the insert left only {held:.0f} MiB freed but resident: nothing to show"
    now = [0.0]
    release = FreedMemoryRelease(store, embedded=True, every=1.0, clock=lambda: now[0])
    now[0] = 1.0
    release.tick()
    assert _unused_resident_mib(store) < held / 4
    assert scalar(store, f"SELECT count() FROM {db}.change_log") == 300_000
