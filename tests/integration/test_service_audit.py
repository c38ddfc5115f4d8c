"""The information service's audit trail against the real embedded broker and a real chDB store.

Service requests encoded with ``ServiceRequestCodec`` and produced to ``national.audit`` land
in ``service_requests`` once (a duplicate produced by the service collapses, a full replay by
a new consumer group adds nothing); an undecodable or contract-breaking message there becomes
a dead letter while the rest of its batch is stored; the monthly report counts each party's
requests by outcome, with distinct endpoints and latency quantiles, and says so when a month
had none.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid

import pytest
from confluent_kafka import Producer
from fastavro import schemaless_writer

from schemas import contract
from schemas.codec import ServiceRequestCodec
from schemas.pii import PiiMasker
from schemas.registry import EmbeddedRegistry
from sinks.report import load_report
from sinks.report_html import render_html

from test_sink import exchange, scalar, sink_until_drained, store_of  # noqa: F401
from test_sink_store import _clear_identifiers

pytestmark = pytest.mark.integration

REQUESTS = ServiceRequestCodec(EmbeddedRegistry())
ID = "11010519491231002X"
JUNE = dt.date(2024, 6, 1)
LICENCE = "/v1/licences/{licence_no}/verification"
PRACTITIONER = "/v1/practitioners/{id_number}/qualification"


def request(party, endpoint, outcome, latency_ms, day, *, status=200, records=1, asked=("440300000001",)):
    return {"request_id": str(uuid.uuid4()), "party": party, "credential_id": f"cred{party}00", "method": "GET",
            "endpoint": endpoint, "asked": list(asked), "status": status, "outcome": outcome, "records": records,
            "latency_ms": latency_ms, "ts": dt.datetime(2024, day // 100, day % 100, 9, 0, tzinfo=dt.timezone.utc)}


def publish_requests(settings):
    """June: three requests of 44 (one produced twice), two of 11; one of 44 in May; junk and a clear ID number."""
    token = PiiMasker(settings.pii_key()).entity_key(ID)
    june_44 = [request("44", LICENCE, "found", 10.0, 603), request("44", LICENCE, "found", 20.0, 610),
               request("44", PRACTITIONER, "unknown", 30.0, 620, records=0, asked=(token,))]
    june_11 = [request("11", LICENCE, "denied", 1.0, 605, status=403, records=0),
               request("11", LICENCE, "limited", 2.0, 606, status=429, records=0)]
    may_44 = request("44", LICENCE, "error", 99.0, 531, status=500, records=0)
    clear = io.BytesIO()  # what a careless writer would send: the codec itself refuses it
    clear.write(REQUESTS.encode(may_44)[:5])
    schemaless_writer(clear, contract.service_request_schema(),
                      request("44", PRACTITIONER, "found", 5.0, 611, asked=(ID,)))
    topic = settings.topics.national_audit
    producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))
    for record in (*june_44, june_44[0], *june_11, may_44):
        producer.produce(topic, REQUESTS.encode(record), key=record["party"].encode())
    producer.produce(topic, b"\x00\x00\x00\x00\x01junk", key=b"44")
    producer.produce(topic, clear.getvalue(), key=b"44")
    if producer.flush(30) != 0:
        raise RuntimeError("messages not delivered")
    return {"total": len(june_44) + 1 + len(june_11) + 1 + 2, "requests": len(june_44) + len(june_11) + 1}


def test_service_requests_are_stored_once_bad_ones_are_dead_letters_and_the_report_counts_them(exchange, store_of):
    sent = publish_requests(exchange)
    sink_until_drained(exchange, sent["total"])
    store = store_of(exchange)
    db = exchange.clickhouse_database

    assert scalar(store, f"SELECT count() FROM {db}.service_requests FINAL") == sent["requests"]
    assert scalar(store, f"SELECT uniqExact(request_id) FROM {db}.service_requests") == sent["requests"]
    dead = store.query(f"SELECT rule, origin_topic, reason FROM {db}.dlq FINAL ORDER BY rule").result_rows
    assert [(rule, topic) for rule, topic, _ in dead] == [("sink_invalid_event", exchange.topics.national_audit),
                                                          ("sink_undecodable", exchange.topics.national_audit)]
    assert "asked[0] holds an ID or mobile number in clear" in dead[0][2]
    stored = store.query(f"SELECT party, endpoint, asked, status, outcome FROM {db}.service_requests FINAL "
                         "WHERE outcome = 'unknown'").result_rows
    token = PiiMasker(exchange.pii_key()).token(ID)
    assert stored == [("44", PRACTITIONER, [f"tok_{token}"], 200, "unknown")]
    assert _clear_identifiers(store, db) == []

    # A new consumer group replays the audit topic from its start: no offset is stored twice (the
    # duplicate's row may already have been merged away, and is then stored again to be merged again).
    sink_until_drained(exchange, sent["total"], group_id=f"{exchange.topic_prefix}replay")
    assert scalar(store, f"SELECT count() = uniqExact(partition, offset) FROM {db}.service_requests")
    assert scalar(store, f"SELECT count() FROM {db}.service_requests FINAL") == sent["requests"]
    assert scalar(store, f"SELECT count() FROM {db}.dlq") == 2

    june = load_report(store, db, JUNE, exchange.provinces)
    assert set(june.service_use) == {"44", "11"}
    ours, theirs = june.service_use["44"], june.service_use["11"]
    assert (ours.requests, ours.by_outcome, ours.endpoints) == (3, {"found": 2, "unknown": 1}, 2)
    assert (theirs.requests, theirs.by_outcome, theirs.endpoints) == (2, {"denied": 1, "limited": 1}, 1)
    assert ours.latency_p50_ms == pytest.approx(20.0) and 20.0 < ours.latency_p99_ms <= 30.0
    assert 1.0 <= theirs.latency_p50_ms <= theirs.latency_p99_ms <= 2.0
    assert "service use: service_requests" in june.sources
    section = render_html(june).split('<section class="service-use">')[1]
    assert "44 广东 Guangdong" in section and "11 北京 Beijing" in section
    assert "no service requests" not in section

    may = load_report(store, db, dt.date(2024, 5, 1), exchange.provinces)
    assert {party: use.by_outcome for party, use in may.service_use.items()} == {"44": {"error": 1}}
    august = load_report(store, db, dt.date(2024, 8, 1), exchange.provinces)
    assert august.service_use == {}
    assert "本月无信息服务请求 no service requests this month" in render_html(august)
