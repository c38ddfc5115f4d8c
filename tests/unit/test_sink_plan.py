"""The sink's pure decisions: rows per table, dedup tokens, and commit after insert."""

from __future__ import annotations

import datetime as dt
import io
import types
import uuid

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from fastavro import schemaless_writer

from schemas import contract, topics as headers
from schemas.codec import EventCodec, ServiceRequestCodec
from schemas.registry import EmbeddedRegistry
from sinks.errors import StoreError
from schemas.pii import PiiMasker
from sinks.inserts import dedup_token
from sinks.sink import TopicRoles, plan_batch, write_then_commit

CODEC = EventCodec(EmbeddedRegistry())
PII = PiiMasker(b"k" * 32)
ROLES = TopicRoles("national.changes", "national.dlq", {"xprov.11.inbound": "11", "xprov.44.inbound": "44"})


def vehicle_event(seq: int = 1) -> bytes:
    record = {"plate": "粤B12345", "plate_color": 2, "vin": None, "vehicle_class": "truck",
              "operator_uscc": "91350100M000100Y43", "transport_cert_no": None, "seats": None,
              "tonnage_kg": 18000, "status": "active"}
    return CODEC.encode({
        "event_id": str(uuid.uuid4()), "op": "c", "entity_type": "vehicle", "entity_key": "vehicle:粤B12345:2",
        "before": None, "after": record,
        "source": {"province": "44", "system": "yz", "table": "vehicle", "seq": seq, "snapshot": False},
        "ts_ms": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
    })


def case_event() -> bytes:
    record = {"case_no": "44-1", "region_code": "440300", "stage": "filed", "violation_code": "1",
              "occurred_at": 1_700_000_000_000, "involved_plate": "京A12345", "involved_operator_uscc": None,
              "involved_id_number": None, "penalty_cents": None}
    return CODEC.encode({
        "event_id": str(uuid.uuid4()), "op": "c", "entity_type": "case", "entity_key": "case:44-1",
        "before": None, "after": record,
        "source": {"province": "44", "system": "yz", "table": "case", "seq": 1, "snapshot": False},
        "ts_ms": 1_700_000_000_000,
    })


class Message:
    def __init__(self, topic, partition, offset, value, headers=None, error=None):
        self._t, self._p, self._o, self._v, self._h, self._e = topic, partition, offset, value, headers, error

    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
    def value(self): return self._v
    def key(self): return None
    def headers(self): return self._h
    def error(self): return self._e


def test_same_offset_range_gives_the_same_token():
    assert dedup_token("change_log", "national.changes", 0, 10, 19) == dedup_token("change_log", "national.changes", 0, 10, 19)


@pytest.mark.parametrize("other", [
    ("change_log", "national.changes", 0, 10, 20),
    ("change_log", "national.changes", 0, 11, 19),
    ("change_log", "national.changes", 1, 10, 19),
    ("dlq", "national.changes", 0, 10, 19),
    ("change_log", "x.national.changes", 0, 10, 19),
])
def test_different_ranges_give_different_tokens(other):
    assert dedup_token(*other) != dedup_token("change_log", "national.changes", 0, 10, 19)


def rows_per_table(plan):
    counts = {}
    for insert in plan.inserts:
        counts[insert.table] = counts.get(insert.table, 0) + len(insert.rows)
    return counts


def test_plan_groups_rows_per_table_and_partition():
    msgs = [Message("national.changes", 0, o, vehicle_event(o)) for o in (5, 6, 7)]
    msgs += [Message("national.changes", 1, 3, vehicle_event())]
    msgs += [Message("national.dlq", 0, 0, b"bad", [(headers.DLQ_RULE, b"not_framed")])]
    msgs += [Message("xprov.11.inbound", 2, 8, case_event(), [(headers.ROUTED_REASON, b"plate")])]
    plan = plan_batch(msgs, ROLES, CODEC.decode, PII)
    assert rows_per_table(plan) == {"change_log": 4, "dlq": 1, "routed_cases": 1}
    tokens = {(i.table, i.topic, i.partition): i.token for i in plan.inserts}
    assert tokens[("change_log", "national.changes", 0)] == dedup_token("change_log", "national.changes", 0, 5, 7)
    assert tokens[("change_log", "national.changes", 1)] == dedup_token("change_log", "national.changes", 1, 3, 3)
    assert plan.next_offsets == {("national.changes", 0): 8, ("national.changes", 1): 4,
                                 ("national.dlq", 0): 1, ("xprov.11.inbound", 2): 9}
    assert plan.consumed == 6


def test_same_messages_plan_the_same_tokens():
    msgs = [Message("national.changes", 0, o, vehicle_event(o)) for o in (5, 6)]
    first = [i.token for i in plan_batch(msgs, ROLES, CODEC.decode, PII).inserts]
    again = [i.token for i in plan_batch(msgs, ROLES, CODEC.decode, PII).inserts]
    assert first == again


@pytest.mark.parametrize("value, rule_word", [
    (b"plain text", "not_framed"),
    (b"\x00\x00\x00\x00\x09avro?", "unknown_schema_id"),
    (None, "not_framed"),
])
def test_undecodable_change_becomes_a_dead_letter_and_the_rest_flows(value, rule_word):
    msgs = [Message("national.changes", 0, 1, vehicle_event()), Message("national.changes", 0, 2, value),
            Message("national.changes", 0, 3, vehicle_event())]
    plan = plan_batch(msgs, ROLES, CODEC.decode, PII)
    assert rows_per_table(plan) == {"change_log": 2, "dlq": 1}
    dead = next(i for i in plan.inserts if i.table == "dlq").rows[0]
    assert dead[6] == "sink_undecodable"
    assert "national.changes[0]@2" in dead[7] and rule_word in dead[7]
    assert plan.next_offsets == {("national.changes", 0): 4}


def test_undecodable_inbound_case_becomes_a_dead_letter():
    plan = plan_batch([Message("xprov.44.inbound", 0, 0, b"junk")], ROLES, CODEC.decode, PII)
    assert rows_per_table(plan) == {"dlq": 1}


class Err:
    def fatal(self): return False
    def __str__(self): return "transport"


AUDIT_ROLES = TopicRoles("national.changes", "national.dlq", {}, "national.quality", "national.audit")
REQUESTS = ServiceRequestCodec(EmbeddedRegistry())


def audit_record(**changes) -> dict:
    return {"request_id": str(uuid.uuid4()), "party": "44", "credential_id": "0a1b2c3d", "method": "GET",
            "endpoint": "/v1/vehicles/{plate}", "asked": ["粤B12345"], "status": 200, "outcome": "found",
            "records": 1, "latency_ms": 3.5, "ts": dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc), **changes}


def test_the_audit_topic_is_subscribed_and_its_requests_become_service_request_rows():
    assert AUDIT_ROLES.topics == ["national.changes", "national.dlq", "national.quality", "national.audit"]
    msgs = [Message("national.audit", 0, o, REQUESTS.encode(audit_record())) for o in (3, 4)]
    plan = plan_batch(msgs, AUDIT_ROLES, CODEC.decode, PII, decode_request=REQUESTS.decode)
    assert rows_per_table(plan) == {"service_requests": 2}
    (insert,) = plan.inserts
    assert insert.token == dedup_token("service_requests", "national.audit", 0, 3, 4)
    assert plan.next_offsets == {("national.audit", 0): 5}


def test_a_malformed_or_contract_breaking_request_is_a_dead_letter_and_the_rest_is_stored():
    clear = io.BytesIO()  # written without the codec's checks: an ID number in clear
    clear.write(REQUESTS.encode(audit_record())[:5])
    schemaless_writer(clear, contract.service_request_schema(), audit_record(asked=["11010519491231002X"]))
    msgs = [Message("national.audit", 0, 0, REQUESTS.encode(audit_record())),
            Message("national.audit", 0, 1, b"\x00\x00\x00\x00\x01junk"),
            Message("national.audit", 0, 2, clear.getvalue()),
            Message("national.audit", 0, 3, REQUESTS.encode(audit_record()))]
    plan = plan_batch(msgs, AUDIT_ROLES, CODEC.decode, PII, decode_request=REQUESTS.decode)
    assert rows_per_table(plan) == {"service_requests": 2, "dlq": 2}
    dead = next(i for i in plan.inserts if i.table == "dlq").rows
    assert [(row[5], row[6]) for row in dead] == [(1, "sink_undecodable"), (2, "sink_invalid_event")]
    assert "asked[0] holds an ID or mobile number in clear" in dead[1][7]
    assert "11010519491231002X" not in repr(dead)
    assert plan.next_offsets == {("national.audit", 0): 4}


def test_consumer_errors_are_skipped_and_not_committed():
    plan = plan_batch([Message("national.changes", 0, -1, None, error=Err())], ROLES, CODEC.decode, PII)
    assert plan.inserts == [] and plan.next_offsets == {} and plan.consumed == 0


class Store:
    """Records inserts; fails the first ``failures`` calls."""

    def __init__(self, log, failures=0):
        self.log, self.failures = log, failures
        self.described: list[str] = []

    def create_insert_context(self, table, column_names, database):
        self.described.append(table)
        return types.SimpleNamespace(column_types=[f"type of {name}" for name in column_names])

    def insert(self, table, rows, column_names, database, settings, column_types):
        assert column_types == [f"type of {name}" for name in column_names]
        if self.failures:
            self.failures -= 1
            raise DatabaseError("Code: 241. MEMORY_LIMIT_EXCEEDED")
        self.log.append(("insert", table, settings["insert_deduplication_token"]))


class Consumer:
    def __init__(self, log):
        self.log = log

    def commit(self, offsets, asynchronous):
        self.log.append(("commit", sorted((tp.topic, tp.partition, tp.offset) for tp in offsets), asynchronous))


def a_plan():
    msgs = [Message("national.changes", 0, 0, vehicle_event()), Message("national.dlq", 0, 4, b"x")]
    return plan_batch(msgs, ROLES, CODEC.decode, PII)


def test_offsets_are_committed_synchronously_after_every_insert():
    log: list = []
    write_then_commit(Store(log), Consumer(log), a_plan(), "roadx")
    assert [entry[0] for entry in log] == ["insert", "insert", "commit"]
    assert log[-1] == ("commit", [("national.changes", 0, 1), ("national.dlq", 0, 5)], False)


def test_failed_insert_is_retried_with_the_same_token():
    log: list = []
    write_then_commit(Store(log, failures=2), Consumer(log), a_plan(), "roadx", sleep=lambda s: None)
    assert [entry[0] for entry in log] == ["insert", "insert", "commit"]


def test_the_store_is_asked_for_a_tables_column_types_once_not_before_every_insert():
    log: list = []
    store = Store(log, failures=1)
    for _ in range(3):
        write_then_commit(store, Consumer(log), a_plan(), "roadx", sleep=lambda s: None)
    assert sorted(store.described) == ["change_log", "dlq"]
    assert [entry[0] for entry in log].count("insert") == 6


def test_insert_failing_every_retry_raises_and_commits_nothing():
    log: list = []
    with pytest.raises(StoreError, match="failed 3 times.*MEMORY_LIMIT"):
        write_then_commit(Store(log, failures=99), Consumer(log), a_plan(), "roadx", attempts=3, sleep=lambda s: None)
    assert log == []


def sink_metric(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_rows_and_latencies_are_counted_once_the_store_acknowledged_them():
    rows, inserts = sink_metric("roadx_sink_rows_total", table="change_log"), sink_metric("roadx_sink_insert_seconds_count")
    latencies = sink_metric("roadx_sink_source_to_store_seconds_count")
    with pytest.raises(StoreError):
        write_then_commit(Store([], failures=99), Consumer([]), a_plan(), "roadx", attempts=2, sleep=lambda s: None)
    assert sink_metric("roadx_sink_rows_total", table="change_log") == rows
    write_then_commit(Store([], failures=1), Consumer([]), a_plan(), "roadx", sleep=lambda s: None)
    assert sink_metric("roadx_sink_rows_total", table="change_log") == rows + 1
    assert sink_metric("roadx_sink_insert_seconds_count") == inserts + 2  # change_log and dlq
    assert sink_metric("roadx_sink_source_to_store_seconds_count") == latencies + 1  # dead letters have no source time
