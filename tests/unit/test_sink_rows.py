"""Store rows for every entity type, dead letters, routed cases and assist requests."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from schemas import contract, topics
from schemas.codec import AlertCodec, EventCodec
from schemas.errors import DecodeError, EncodeError
from schemas.registry import EmbeddedRegistry
from sinks.errors import UnstorableMessage
from schemas.pii import PiiMasker
from sinks.rows import (
    CASE_ALERT_COLUMNS, CASE_REPLY_COLUMNS, CHANGE_LOG_COLUMNS, DLQ_COLUMNS, ROUTED_COLUMNS, alert_row,
    assist_row, case_reply_row, change_log_row, dlq_row, routed_row,
)

ID = "11010519491231002X"
PII = PiiMasker(b"k" * 32)
TS = dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.timezone.utc)

RECORDS = {
    "operator": {"uscc": "91350100M000100Y43", "name": "福州顺达运输有限公司", "region_code": "350100",
                 "permit_no": "闽交运管许可榕字350100000001号", "business_scope": "道路普通货物运输",
                 "status": "active", "legal_rep_id_number": ID, "contact_phone": "13812345678"},
    "vehicle": {"plate": "粤B12345", "plate_color": 2, "vin": "LSVAU2180N2183294", "vehicle_class": "truck",
                "operator_uscc": "91350100M000100Y43", "transport_cert_no": "440300000001", "seats": None,
                "tonnage_kg": 18000, "status": "active"},
    "practitioner": {"id_number": ID, "name": "张三", "qualification_cert_no": ID,
                     "qualification_types": ["货运驾驶员"], "region_code": "110105",
                     "employer_uscc": "91110000600037341L", "status": "active"},
    "licence": {"licence_no": ID, "licence_type": "qualification", "holder_key": f"practitioner:{ID}",
                "issuer_region_code": "110105", "valid_from": dt.date(2020, 1, 1),
                "valid_until": dt.date(2026, 1, 1), "status": "valid"},
    "case": {"case_no": "44-2024-000123", "region_code": "440300", "stage": "filed", "violation_code": "11001",
             "occurred_at": TS, "involved_plate": "京A12345", "involved_operator_uscc": None,
             "involved_id_number": ID, "penalty_cents": 200000},
    "ship": {"ship_id": "CN20190001234", "name": "长江之星", "imo": "9074729", "mmsi": "413123456",
             "port_of_registry": "武汉", "gross_tonnage": 2999, "ship_type": "bulk_carrier",
             "operator_uscc": "91350100M000100Y43", "status": "active"},
    "shipping_enterprise": {"uscc": "91350100M000100Y43", "name": "长航货运有限公司", "permit_no": "交XS2017001",
                            "business_scope": ["inland"], "region_code": "420100", "status": "active"},
    "port_enterprise": {"uscc": "91350100M000100Y43", "name": "武汉港务集团", "permit_no": None, "port": "武汉港",
                        "region_code": "420100", "status": "active"},
    "waterway_project": {"project_code": "2019-420100-55-01-012345", "name": "长江航道整治工程",
                         "owner_uscc": "91350100M000100Y43", "region_code": "420100",
                         "total_investment_yuan": 1_250_000_000, "start_date": dt.date(2019, 3, 1), "end_date": None,
                         "status": "active"},
}


def make_event(entity_type: str, op: str = "c", seq: int = 7) -> dict:
    record = RECORDS[entity_type]
    return {
        "event_id": str(uuid.uuid4()), "op": op, "entity_type": entity_type,
        "entity_key": contract.entity_key(entity_type, record),
        "before": record if op in ("u", "d") else None, "after": None if op == "d" else record,
        "source": {"province": "44", "system": "yz44", "table": entity_type, "seq": seq, "snapshot": False},
        "ts_ms": TS,
    }


def decoded(event: dict) -> tuple[int, dict]:
    codec = EventCodec(EmbeddedRegistry())
    return codec.decode(codec.encode(event))


@pytest.mark.parametrize("entity_type", contract.ENTITY_TYPES)
def test_change_log_row_for_each_entity_type(entity_type):
    event = make_event(entity_type)
    schema_id, back = decoded(event)
    row = dict(zip(CHANGE_LOG_COLUMNS, change_log_row(back, schema_id, "national.changes", 3, 42, PII)))
    assert row["event_id"] == event["event_id"]
    assert (row["op"], row["entity_type"], row["province"], row["seq"]) == ("c", entity_type, "44", 7)
    assert (row["topic"], row["partition"], row["offset"], row["schema_id"]) == ("national.changes", 3, 42, schema_id)
    assert row["ts"] == TS and row["before"] == ""
    assert row["entity_key"] == contract.entity_key(entity_type, RECORDS[entity_type]).replace(ID, f"tok_{PII.token(ID)}")
    after = json.loads(row["after"])
    assert set(contract.entity_fields(entity_type)) <= set(after)
    assert ID not in row["after"] and ID not in row["entity_key"] and "13812345678" not in row["after"]


def test_json_keeps_chinese_text_and_writes_dates_as_iso():
    schema_id, back = decoded(make_event("licence"))
    after = change_log_row(back, schema_id, "t", 0, 0, PII)[CHANGE_LOG_COLUMNS.index("after")]
    assert '"valid_from":"2020-01-01"' in after
    schema_id, back = decoded(make_event("case"))
    after = json.loads(change_log_row(back, schema_id, "t", 0, 0, PII)[CHANGE_LOG_COLUMNS.index("after")])
    assert after["occurred_at"] == "2024-05-01T08:30:00.000Z"
    schema_id, back = decoded(make_event("operator"))
    assert "福州顺达" in change_log_row(back, schema_id, "t", 0, 0, PII)[CHANGE_LOG_COLUMNS.index("after")]


def test_practitioner_key_and_licence_holder_use_the_same_token():
    _, practitioner = decoded(make_event("practitioner"))
    _, licence = decoded(make_event("licence"))
    p_row = change_log_row(practitioner, 1, "t", 0, 0, PII)
    l_row = change_log_row(licence, 1, "t", 0, 1, PII)
    holder = json.loads(l_row[CHANGE_LOG_COLUMNS.index("after")])["holder_key"]
    assert holder == p_row[CHANGE_LOG_COLUMNS.index("entity_key")] == f"practitioner:tok_{PII.token(ID)}"


def test_delete_has_before_and_empty_after():
    schema_id, back = decoded(make_event("vehicle", op="d"))
    row = dict(zip(CHANGE_LOG_COLUMNS, change_log_row(back, schema_id, "t", 0, 0, PII)))
    assert row["after"] == "" and json.loads(row["before"])["plate"] == "粤B12345"


def test_event_missing_its_source_is_a_row_error_naming_it():
    event = make_event("vehicle")
    del event["source"]
    with pytest.raises(UnstorableMessage, match=event["event_id"]):
        change_log_row(event, 1, "national.changes", 0, 5, PII)


class Message:
    def __init__(self, topic, partition, offset, value, key=None, headers=None):
        self._t, self._p, self._o, self._v, self._k, self._h = topic, partition, offset, value, key, headers

    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
    def value(self): return self._v
    def key(self): return self._k
    def headers(self): return self._h
    def error(self): return None


def test_dlq_row_takes_origin_rule_and_reason_from_headers():
    raw = b"\x07not avro " + ID.encode()
    msg = Message("national.dlq", 1, 9, raw, key=f"practitioner:{ID}".encode(), headers=[
        (topics.DLQ_TOPIC, b"prov.44.changes"), (topics.DLQ_PARTITION, b"2"), (topics.DLQ_OFFSET, b"17"),
        (topics.DLQ_RULE, b"invalid_uscc"), (topics.DLQ_REASON, "USCC 校验失败".encode()),
    ])
    row = dict(zip(DLQ_COLUMNS, dlq_row(msg, PII)))
    assert (row["topic"], row["partition"], row["offset"]) == ("national.dlq", 1, 9)
    assert (row["origin_topic"], row["origin_partition"], row["origin_offset"]) == ("prov.44.changes", 2, 17)
    assert row["rule"] == "invalid_uscc" and row["reason"] == "USCC 校验失败"
    assert row["entity_key"] == f"practitioner:tok_{PII.token(ID)}" == row["key"]
    assert row["event_id"] == ""
    stored = base64.b64decode(row["raw_base64"])
    assert len(stored) == len(raw) and ID.encode() not in stored


def test_dlq_row_with_broken_headers_keeps_what_it_can():
    msg = Message("national.dlq", 0, 3, None, headers=[(topics.DLQ_PARTITION, b"x"), (topics.DLQ_OFFSET, None)])
    row = dict(zip(DLQ_COLUMNS, dlq_row(msg, PII)))
    assert row["origin_partition"] is None and row["origin_offset"] is None
    assert row["rule"] == "unknown" and row["raw_base64"] == "" and row["key"] == ""


def test_sink_reject_uses_the_message_itself_as_origin():
    msg = Message("national.changes", 4, 11, b"garbage")
    row = dict(zip(DLQ_COLUMNS, dlq_row(msg, PII, rule="sink_undecodable", reason="not framed")))
    assert (row["origin_topic"], row["origin_partition"], row["origin_offset"]) == ("national.changes", 4, 11)
    assert row["rule"] == "sink_undecodable" and row["reason"] == "not framed"


def test_routed_row_names_target_case_and_stage():
    event = make_event("case")
    _, back = decoded(event)
    headers = [(topics.ROUTED_REASON, "involved_plate 京A12345 belongs to 11".encode()), (topics.ROUTED_FROM, b"44")]
    row = dict(zip(ROUTED_COLUMNS, routed_row(back, "xprov.11.inbound", 0, 5, headers, "11", PII)))
    assert row["target_province"] == "11" and row["source_province"] == "44"
    assert row["case_no"] == "44-2024-000123" and row["stage"] == "filed"
    assert row["entity_key"] == "case:44-2024-000123" and "京A12345" in row["reason"]
    assert row["event_id"] == event["event_id"]


def test_routed_row_for_a_non_event_is_a_row_error():
    with pytest.raises(UnstorableMessage, match="not a routed case"):
        routed_row({"event_id": "x"}, "xprov.11.inbound", 0, 5, None, "11", PII)


def assist(**overrides) -> dict:
    from schemas.codec import AssistCodec
    value = {"assist_id": str(uuid.UUID(int=9, version=4)), "from_party": "44", "to_province": "11",
             "entity_type": "practitioner", "entity_key": f"practitioner:{ID}", "identifier": ID,
             "question": "是否持有有效从业资格证", "case_no": None, "region": "110105", "in_register": True,
             "asked_at": TS, **overrides}
    codec = AssistCodec(EmbeddedRegistry())
    return codec.decode(codec.encode(value))


def assisted(reason: str = topics.ASSIST, stage: str = "requested") -> list[tuple[str, bytes]]:
    return [(topics.ROUTED_FROM, b"44"), (topics.ROUTED_TO, b"11"), (topics.ROUTED_REASON, reason.encode()),
            (topics.ROUTED_CORRELATION_ID, str(uuid.UUID(int=9, version=4)).encode()),
            (topics.ROUTED_STAGE, stage.encode()), (topics.ROUTED_REGION, b"110105"),
            (topics.ROUTED_KIND, topics.ASSIST.encode())]


def test_assist_row_is_a_routed_case_row_with_the_entity_asked_about_masked():
    sent = TS + dt.timedelta(seconds=2)
    row = dict(zip(ROUTED_COLUMNS, assist_row(assist(), "xprov.11.inbound", 1, 8, assisted(), "11", PII, TS, sent)))
    routed_case = dict(zip(ROUTED_COLUMNS, routed_row(decoded(make_event("practitioner"))[1], "xprov.11.inbound", 1,
                                                      8, None, "11", PII)))
    assert row["entity_key"] == routed_case["entity_key"] == f"practitioner:tok_{PII.token(ID)}"
    assert row == {
        "event_id": str(uuid.UUID(int=9, version=4)), "entity_key": row["entity_key"], "case_no": "",
        "source_province": "44", "target_province": "11", "reason": "assist", "stage": "requested",
        "topic": "xprov.11.inbound", "partition": 1, "offset": 8, "ingested_at": TS, "ts": TS,
        "correlation_id": str(uuid.UUID(int=9, version=4)), "routed_at": sent, "region": "110105"}


def test_a_redirected_assist_row_keeps_the_header_reason_and_the_case_number():
    row = dict(zip(ROUTED_COLUMNS, assist_row(assist(case_no="粤深交执2024101"), "xprov.31.inbound", 0, 2,
                                              assisted(topics.REDIRECTED), "31", PII, TS)))
    assert (row["reason"], row["case_no"], row["target_province"], row["routed_at"]) == (
        topics.REDIRECTED, "粤深交执2024101", "31", TS)


def test_an_assist_request_breaking_the_contract_is_a_row_error_naming_the_field():
    bad = {**assist(), "region": "440300"}
    with pytest.raises(UnstorableMessage, match="assist request .* at xprov.11.inbound\\[0\\]@3: field region"):
        assist_row(bad, "xprov.11.inbound", 0, 3, assisted(), "11", PII)
    missing = assist()
    del missing["asked_at"]
    with pytest.raises(UnstorableMessage, match="not an assist request"):
        assist_row(missing, "xprov.11.inbound", 0, 3, assisted(), "11", PII)


def finding(**overrides) -> dict:
    from schemas.codec import FindingCodec
    value = {"finding_id": "e1/RQ003", "rule": "RQ003", "dimension": "completeness", "severity": "warning",
             "province": "44", "entity_type": "operator", "entity_key": f"practitioner:{ID}", "event_id": "e1",
             "field": "contact_phone", "message": f"contact_phone 13812345678 of holder {ID} looks odd",
             "source_topic": "prov.44.changes", "source_partition": 1, "source_offset": 77,
             "event_ts_ms": TS, "detected_ms": TS + dt.timedelta(seconds=3), **overrides}
    codec = FindingCodec(EmbeddedRegistry())
    return codec.decode(codec.encode(value))


def test_finding_row_has_the_schema_fields_masked_and_where_it_was_read():
    from sinks.rows import QUALITY_COLUMNS, finding_row
    row = dict(zip(QUALITY_COLUMNS, finding_row(finding(), "national.quality", 2, 9, PII)))
    assert (row["finding_id"], row["rule"], row["dimension"], row["severity"]) == (
        "e1/RQ003", "RQ003", "completeness", "warning")
    assert row["entity_key"] == f"practitioner:tok_{PII.token(ID)}"
    assert row["message"] == "contact_phone 138****5678 of holder 110105********002X looks odd"
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == ("prov.44.changes", 1, 77)
    assert row["event_ts_ms"] == TS and row["detected_ms"] == TS + dt.timedelta(seconds=3)
    assert (row["topic"], row["partition"], row["offset"]) == ("national.quality", 2, 9)


def test_finding_without_optional_fields_keeps_nulls():
    from sinks.rows import QUALITY_COLUMNS, finding_row
    bare = finding(entity_type=None, entity_key=None, event_id=None, field=None, event_ts_ms=None)
    row = dict(zip(QUALITY_COLUMNS, finding_row(bare, "q", 0, 0, PII)))
    assert (row["entity_type"], row["entity_key"], row["event_id"], row["field"], row["event_ts_ms"]) == (
        None, None, None, None, None)


def test_finding_missing_its_rule_is_a_row_error_naming_it():
    from sinks.rows import finding_row
    bad = finding()
    del bad["rule"]
    with pytest.raises(UnstorableMessage, match="e1/RQ003.*not a quality finding"):
        finding_row(bad, "national.quality", 0, 4, PII)


def test_routed_row_carries_the_source_commit_time():
    _, back = decoded(make_event("case"))
    row = dict(zip(ROUTED_COLUMNS, routed_row(back, "xprov.11.inbound", 0, 5, None, "11", PII)))
    assert row["ts"] == TS


def service_request(**overrides) -> dict:
    from schemas.codec import ServiceRequestCodec
    value = {"request_id": str(uuid.UUID(int=5, version=4)), "party": "44", "credential_id": "0a1b2c3d",
             "method": "GET", "endpoint": "/v1/licences/{licence_no}/verification",
             "asked": ["440300000001", PII.entity_key(ID)], "status": 200, "outcome": "found", "records": 1,
             "latency_ms": 8.25, "ts": TS, **overrides}
    codec = ServiceRequestCodec(EmbeddedRegistry())
    return codec.decode(codec.encode(value))


def test_service_request_row_has_the_schema_fields_and_where_it_was_read():
    from sinks.rows import SERVICE_REQUEST_COLUMNS, service_request_row
    row = dict(zip(SERVICE_REQUEST_COLUMNS, service_request_row(service_request(), "national.audit", 1, 30, TS)))
    assert row == {"request_id": str(uuid.UUID(int=5, version=4)), "party": "44", "credential_id": "0a1b2c3d",
                   "method": "GET", "endpoint": "/v1/licences/{licence_no}/verification",
                   "asked": ["440300000001", f"tok_{PII.token(ID)}"], "status": 200, "outcome": "found",
                   "records": 1, "latency_ms": 8.25, "ts": TS, "topic": "national.audit", "partition": 1,
                   "offset": 30, "ingested_at": TS}


@pytest.mark.parametrize("change, message", [
    ({"asked": [ID]}, "field asked\\[0\\] holds an ID or mobile number in clear"),
    ({"outcome": "perhaps"}, "field outcome 'perhaps' is not one of"),
    ({"status": 0}, "field status 0 is not an HTTP status"),
])
def test_service_request_breaking_the_contract_is_a_row_error_naming_the_field(change, message):
    from sinks.rows import service_request_row
    request = {**service_request(), **change}
    with pytest.raises(UnstorableMessage, match=f"service request .* at national.audit\\[0\\]@4: {message}") as caught:
        service_request_row(request, "national.audit", 0, 4)
    assert ID not in str(caught.value)


def test_service_request_missing_a_field_is_a_row_error():
    from sinks.rows import service_request_row
    request = service_request()
    del request["endpoint"]
    with pytest.raises(UnstorableMessage, match="not a service request.*endpoint"):
        service_request_row(request, "national.audit", 0, 4)


def reply(**change) -> dict:
    return {"reply_id": str(uuid.uuid4()), "correlation_id": "c-1", "case_key": "case:44-1", "from_province": "11",
            "kind": "decline", "outcome": None, "reason": f"not ours: holder {ID}", "redirect_to": "31",
            "note": None, "ts": TS, **change}


def forwarded(kind: str) -> list[tuple[str, bytes]]:
    return [(topics.REPLY_KIND, kind.encode()), (topics.ROUTED_TO, b"44"), (topics.ROUTED_FROM, b"11")]


def test_case_reply_row_names_both_provinces_and_masks_the_reason():
    body = reply()
    row = dict(zip(CASE_REPLY_COLUMNS, case_reply_row(body, "xprov.44.inbound", 0, 9, forwarded("decline"), PII)))
    assert (row["from_province"], row["to_province"], row["kind"], row["redirect_to"]) == ("11", "44", "decline", "31")
    assert str(row["reply_id"]) == body["reply_id"] and row["ts"] == TS and row["offset"] == 9
    assert ID not in row["reason"] and row["reason"].startswith("not ours: holder 110105")


@pytest.mark.parametrize("change, kind, message", [
    ({"kind": "answer", "reason": None, "redirect_to": None}, "answer", "field outcome None is not one of"),
    ({}, "answer", "is not the header roadx.reply.kind 'answer'"),
    ({"reason": " "}, "decline", "field reason ' ': a decline says why"),
])
def test_case_reply_breaking_the_contract_or_its_header_is_a_row_error(change, kind, message):
    with pytest.raises(UnstorableMessage, match=message):
        case_reply_row(reply(**change), "xprov.44.inbound", 0, 9, forwarded(kind), PII)


ALERT = {"alert_id": "c-1/11/receipt", "deadline": "receipt", "correlation_id": "c-1", "case_key": "case:44-1",
         "origin": "44", "target": "11", "region": "440300", "state": "routed", "routed_at": 1_717_200_000.5,
         "at": 1_717_300_000}


def test_alert_row_has_every_field_and_its_times_in_utc():
    codec = AlertCodec(EmbeddedRegistry())
    avro = {**ALERT, "routed_at": dt.datetime(2024, 6, 1, 0, 0, 0, 500000, tzinfo=dt.timezone.utc),
            "at": dt.datetime(2024, 6, 2, 3, 46, 40, tzinfo=dt.timezone.utc)}
    for value in (codec.encode(avro), json.dumps(ALERT).encode()):  # an alert, and one written as JSON before
        row = dict(zip(CASE_ALERT_COLUMNS, alert_row(codec.decode(value), "national.alerts", 1, 4)))
        assert {k: row[k] for k in ("alert_id", "deadline", "target", "state", "partition", "offset")} == {
            "alert_id": "c-1/11/receipt", "deadline": "receipt", "target": "11", "state": "routed", "partition": 1,
            "offset": 4}
        assert row["routed_at"] == dt.datetime(2024, 6, 1, 0, 0, 0, 500000, tzinfo=dt.timezone.utc)
        assert row["at"] == dt.datetime(2024, 6, 2, 3, 46, 40, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("value, message", [
    (b"{not json", "neither framed Avro nor JSON"), (b"{}", "field alert_id is missing"),
    (b"\x01junk", "not Confluent-framed Avro"),
])
def test_an_alert_that_does_not_decode_says_why(value, message):
    with pytest.raises((DecodeError, UnstorableMessage), match=message):
        alert_row(AlertCodec(EmbeddedRegistry()).decode(value), "national.alerts", 0, 1)


@pytest.mark.parametrize("alert, message", [
    ({k: v for k, v in ALERT.items() if k != "deadline"}, "field deadline is missing"),
    ({**ALERT, "at": "yesterday"}, "field at is str"),
    ({**ALERT, "alert_id": ""}, "field alert_id is empty"),
])
def test_a_malformed_alert_is_a_row_error_naming_what_is_wrong(alert, message):
    with pytest.raises(UnstorableMessage, match=message):
        alert_row(alert, "national.alerts", 0, 1)


@pytest.mark.parametrize("change, message", [
    ({"deadline": "lunch"}, "deadline 'lunch' is not one of receipt, answer"),
    ({"alert_id": " "}, "alert_id is empty"), ({"target": "99"}, "target '99' is not a party code"),
])
def test_an_alert_breaking_the_contract_is_not_encoded(change, message):
    avro = {**ALERT, **change, "routed_at": dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc),
            "at": dt.datetime(2024, 6, 2, tzinfo=dt.timezone.utc)}
    with pytest.raises(EncodeError, match=message):
        AlertCodec(EmbeddedRegistry()).encode(avro)
