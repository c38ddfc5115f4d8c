"""The contract: schemas load, evolve compatibly, and the codec frames and signs."""

from __future__ import annotations

import copy
import datetime as dt
import io
import math
import struct
import uuid

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.utils import generate_many

from schemas import contract, provenance, signing
from schemas.codec import (
    AssistCodec, EventCodec, FindingCodec, ReplyCodec, ServiceRequestCodec, SubmissionTallyCodec, read_schema_id,
)
from schemas.codes import REPLY_KINDS, REPLY_OUTCOMES
from schemas.compatibility import backward_transitive, incompatibilities
from schemas.errors import EncodeError, MalformedBodyError, NotFramedError, UnknownSchemaError
from schemas.parties import default_parties
from schemas.pii import PiiMasker
from schemas.registry import EmbeddedRegistry, fingerprint_id

KEY = signing.mac(b"test-master", "44".encode())


def vehicle_event(**after_changes):
    after = dict(plate="粤B12345", plate_color=2, vin=None, vehicle_class="truck",
                 operator_uscc="91350100M000100Y43", transport_cert_no=None, seats=None,
                 tonnage_kg=12000, status="active")
    after.update(after_changes)
    return dict(event_id=str(uuid.UUID(int=7, version=4)), op="c", entity_type="vehicle",
                entity_key=contract.entity_key("vehicle", after), before=None, after=after,
                source=dict(province="44", system="yunzheng-44", table="vehicles", seq=1, snapshot=False),
                ts_ms=1_700_000_000_000)


def test_every_entity_has_the_canonical_fields():
    assert contract.entity_fields("licence")[:3] == ["licence_no", "licence_type", "holder_key"]
    for etype, must in {
        "operator": {"uscc", "name", "region_code", "permit_no", "business_scope", "status",
                     "legal_rep_id_number", "contact_phone"},
        "vehicle": {"plate", "plate_color", "vin", "vehicle_class", "operator_uscc",
                    "transport_cert_no", "seats", "tonnage_kg", "status"},
        "practitioner": {"id_number", "name", "qualification_cert_no", "qualification_types",
                         "region_code", "employer_uscc", "status"},
        "case": {"case_no", "region_code", "stage", "violation_code", "occurred_at", "involved_plate",
                 "involved_operator_uscc", "involved_id_number", "penalty_cents"},
    }.items():
        assert must <= set(contract.entity_fields(etype)), etype


def test_round_trip_keeps_the_event_and_the_signature_verifies():
    codec = EventCodec(EmbeddedRegistry())
    framed = codec.encode(vehicle_event(), KEY)
    assert framed[0] == 0 and read_schema_id(framed) == codec.schema_id
    assert signing.verify(framed, KEY)
    assert not signing.verify(framed, signing.mac(b"test-master", "11".encode()))
    _, event = codec.decode(framed)
    assert event["after"]["plate"] == "粤B12345" and str(event["event_id"]) == vehicle_event()["event_id"]


def framed_with_event_id(event_id: str) -> bytes:
    """A framed envelope whose event id is ``event_id`` as written, past the encoder's own check."""
    codec = EventCodec(EmbeddedRegistry())
    record = {**vehicle_event(), "event_id": event_id, "signature": signing.PLACEHOLDER}
    record["after"] = ("roadx.Vehicle", record["after"])
    body = io.BytesIO()
    schemaless_writer(body, contract.envelope_schema(), record)
    return struct.pack(">bI", 0, codec.schema_id) + body.getvalue()


@pytest.mark.parametrize("written", [
    "0b7e3f2a-9c4d-4e6f-8a1b-2c3d4e5f6a7b", "0B7E3F2A-9C4D-4E6F-8A1B-2C3D4E5F6A7B",
    "{0b7e3f2a-9c4d-4e6f-8a1b-2c3d4e5f6a7b}", "0b7e3f2a9c4d4e6f8a1b2c3d4e5f6a7b",
])
def test_an_event_id_decodes_as_its_canonical_text(written):
    _, event = EventCodec(EmbeddedRegistry()).decode(framed_with_event_id(written))
    assert event["event_id"] == "0b7e3f2a-9c4d-4e6f-8a1b-2c3d4e5f6a7b"


@pytest.mark.parametrize("written", ["not-a-uuid", "", "0b7e3f2a-9c4d-4e6f-8a1b-2c3d4e5f6a7"])
def test_an_event_id_that_is_not_a_uuid_refuses_the_body_naming_it(written):
    with pytest.raises(MalformedBodyError, match=f"event_id {written!r} is not a UUID") as caught:
        EventCodec(EmbeddedRegistry()).decode(framed_with_event_id(written))
    assert caught.value.rule == "malformed_avro"


def test_a_changed_byte_breaks_the_signature():
    framed = bytearray(EventCodec(EmbeddedRegistry()).encode(vehicle_event(), KEY))
    framed[20] ^= 1
    assert not signing.verify(bytes(framed), KEY)


def test_every_process_computes_the_same_schema_id():
    assert EventCodec(EmbeddedRegistry()).schema_id == EventCodec(EmbeddedRegistry()).schema_id
    assert EmbeddedRegistry().id_for("x", contract.envelope_schema()) == fingerprint_id(contract.envelope_canonical())


@pytest.mark.parametrize("value, error", [
    (b"", NotFramedError),
    ('{"plate": "粤B12345"}'.encode(), NotFramedError),
    (b"\x00\x00", NotFramedError),
    (struct.pack(">bI", 0, 12345) + b"\x02", UnknownSchemaError),
])
def test_undecodable_bytes_raise_a_named_error(value, error):
    with pytest.raises(error) as caught:
        EventCodec(EmbeddedRegistry()).decode(value)
    assert caught.value.rule in ("not_framed", "unknown_schema_id")


def test_a_truncated_body_is_malformed_not_a_crash():
    framed = EventCodec(EmbeddedRegistry()).encode(vehicle_event(), KEY)
    with pytest.raises(MalformedBodyError, match="does not decode"):
        EventCodec(EmbeddedRegistry()).decode(framed[:30])


def test_a_record_that_does_not_fit_is_an_encode_error_naming_the_event():
    with pytest.raises(EncodeError, match=vehicle_event()["event_id"]):
        EventCodec(EmbeddedRegistry()).encode(vehicle_event(plate_color="yellow"), KEY)


def test_current_envelope_reads_every_earlier_version():
    history = contract.historic_envelopes()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.envelope_schema(), history) == []


def test_current_quality_finding_reads_every_earlier_version():
    history = contract.historic_findings()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.finding_schema(), history) == []


def test_a_finding_written_with_an_earlier_version_decodes_with_the_current_one():
    codec = FindingCodec(EmbeddedRegistry())
    for _name, writer in contract.historic_findings():
        writer_id = EmbeddedRegistry().id_for("x", parse_schema(writer))
        for record in generate_many(writer, 20):
            buf = io.BytesIO()
            buf.write(struct.pack(">bI", 0, writer_id))
            schemaless_writer(buf, writer, record)
            finding = codec.decode(buf.getvalue())
            assert finding["finding_id"] == record["finding_id"] and finding["ref_key"] is None


def test_current_service_request_reads_every_earlier_version():
    history = contract.historic_service_requests()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.service_request_schema(), history) == []


def test_a_service_request_written_with_an_earlier_version_decodes_with_the_current_one():
    codec = ServiceRequestCodec(EmbeddedRegistry())
    for _name, writer in contract.historic_service_requests():
        writer_id = EmbeddedRegistry().id_for("x", parse_schema(writer))
        for record in generate_many(writer, 20):
            buf = io.BytesIO()
            buf.write(struct.pack(">bI", 0, writer_id))
            schemaless_writer(buf, writer, record)
            request = codec.decode(buf.getvalue())
            assert str(request["request_id"]).replace("-", "") == record["request_id"].replace("-", "")
            assert request["asked"] == record["asked"]


def test_data_written_with_an_earlier_version_decodes_with_the_current_one():
    codec = EventCodec(EmbeddedRegistry())
    for _name, writer in contract.historic_envelopes():
        writer_id = EmbeddedRegistry().id_for("x", writer)
        for record in generate_many(writer, 20):
            buf = io.BytesIO()
            buf.write(struct.pack(">bI", 0, writer_id))
            schemaless_writer(buf, writer, record)
            _, event = codec.decode(buf.getvalue())
            assert event["entity_key"] == record["entity_key"]
            assert event["event_id"] == str(uuid.UUID(str(record["event_id"])))


def test_adding_a_field_without_default_is_incompatible_and_with_default_is_not():
    current = copy.deepcopy(contract.envelope_schema())
    with_default = copy.deepcopy(current)
    with_default["fields"].insert(-1, {"name": "trace_id", "type": ["null", "string"], "default": None})
    assert incompatibilities(parse_schema(with_default), current) == []
    without = copy.deepcopy(current)
    without["fields"].insert(-1, {"name": "trace_id", "type": "string"})
    assert any("trace_id" in p for p in incompatibilities(parse_schema(without), current))


def test_narrowing_a_type_is_incompatible():
    writer = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    reader = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}
    assert incompatibilities(reader, writer) == [".n: writer type long cannot be read as int"]
    assert incompatibilities(writer, reader) == []


ASKED_ID = "11010519491231002X"
SERVICE_PII = PiiMasker(b"s" * 32)


def service_request(**changes):
    request = dict(request_id=str(uuid.UUID(int=11, version=4)), party="44", credential_id="0a1b2c3d", method="GET",
                   endpoint="/v1/practitioners/{id_number}/qualification",
                   asked=[SERVICE_PII.entity_key(ASKED_ID)], status=200, outcome="found", records=1,
                   latency_ms=12.5, ts=dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc))
    request.update(changes)
    return request


def test_a_service_request_round_trips_with_its_own_schema_id():
    codec = ServiceRequestCodec(EmbeddedRegistry())
    framed = codec.encode(service_request())
    assert framed[0] == 0 and read_schema_id(framed) == codec.schema_id
    assert codec.schema_id == ServiceRequestCodec(EmbeddedRegistry()).schema_id
    assert codec.schema_id != FindingCodec(EmbeddedRegistry()).schema_id
    back = codec.decode(framed)
    assert back == {**service_request(), "request_id": uuid.UUID(int=11, version=4)}
    assert back["asked"] == [f"tok_{SERVICE_PII.token(ASKED_ID)}"]


@pytest.mark.parametrize("changes, field", [
    ({"outcome": "maybe"}, "outcome 'maybe' is not one of found, unknown, invalid, denied, limited, error"),
    ({"status": "200"}, "status '200' is not an HTTP status"),
    ({"status": 42}, "status 42 is not an HTTP status"),
    ({"records": -1}, "records -1 is not a count"),
    ({"records": 2**40}, "records 1099511627776 is not a count"),
    ({"latency_ms": math.nan}, "latency_ms nan is not a duration"),
    ({"latency_ms": -3.0}, "latency_ms -3.0 is not a duration"),
    ({"asked": ["tok_ab", ASKED_ID]}, "asked\\[1\\] holds an ID or mobile number in clear"),
    ({"endpoint": "/v1/practitioners/13812345678"}, "endpoint holds an ID or mobile number in clear"),
    ({"request_id": "not-a-uuid"}, "request_id 'not-a-uuid' \\(not a UUID\\)"),
    ({"ts": 2**62}, "ts 4611686018427387904 \\(a timestamp-millis outside"),
    ({"asked": [7]}, "asked"),
    ({"party": None}, "party"),
    ({"method": b"GET"}, "method"),
])
def test_a_malformed_service_request_is_an_encode_error_naming_the_field(changes, field):
    with pytest.raises(EncodeError, match=f"^service request [^:]+: .*{field}"):
        ServiceRequestCodec(EmbeddedRegistry()).encode(service_request(**changes))


def test_a_missing_service_request_field_is_named():
    request = service_request()
    del request["credential_id"]
    with pytest.raises(EncodeError, match="credential_id"):
        ServiceRequestCodec(EmbeddedRegistry()).encode(request)


def test_every_outcome_of_the_contract_encodes():
    codec = ServiceRequestCodec(EmbeddedRegistry())
    for outcome in contract.SERVICE_OUTCOMES:
        assert codec.decode(codec.encode(service_request(outcome=outcome)))["outcome"] == outcome


def test_a_finding_is_not_a_service_request():
    registry = EmbeddedRegistry()
    finding = {"finding_id": "e/RQ001", "rule": "RQ001", "dimension": "completeness", "severity": "error",
               "province": "44", "message": "m", "source_topic": "t", "source_partition": 0, "source_offset": 1,
               "detected_ms": 1_700_000_000_000}
    with pytest.raises(MalformedBodyError, match="not a service request"):
        ServiceRequestCodec(registry).decode(FindingCodec(registry).encode(finding))


@pytest.mark.parametrize("text, clear", [
    (ASKED_ID, True),
    ("practitioner:" + ASKED_ID, True),
    ("13812345678", True),
    (SERVICE_PII.entity_key("practitioner:" + ASKED_ID), False),
    ("tok_" + "a13812345678" + "b" * 20, False),  # a token whose hex looks like a mobile number
    ("licence:road_transport:粤交运管字440300000001号", False),
    ("", False),
])
def test_only_identifiers_in_clear_are_found_not_tokens(text, clear):
    assert contract.holds_clear_identifier(text) is clear


REPLY_KEY = signing.mac(b"test-master", "11".encode())
REPLY_ID = uuid.UUID(int=21, version=4)


def case_reply(**changes):
    reply = dict(reply_id=str(REPLY_ID), correlation_id="5b0c8f3e-2f6a-5d7e-8a1b-0c2d3e4f5a6b",
                 case_key="case:粤深交执2024001", from_province="11", kind="answer", outcome="penalty", reason=None,
                 redirect_to=None, note="罚款 2000 元", ts=dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc))
    reply.update(changes)
    return reply


def test_current_case_reply_reads_every_earlier_version():
    history = contract.historic_case_replies()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.case_reply_schema(), history) == []


def test_a_case_reply_written_with_an_earlier_version_decodes_with_the_current_one():
    codec = ReplyCodec(EmbeddedRegistry())
    for _name, writer in contract.historic_case_replies():
        writer_id = EmbeddedRegistry().id_for("x", parse_schema(writer))
        for record in generate_many(writer, 20):
            buf = io.BytesIO()
            buf.write(struct.pack(">bI", 0, writer_id))
            schemaless_writer(buf, writer, record)
            schema_id, reply = codec.decode(buf.getvalue())
            assert schema_id == writer_id and reply["correlation_id"] == record["correlation_id"]


def test_a_case_reply_round_trips_signed_with_the_replying_provinces_key():
    codec = ReplyCodec(EmbeddedRegistry())
    framed = codec.encode(case_reply(), REPLY_KEY)
    assert framed[0] == 0 and read_schema_id(framed) == codec.schema_id
    assert codec.schema_id == ReplyCodec(EmbeddedRegistry()).schema_id
    assert codec.schema_id != ServiceRequestCodec(EmbeddedRegistry()).schema_id
    assert codec.signed_with(framed, REPLY_KEY) and signing.verify(framed, REPLY_KEY)
    assert not codec.signed_with(framed, signing.mac(b"test-master", "44".encode()))
    schema_id, back = codec.decode(framed)
    assert schema_id == codec.schema_id
    assert back == {**case_reply(), "reply_id": REPLY_ID, "signature": framed[-signing.MAC_LEN:]}


def test_a_tampered_case_reply_fails_the_signature_check():
    codec = ReplyCodec(EmbeddedRegistry())
    framed = codec.encode(case_reply(), REPLY_KEY)
    forged = framed.replace(b"penalty", b"PENALTY")  # the same length: it still decodes
    assert codec.decode(forged)[1]["outcome"] == "PENALTY"
    assert not codec.signed_with(forged, REPLY_KEY)
    flipped = bytearray(framed)
    flipped[-1] ^= 1
    assert not codec.signed_with(bytes(flipped), REPLY_KEY)


def test_every_kind_and_every_outcome_of_the_contract_encodes():
    codec = ReplyCodec(EmbeddedRegistry())
    shapes = {"receipt": {}, "progress": {}, "answer": {"outcome": "closed"},
              "decline": {"reason": "车辆已转籍", "redirect_to": "44"}}
    assert tuple(shapes) == REPLY_KINDS
    for kind, fields in shapes.items():
        reply = case_reply(**{"kind": kind, "outcome": None, **fields})
        assert codec.decode(codec.encode(reply, REPLY_KEY))[1]["kind"] == kind
    for outcome in REPLY_OUTCOMES:
        assert codec.decode(codec.encode(case_reply(outcome=outcome), REPLY_KEY))[1]["outcome"] == outcome


@pytest.mark.parametrize("changes, field", [
    ({"kind": "shrug"}, "kind 'shrug' is not one of receipt, progress, answer, decline"),
    ({"kind": None}, "kind None is not one of"),
    ({"outcome": None}, "outcome None is not one of action_taken, decision, penalty, closed"),
    ({"outcome": "fined"}, "outcome 'fined' is not one of"),
    ({"kind": "receipt"}, "outcome 'penalty': only an answer has one, not a reply of kind receipt"),
    ({"kind": "decline", "outcome": None}, "reason None: a decline says why"),
    ({"kind": "decline", "outcome": None, "reason": "  "}, "reason '  ': a decline says why"),
    ({"kind": "decline", "outcome": None, "reason": "not ours", "redirect_to": "99"}, "redirect_to '99'"),
    ({"kind": "decline", "outcome": None, "reason": "not ours", "redirect_to": "11"}, "redirect_to '11'"),
    ({"reason": "why"}, "reason 'why': only a decline has one, not a reply of kind answer"),
    ({"kind": "progress", "outcome": None, "redirect_to": "44"}, "redirect_to '44': only a decline has one"),
    ({"reply_id": "not-a-uuid"}, "reply_id 'not-a-uuid' \\(not a UUID\\)"),
    ({"case_key": "route:粤B12345:2"}, "case_key .route:粤B12345:2. is not the entity key of a case"),
    ({"case_key": "case:"}, "case_key .case:. is not the entity key of a case"),
    ({"correlation_id": ""}, "correlation_id is empty"),
    ({"from_province": "99"}, "from_province '99' is not a party code"),
    ({"from_province": "cj"}, "from_province 'cj' is not a party code"),
    ({"from_province": None}, "from_province"),
    ({"ts": 2**62}, "ts 4611686018427387904 \\(a timestamp-millis outside"),
    ({"note": 7}, "note"),
])
def test_a_malformed_case_reply_is_an_encode_error_naming_the_field(changes, field):
    with pytest.raises(EncodeError, match=f"^case reply [^:]+: .*{field}"):
        ReplyCodec(EmbeddedRegistry()).encode(case_reply(**changes), REPLY_KEY)


def test_a_missing_case_reply_field_is_named():
    reply = case_reply()
    del reply["case_key"]
    with pytest.raises(EncodeError, match="case_key"):
        ReplyCodec(EmbeddedRegistry()).encode(reply, REPLY_KEY)


def test_a_change_event_is_not_a_case_reply():
    with pytest.raises(MalformedBodyError, match="not a case reply"):
        ReplyCodec(EmbeddedRegistry()).decode(EventCodec(EmbeddedRegistry()).encode(vehicle_event(), KEY))


def test_the_case_workflow_speaks_the_contracts_vocabulary():
    from streams.cases import workflow

    assert workflow.KINDS is REPLY_KINDS and workflow.OUTCOMES is REPLY_OUTCOMES
    kind_doc = next(f["doc"] for f in contract.case_reply_schema()["fields"] if f["name"] == "kind")
    assert all(kind in kind_doc for kind in REPLY_KINDS)


def assist(**changes):
    request = dict(assist_id=str(uuid.uuid4()), from_party="44", to_province="11", entity_type="vehicle",
                   entity_key="vehicle:京A12345:2", identifier="京A12345", question="车辆是否仍在营运？",
                   case_no="粤深交执2024001", region="110105", in_register=True,
                   asked_at=dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc))
    request.update(changes)
    return request


def test_current_assist_request_reads_every_earlier_version():
    history = contract.historic_assist_requests()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.assist_request_schema(), history) == []


def test_an_assist_request_round_trips():
    codec, sent = AssistCodec(EmbeddedRegistry()), assist()
    assert codec.decode(codec.encode(sent)) == {**sent, "assist_id": uuid.UUID(sent["assist_id"])}


@pytest.mark.parametrize("changes, message", [
    ({"to_province": "44"}, "a party does not ask itself"),
    ({"from_party": "99"}, "from_party '99' is not a party code"),
    ({"to_province": "cj"}, "to_province 'cj' is not a party code"),
    ({"entity_type": "case"}, "entity_type 'case' is not one of operator, vehicle, practitioner, licence, ship, "
                              "shipping_enterprise, port_enterprise, waterway_project"),
    ({"question": " "}, "question: 1 to 1,000 characters"),
    ({"question": "x" * 1001}, "question: 1 to 1,000 characters"),
    ({"region": "440300"}, "region '440300' is not a region of party 11"),
    ({"region": "CJ0000"}, "region 'CJ0000' is not a 6-digit region code, nor 110000"),
    ({"to_province": "CJ", "region": "990100"}, "region '990100' is not a region of party CJ"),
    ({"assist_id": "nope"}, "assist_id 'nope' \\(not a UUID\\) would not decode"),
])
def test_a_bad_assist_request_is_refused_naming_the_field(changes, message):
    with pytest.raises(EncodeError, match=message):
        AssistCodec(EmbeddedRegistry()).encode(assist(**changes))


@pytest.mark.parametrize("changes", [
    {"to_province": "CJ", "entity_type": "ship", "entity_key": "ship:CN20190001", "identifier": "CN20190001",
     "region": "420100"},
    {"to_province": "CJ", "entity_type": "ship", "entity_key": "ship:CN20190001", "identifier": "CN20190001",
     "region": "CJ0000"},
    {"to_province": "66", "entity_type": "operator", "region": "660100"},
    {"to_province": "66", "entity_type": "operator", "region": "659001"},
    {"from_party": "ZJ", "to_province": "44", "entity_type": "port_enterprise", "region": "440000"},
])
def test_an_assist_request_asks_any_party_about_any_register(changes):
    codec = AssistCodec(EmbeddedRegistry(), parties=default_parties())
    assert codec.decode(codec.encode(assist(**changes)))["to_province"] == changes["to_province"]


@pytest.mark.parametrize("changes, message", [
    ({"to_province": "ZZ"}, "to_province 'ZZ' is not a party of this exchange"),
    ({"to_province": "CJ", "region": "440300"}, "region '440300' is not in the jurisdiction of party CJ "
                                                "\\(regions 53, 51, 50, 42, 43, 36, 34, 32, 31\\), nor CJ0000"),
    ({"to_province": "66", "region": "650100"}, "region '650100' is not in the jurisdiction of party 66 "
                                                "\\(regions 66, 6590\\)"),
])
def test_against_the_exchanges_parties_the_party_asked_is_one_of_them_and_the_region_in_its_jurisdiction(
        changes, message):
    with pytest.raises(EncodeError, match=message):
        AssistCodec(EmbeddedRegistry(), parties=default_parties()).encode(assist(**changes))


def test_current_case_alert_reads_every_earlier_version():
    history = contract.historic_case_alerts()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.case_alert_schema(), history) == []


def tally(**changes):
    record = dict(tally_id="prov.44.changes:0:17", party="44", submission_id="file-2024-06-03.csv", source_partition=0,
                  event_ids=[str(uuid.uuid4()), str(uuid.uuid4())], seqs=[5, 6], digests=b"\x01" * 32 + b"\x02" * 32,
                  outcomes="ad", tallied_at=dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc))
    record.update(changes)
    return record


def test_current_submission_tally_reads_every_earlier_version():
    history = contract.historic_submission_tallies()
    assert history, "at least the first version is frozen"
    assert backward_transitive(contract.submission_tally_schema(), history) == []


def test_a_submission_tally_round_trips():
    codec, sent = SubmissionTallyCodec(EmbeddedRegistry()), tally()
    assert codec.decode(codec.encode(sent)) == sent
    assert [(e.seq, e.digest, e.outcome) for e in provenance.tallied(sent)] == [
        (5, b"\x01" * 32, "accepted"), (6, b"\x02" * 32, "duplicate")]


@pytest.mark.parametrize("changes, message", [
    ({"submission_id": ""}, "submission_id is empty"),
    ({"outcomes": "as"}, "outcomes is not one letter \\(a, r, d\\) an event"),
    ({"outcomes": "a"}, "outcomes is not one letter"),
    ({"digests": b"\x01" * 63}, "digests is not one SM3 digest \\(32 bytes\\) an event"),
    ({"seqs": [5]}, "seqs is not one source seq an event of event_ids"),
])
def test_a_bad_submission_tally_is_refused_naming_the_field(changes, message):
    with pytest.raises(EncodeError, match=message):
        SubmissionTallyCodec(EmbeddedRegistry()).encode(tally(**changes))


# ---- the water registers: carried, from their declarations ------------------------------

WATER = ("ship", "shipping_enterprise", "port_enterprise", "waterway_project")


def test_the_envelope_carries_every_declared_register_in_declaration_order():
    from schemas import registers

    assert contract.ENTITY_TYPES == tuple(r.entity_type for r in registers.declarations())
    assert contract.ENTITY_TYPES[5:] == WATER
    assert dict(contract.ENTITY_RECORDS) == {r.entity_type: r.record for r in registers.declarations()}
    assert dict(contract.KEY_FIELDS) == {r.entity_type: r.key_fields for r in registers.declarations()}
    union = next(f["type"] for f in contract.envelope_schema()["fields"] if f["name"] == "after")
    named = [t if isinstance(t, str) else t["name"] for t in union]
    assert named[-4:] == ["roadx.Ship", "roadx.ShippingEnterprise", "roadx.PortEnterprise", "roadx.WaterwayProject"]


@pytest.mark.parametrize("entity", contract.ENTITY_TYPES)
def test_a_registers_avsc_file_is_its_declarations_record(entity):
    import json

    from schemas import registers

    declared = registers.declaration(entity)
    written = json.loads((contract.AVRO_DIR / f"{declared.record}.avsc").read_text("utf-8"))
    assert written == declared.avro_record(), (
        f"{declared.record}.avsc is not what {entity}.toml declares: write it again from the declaration "
        f"(json.dumps(registers.declaration({entity!r}).avro_record(), ensure_ascii=False, indent=2))")


def test_the_envelope_file_names_the_declared_records_and_the_loaded_envelope_carries_them():
    import json

    from schemas import registers

    written = json.loads((contract.AVRO_DIR / contract.ENVELOPE_FILE).read_text("utf-8"))
    declared = ["null", *(register.record for register in registers.declarations())]
    for field in ("before", "after"):
        assert next(f["type"] for f in written["fields"] if f["name"] == field) == declared
    loaded = next(f["type"] for f in contract.envelope_schema()["fields"] if f["name"] == "before")
    assert [t if isinstance(t, str) else contract.record_name(t) for t in loaded] == declared


def test_the_envelope_before_the_water_registers_is_frozen_and_still_read():
    names = [name for name, _schema in contract.historic_envelopes()]
    assert names[:2] == ["ChangeEvent.v1.avsc", "ChangeEvent.v2.avsc"]
    v2 = dict(contract.historic_envelopes())["ChangeEvent.v2.avsc"]
    assert [t if isinstance(t, str) else t["name"] for t in v2["fields"][4]["type"]] == [
        "null", "roadx.Operator", "roadx.Vehicle", "roadx.Practitioner", "roadx.Licence", "roadx.Case"]


def ship_event(**after_changes):
    after = dict(ship_id="CN20190001", name="长航货运1号", imo="9074729", mmsi="413000001", port_of_registry="武汉",
                 gross_tonnage=2999, ship_type="bulk_carrier", operator_uscc="91350100M000100Y43", status="active")
    after.update(after_changes)
    return dict(event_id=str(uuid.UUID(int=9, version=4)), op="c", entity_type="ship",
                entity_key=contract.entity_key("ship", after), before=None, after=after,
                source=dict(province="CJ", system="cj-ships", table="ships", seq=1, snapshot=False),
                ts_ms=1_700_000_000_000)


def test_a_ship_event_round_trips_and_its_key_is_the_ship_id():
    codec = EventCodec(EmbeddedRegistry())
    cj_key = signing.mac(b"test-master", b"CJ")
    framed = codec.encode(ship_event(), cj_key)
    assert signing.verify(framed, cj_key)
    _, event = codec.decode(framed)
    assert event["entity_key"] == "ship:CN20190001" and event["after"]["mmsi"] == "413000001"
    assert contract.required_fields("ship") == ("ship_id", "name", "port_of_registry", "ship_type", "operator_uscc",
                                                "status")


def test_a_case_may_involve_a_ship_and_an_earlier_case_reads_without_one():
    spec = contract.field_specs("case")[-1]
    assert (spec.name, spec.kind, spec.required, spec.default) == ("involved_ship_id", "string", False, None)
    codec = EventCodec(EmbeddedRegistry())
    case = dict(case_no="粤交执2024001", region_code="440300", stage="filed", violation_code="W01",
                occurred_at=dt.datetime(2024, 6, 3, tzinfo=dt.timezone.utc), involved_plate=None,
                involved_operator_uscc=None, involved_id_number=None, penalty_cents=None,
                involved_ship_id="CN20190001")
    event = dict(ship_event(), entity_type="case", entity_key="case:粤交执2024001", after=case,
                 source=dict(province="44", system="s", table="cases", seq=1, snapshot=False))
    assert codec.decode(codec.encode(event, KEY))[1]["after"]["involved_ship_id"] == "CN20190001"
    v2 = dict(contract.historic_envelopes())["ChangeEvent.v2.avsc"]
    old_case = next(t for t in v2["fields"][4]["type"] if isinstance(t, dict) and t["name"] == "roadx.Case")
    assert "involved_ship_id" not in [f["name"] for f in old_case["fields"]]


def test_a_navigation_administration_replies_and_redirects_like_a_province():
    assert contract.case_reply_problem(case_reply(from_province="CJ")) is None
    declined = case_reply(from_province="CJ", kind="decline", outcome=None, reason="上游辖区", redirect_to="ZJ")
    assert contract.case_reply_problem(declined) is None
    assert contract.case_reply_problem({**declined, "redirect_to": "CJ"}) == "redirect_to 'CJ' is not another party's code"
