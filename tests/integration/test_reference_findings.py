"""A province's quality scores do not depend on the order the hub read its partitions in.

The same operators and vehicles go through the real stream stage in two orders (operators
first; vehicles first, as when a vehicle's partition is read before its operator's), the
outputs through the sink's own planning into real chDB, and the monthly report judges the
``unknown_operator`` findings: withdrawn when the operator arrived within the grace period,
provisional while it runs, final after it. Both orders give the same scores.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from stdnum.cn import uscc

from schemas import contract, signing
from schemas.codec import EventCodec, FindingCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings
from schemas.pii import PiiMasker
from sinks.report import load_report
from sinks.sink import COLUMNS, TopicRoles, plan_batch
from sinks.writer import NoLedger, write_plan
from sinks.store import ensure_schema, open_store
from streams.pipeline import Inbound, StageContext, process_batch

pytestmark = pytest.mark.integration

CODEC = EventCodec(EmbeddedRegistry())
FINDINGS = FindingCodec(EmbeddedRegistry())
KEY = signing.mac(b"test-master", "44".encode())
TS_MS = 1_717_200_000_000  # June 2024
JUNE = dt.date(2024, 6, 1)
GRACE = 60


def credit_code(n: int) -> str:
    body = f"91440300MA5F{n:04d}X"
    return body + uscc.calc_check_digit(body)


def event(entity_type, record, seq):
    return {"event_id": str(uuid.uuid4()), "op": "c", "entity_type": entity_type,
            "entity_key": contract.entity_key(entity_type, record), "before": None, "after": record,
            "source": {"province": "44", "system": "yunzheng", "table": entity_type, "seq": seq, "snapshot": False},
            "ts_ms": TS_MS}


def operator(n):
    return {"uscc": credit_code(n), "name": f"深圳运输{n}", "region_code": "440300", "permit_no": f"P{n}",
            "business_scope": "货运", "status": "active", "legal_rep_id_number": None, "contact_phone": None}


def vehicle(n, operator_n):
    return {"plate": f"粤B{n:05d}", "plate_color": 2, "vin": f"VIN{n:014d}", "vehicle_class": "truck",
            "operator_uscc": credit_code(operator_n), "transport_cert_no": f"T{n}", "seats": None,
            "tonnage_kg": 18000, "status": "active"}


def exchange_messages(names):
    """Three operators on partition 1; on partition 0 their vehicles and one whose operator never comes."""
    operators = [Inbound(names.province_changes("44"), 1, i, b"k", CODEC.encode(event("operator", operator(i), i), KEY))
                 for i in range(3)]
    vehicles = [Inbound(names.province_changes("44"), 0, i, b"k",
                        CODEC.encode(event("vehicle", vehicle(i, operator_n), i), KEY))
                for i, operator_n in enumerate((0, 1, 2, 99))]
    return operators, vehicles


class Received:
    def __init__(self, topic, offset, value):
        self._topic, self._offset, self._value = topic, offset, value

    def topic(self): return self._topic
    def partition(self): return 0
    def offset(self): return self._offset
    def value(self): return self._value
    def key(self): return None
    def headers(self): return None
    def error(self): return None


def store_outputs(store, settings, database, batch, seconds_ago=0):
    """The stage's outputs of ``batch`` (judged ``seconds_ago``), stored by the sink's planning and writing."""
    ctx = StageContext(CODEC, settings.topics, {"44": (KEY,)}, frozenset({"44"}))
    result = process_batch(batch, ctx, {}, now_ms=int((time.time() - seconds_ago) * 1000))
    assert sum(n for (kind, _p), n in result.counts.items() if kind == "rejected") == 0
    offsets: dict[str, int] = {}
    received = []
    for out in result.outputs:
        offsets[out.topic] = offsets.get(out.topic, -1) + 1
        received.append(Received(out.topic, offsets[out.topic], out.value))
    plan = plan_batch(received, TopicRoles.from_settings(settings), CODEC.decode, PiiMasker(b"k" * 32),
                      FINDINGS.decode)
    ensure_schema(store, database)
    assert write_plan(store, database, plan.inserts, COLUMNS, NoLedger()) == []
    return result


@pytest.fixture
def store(tmp_path):
    client = open_store(Settings(data_dir=tmp_path))
    yield client
    client.close()


def test_scores_are_the_same_whichever_partition_the_hub_read_first(store, tmp_path):
    settings = Settings(data_dir=tmp_path, provinces=("44",), topic_prefix="r.")
    operators, vehicles = exchange_messages(settings.topics)
    first = store_outputs(store, settings, "operators_first", operators + vehicles)
    second = store_outputs(store, settings, "vehicles_first", vehicles + operators)
    raised = [sum(n for (_p, dimension, _s), n in r.findings.items() if dimension == "relational")
              for r in (first, second)]
    assert raised == [1, 4], "reading vehicles first raises a provisional finding for each of them"

    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=GRACE + 1)
    reports = {db: load_report(store, db, JUNE, ["44"], as_of=later, grace_seconds=GRACE).at("44")
               for db in ("operators_first", "vehicles_first")}
    a, b = reports["operators_first"], reports["vehicles_first"]
    assert a.total == b.total == 7
    assert a.score("relational") == b.score("relational") == pytest.approx(1 - 1 / 7)
    assert {d: a.score(d) for d in ("completeness", "conformity", "relational")} == \
           {d: b.score(d) for d in ("completeness", "conformity", "relational")}
    assert (a.withdrawn, b.withdrawn, a.provisional, b.provisional) == (0, 3, 0, 0)


def test_a_reference_finding_is_provisional_until_the_grace_period_has_passed(store, tmp_path):
    settings = Settings(data_dir=tmp_path, provinces=("44",), topic_prefix="r.")
    operators, vehicles = exchange_messages(settings.topics)
    store_outputs(store, settings, "roadx", vehicles + operators)
    now = load_report(store, "roadx", JUNE, ["44"], grace_seconds=GRACE).at("44")
    assert (now.withdrawn, now.provisional) == (3, 1)
    assert now.score("relational") == 1.0, "a provisional finding does not count yet"
    after = load_report(store, "roadx", JUNE, ["44"], grace_seconds=GRACE,
                        as_of=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=GRACE + 1)).at("44")
    assert (after.withdrawn, after.provisional, after.findings_by_dimension.get("relational")) == (3, 0, 1)


def test_an_entity_that_arrives_after_the_grace_period_leaves_the_finding_final(store, tmp_path):
    settings = Settings(data_dir=tmp_path, provinces=("44",), topic_prefix="r.")
    operators, vehicles = exchange_messages(settings.topics)
    store_outputs(store, settings, "roadx", vehicles, seconds_ago=30)  # judged 30 s before the operators came
    store_outputs(store, settings, "roadx", operators)
    stats = load_report(store, "roadx", JUNE, ["44"], grace_seconds=10).at("44")
    assert (stats.withdrawn, stats.provisional, stats.findings_by_dimension.get("relational")) == (0, 0, 4)
