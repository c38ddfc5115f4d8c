"""The stream stage as a pure function: decode, provenance, dedup, validation, routing."""

from __future__ import annotations

import io
import os
import struct
import uuid

import pytest
from stdnum.cn import ric, uscc

from fastavro import schemaless_writer

from schemas import contract, signing
from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry
from schemas.topics import TopicNames
from streams.pipeline import Inbound, StageContext, process_batch

MASTER = b"test-master"
PROVINCES = frozenset({"11", "44"})
TOPICS = TopicNames("t.")
CODEC = EventCodec(EmbeddedRegistry())
KEYS = {p: signing.mac(MASTER, p.encode()) for p in PROVINCES}


def registered(keys: dict[str, bytes]) -> dict[str, tuple[bytes, ...]]:
    """The stage's view of ``keys``: each province's registered secrets (one each here)."""
    return {p: (key,) for p, key in keys.items()}


def valid_uscc(body17: str) -> str:
    return body17 + uscc.calc_check_digit(body17)


def valid_id(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")  # it ignores the last character


USCC_44 = valid_uscc("91440300MA5F0000X")
USCC_11 = valid_uscc("91110000MA5F0000X")
USCC_31 = valid_uscc("91310000MA5F0000X")
ID_11 = "11010519491231002X"
ID_44 = valid_id("44030119900101123")


def operator(**overrides):
    record = {
        "uscc": USCC_44, "name": "深圳运输有限公司", "region_code": "440300", "permit_no": "粤交运管许可深字440300000001",
        "business_scope": "道路旅客运输", "status": "active", "legal_rep_id_number": ID_44, "contact_phone": None,
    }
    return {**record, **overrides}


def case(**overrides):
    record = {
        "case_no": "粤深交执2024001", "region_code": "440300", "stage": "filed", "violation_code": "V101",
        "occurred_at": 1_700_000_000_000, "involved_plate": "粤B12345", "involved_operator_uscc": None,
        "involved_id_number": None, "penalty_cents": None,
    }
    return {**record, **overrides}


def event(entity_type, record, province="44", op="c", entity_key=None, event_id=None):
    return {
        "event_id": event_id or str(uuid.uuid4()), "op": op, "entity_type": entity_type,
        "entity_key": entity_key or contract.entity_key(entity_type, record),
        "before": record if op == "d" else None, "after": None if op == "d" else record,
        "source": {"province": province, "system": "yunzheng", "table": entity_type, "seq": 1, "snapshot": False},
        "ts_ms": 1_700_000_000_000,
    }


def signed(ev, province=None):
    return CODEC.encode(ev, KEYS[province or ev["source"]["province"]])


def inbound(value, province="44", offset=0, key=b"k"):
    return Inbound(TOPICS.province_changes(province), 0, offset, key, value)


@pytest.fixture
def ctx():
    return StageContext(CODEC, TOPICS, registered(KEYS), PROVINCES)


def headers(out):
    return dict(out.headers)


def only_dlq(result):
    dlq = [o for o in result.outputs if o.topic == TOPICS.national_dlq]
    assert len(dlq) == 1, result.outputs
    return dlq[0]


def test_valid_event_is_forwarded_with_original_bytes(ctx):
    raw = signed(event("operator", operator()))
    result = process_batch([inbound(raw, offset=7)], ctx, {})
    assert [o.topic for o in result.outputs] == [TOPICS.national_changes]
    out = result.outputs[0]
    assert out.value == raw
    assert out.key == f"operator:{USCC_44}".encode()
    assert headers(out)["roadx.source.topic"] == b"t.prov.44.changes"
    assert headers(out)["roadx.source.offset"] == b"7"
    assert result.counts == {("accepted", "44"): 1}


def test_duplicate_event_is_dropped(ctx):
    raw = signed(event("operator", operator()))
    seen: dict[str, int] = {}
    first = process_batch([inbound(raw)], ctx, seen)
    again = process_batch([inbound(raw, offset=1)], ctx, seen)
    assert len(first.outputs) == 1
    assert again.outputs == []
    assert again.counts == {("duplicate", "44"): 1}


def test_duplicate_within_one_batch_is_dropped(ctx):
    raw = signed(event("operator", operator()))
    result = process_batch([inbound(raw), inbound(raw, offset=1)], ctx, {})
    assert len(result.outputs) == 1
    assert result.counts == {("accepted", "44"): 1, ("duplicate", "44"): 1}


def test_rejected_event_resent_is_rejected_again(ctx):
    raw = signed(event("operator", operator(uscc="91440300MA5F0000X0")))
    seen: dict[str, int] = {}
    process_batch([inbound(raw)], ctx, seen)
    again = process_batch([inbound(raw, offset=1)], ctx, seen)
    assert headers(only_dlq(again))[th.DLQ_RULE] == b"invalid_uscc"
    assert seen == {}


def test_bytes_that_are_not_avro_go_to_dlq_as_not_framed(ctx):
    result = process_batch([inbound(b"hello, not avro", key=b"raw-key", offset=3)], ctx, {})
    dead = only_dlq(result)
    assert dead.value == b"hello, not avro"
    assert dead.key == b"raw-key"
    h = headers(dead)
    assert h[th.DLQ_RULE] == b"not_framed"
    assert b"magic byte" in h[th.DLQ_REASON]
    assert h[th.DLQ_TOPIC] == b"t.prov.44.changes"
    assert h[th.DLQ_OFFSET] == b"3"
    assert result.rejects == {("not_framed", "44"): 1}


def test_empty_message_goes_to_dlq(ctx):
    dead = only_dlq(process_batch([inbound(None)], ctx, {}))
    assert dead.value is None
    assert headers(dead)[th.DLQ_RULE] == b"not_framed"


def test_unknown_schema_id_goes_to_dlq(ctx):
    value = struct.pack(">bI", 0, 123_456_789) + os.urandom(40)
    dead = only_dlq(process_batch([inbound(value)], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"unknown_schema_id"
    assert b"123456789" in headers(dead)[th.DLQ_REASON]


def test_garbage_avro_body_goes_to_dlq(ctx):
    value = struct.pack(">bI", 0, CODEC.schema_id) + b"\xff" * 30
    assert headers(only_dlq(process_batch([inbound(value)], ctx, {})))[th.DLQ_RULE] == b"malformed_avro"


def test_invalid_uscc_goes_to_dlq_naming_the_entity_key(ctx):
    bad = "91440300MA5F0000X0" if USCC_44[-1] != "0" else "91440300MA5F0000X2"
    ev = event("operator", operator(uscc=bad))
    dead = only_dlq(process_batch([inbound(signed(ev))], ctx, {}))
    reason = headers(dead)[th.DLQ_REASON].decode()
    assert headers(dead)[th.DLQ_RULE] == b"invalid_uscc"
    assert f"operator:{bad}" in reason
    assert ev["event_id"] in reason
    assert "field uscc" in reason
    assert headers(dead)[th.DLQ_ENTITY_KEY] == f"operator:{bad}".encode()
    assert headers(dead)[th.DLQ_EVENT_ID] == ev["event_id"].encode()


def test_bad_signature_goes_to_dlq(ctx):
    ev = event("operator", operator())
    forged = CODEC.encode(ev, signing.mac(b"another-master", "44".encode()))
    assert headers(only_dlq(process_batch([inbound(forged)], ctx, {})))[th.DLQ_RULE] == b"bad_signature"


def test_unsigned_event_goes_to_dlq(ctx):
    unsigned = CODEC.encode(event("operator", operator()))
    assert headers(only_dlq(process_batch([inbound(unsigned)], ctx, {})))[th.DLQ_RULE] == b"bad_signature"


def test_event_of_one_province_on_another_provinces_topic_is_rejected(ctx):
    raw = signed(event("operator", operator(), province="44"))
    dead = only_dlq(process_batch([inbound(raw, province="11")], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"province_mismatch"
    assert b"t.prov.11.changes" in headers(dead)[th.DLQ_REASON]


def test_province_outside_the_exchange_is_rejected(ctx):
    ev = event("operator", operator(), province="31")
    raw = CODEC.encode(ev, signing.mac(MASTER, "31".encode()))
    dead = only_dlq(process_batch([inbound(raw, province="31")], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"unknown_province"


def test_entity_key_that_does_not_match_the_record_is_rejected(ctx):
    raw = signed(event("operator", operator(), entity_key="operator:somebody-else"))
    dead = only_dlq(process_batch([inbound(raw)], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"entity_key_mismatch"
    assert b"operator:somebody-else" in headers(dead)[th.DLQ_REASON]


def test_record_of_another_entity_type_is_rejected(ctx):
    ev = event("operator", operator())
    ev.update(entity_type="vehicle", after=("roadx.Operator", ev["after"]), signature=signing.PLACEHOLDER)
    body = io.BytesIO()
    schemaless_writer(body, contract.envelope_schema(), ev)
    framed = struct.pack(">bI", 0, CODEC.schema_id) + body.getvalue()
    dead = only_dlq(process_batch([inbound(signing.seal(framed, KEYS["44"]))], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"record_type_mismatch"


def test_unknown_case_stage_is_rejected(ctx):
    dead = only_dlq(process_batch([inbound(signed(event("case", case(stage="lost"))))], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"unknown_case_stage"
    assert b"'lost'" in headers(dead)[th.DLQ_REASON]


def test_licence_valid_until_before_valid_from_is_rejected(ctx):
    licence = {
        "licence_no": "粤交运管许可深字440300000001号", "licence_type": "operating_permit",
        "holder_key": f"operator:{USCC_44}", "issuer_region_code": "440300",
        "valid_from": 19_500, "valid_until": 19_000, "status": "valid",
    }
    dead = only_dlq(process_batch([inbound(signed(event("licence", licence)))], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"invalid_validity"


def test_invalid_plate_on_vehicle_is_rejected(ctx):
    vehicle = {
        "plate": "粤I12345", "plate_color": 2, "vin": None, "vehicle_class": "truck",
        "operator_uscc": USCC_44, "transport_cert_no": None, "seats": None, "tonnage_kg": 10_000, "status": "active",
    }
    dead = only_dlq(process_batch([inbound(signed(event("vehicle", vehicle)))], ctx, {}))
    assert headers(dead)[th.DLQ_RULE] == b"invalid_plate"


def test_delete_without_before_is_rejected(ctx):
    ev = event("operator", operator())
    ev["op"] = "d"
    assert headers(only_dlq(process_batch([inbound(signed(ev))], ctx, {})))[th.DLQ_RULE] == b"op_record_mismatch"


def test_cross_province_case_is_routed_to_exactly_the_involved_province(ctx):
    record = case(involved_plate="京A12345", involved_id_number=ID_11, involved_operator_uscc=USCC_31)
    raw = signed(event("case", record))
    result = process_batch([inbound(raw)], ctx, {})
    topics = sorted(o.topic for o in result.outputs)
    assert topics == sorted([TOPICS.national_changes, TOPICS.province_inbound("11")])
    routed = next(o for o in result.outputs if o.topic == TOPICS.province_inbound("11"))
    assert routed.value == raw
    assert routed.key == b"case:\xe7\xb2\xa4\xe6\xb7\xb1\xe4\xba\xa4\xe6\x89\xa72024001"
    assert headers(routed)[th.ROUTED_FROM] == b"44"
    assert headers(routed)[th.ROUTED_REASON] == b"involved_plate,involved_id_number"
    assert result.routed == {("44", "11"): 1}


def test_same_province_case_is_not_routed(ctx):
    record = case(involved_plate="粤B12345", involved_operator_uscc=USCC_44, involved_id_number=ID_44)
    result = process_batch([inbound(signed(event("case", record)))], ctx, {})
    assert [o.topic for o in result.outputs] == [TOPICS.national_changes]
    assert not result.routed


def test_deleted_cross_province_case_is_routed_from_before(ctx):
    raw = signed(event("case", case(involved_operator_uscc=USCC_11), op="d"))
    result = process_batch([inbound(raw)], ctx, {})
    assert TOPICS.province_inbound("11") in {o.topic for o in result.outputs}


def test_bad_messages_do_not_stop_the_good_ones_in_a_batch(ctx):
    good = [signed(event("operator", operator(name=f"深圳运输{n}有限公司"))) for n in range(3)]
    bad_uscc = signed(event("operator", operator(uscc="91440300MA5F0000XX")))
    batch = [
        inbound(good[0], offset=0),
        inbound(b"\x01garbage", offset=1),
        inbound(bad_uscc, offset=2),
        inbound(good[1], offset=3),
        inbound(struct.pack(">bI", 0, 7) + b"zz", offset=4),
        inbound(good[2], offset=5),
    ]
    result = process_batch(batch, ctx, {})
    forwarded = [o.value for o in result.outputs if o.topic == TOPICS.national_changes]
    dlq_offsets = [headers(o)[th.DLQ_OFFSET] for o in result.outputs if o.topic == TOPICS.national_dlq]
    assert forwarded == good
    assert dlq_offsets == [b"1", b"2", b"4"]
    assert result.counts == {("accepted", "44"): 3, ("rejected", "44"): 3}
    assert [index for index, _ in result.accepted] == [0, 3, 5]


def test_accepted_event_id_is_remembered_with_its_time_in_its_entity_state(ctx):
    ev = event("operator", operator())
    state: dict = {}
    result = process_batch([Inbound(TOPICS.province_changes("44"), 2, 0, b"k", signed(ev))], ctx, state, now_ms=1234)
    assert state["entity:" + ev["entity_key"]]["seen"] == {ev["event_id"]: 1234}
    assert [key for _index, key, _value in result.changes] == ["entity:" + ev["entity_key"]]


def test_oversized_rejected_message_reaches_the_dlq_cut_to_size_with_its_length(ctx):
    raw = signed(event("operator", operator(name="名" * 3_500_000)))  # 10.5 MB of UTF-8 text
    result = process_batch([inbound(raw, key=b"k" * 100_000)], ctx, {})
    dlq = only_dlq(result)
    assert headers(dlq)[th.DLQ_RULE] == b"field_too_long"
    assert len(dlq.value) == th.DLQ_MAX_VALUE_BYTES and raw.startswith(dlq.value)
    assert headers(dlq)[th.DLQ_VALUE_BYTES] == str(len(raw)).encode()
    assert len(dlq.key) <= 4096
    assert all(len(v) <= 4096 for _, v in dlq.headers)
    assert all(len(o.value) < 100_000 and len(o.key) <= 4096 for o in result.outputs if o.topic != TOPICS.national_dlq)


def test_small_rejected_message_keeps_its_whole_value_in_the_dlq(ctx):
    raw = signed(event("operator", operator(uscc="91440300MA5F0000X0")))
    dlq = only_dlq(process_batch([inbound(raw)], ctx, {}))
    assert dlq.value == raw and th.DLQ_VALUE_BYTES not in headers(dlq)


def submitted(record, submission, seq, **kw):
    ev = event("operator", record, **kw)
    ev["source"] = {**ev["source"], "seq": seq, "submission": submission}
    return ev


def tallies(result):
    from schemas.codec import SubmissionTallyCodec

    codec = SubmissionTallyCodec(CODEC.registry)
    return [(o, codec.decode(o.value)) for o in result.outputs if o.topic == TOPICS.national_submissions]


def test_each_submission_of_a_batch_is_tallied_once_per_source_partition_with_every_outcome(ctx):
    from schemas.provenance import event_digest, tallied

    first = signed(submitted(operator(), "f1", 1))
    again = signed(submitted(operator(), "f1", 2))  # same content, another event: unchanged
    older = signed(submitted(operator(name="深圳运输二公司"), "f1", 0))  # older seq than the last applied: stale
    forged = CODEC.encode(submitted(operator(uscc=USCC_11), "f1", 3), b"not-44s-key-at-all-0123456789")
    other = signed(submitted(operator(uscc=valid_uscc("91440300MA5F0001X")), "f1", 4))
    plain = signed(event("operator", operator(uscc=valid_uscc("91440300MA5F0002X"))))
    batch = [inbound(first, offset=0), inbound(first, offset=1), inbound(again, offset=2), inbound(older, offset=3),
             inbound(forged, offset=4), inbound(b"garbage", offset=5), inbound(plain, offset=6),
             Inbound(TOPICS.province_changes("44"), 1, 9, b"k", other)]
    result = process_batch(batch, ctx, {})

    found = tallies(result)
    assert len(found) == 2
    (out0, tally0), (out1, tally1) = sorted(found, key=lambda pair: pair[1]["source_partition"])
    assert out0.key == b"44/f1" and out0.origin == 4 and out1.origin == 7
    assert tally0["tally_id"] == f"{TOPICS.province_changes('44')}:0:4"
    assert (tally0["party"], tally0["submission_id"]) == ("44", "f1")
    events0, events1 = tallied(tally0), tallied(tally1)
    assert [(e.seq, e.outcome) for e in events0] == [
        (1, "accepted"), (1, "duplicate"), (2, "duplicate"), (0, "accepted"), (3, "rejected")]
    assert events0[0].digest == event_digest(first)
    assert [(e.seq, e.outcome, e.digest) for e in events1] == [(4, "accepted", event_digest(other))]


def test_events_naming_no_submission_add_no_output(ctx):
    result = process_batch([inbound(signed(event("operator", operator())))], ctx, {})
    assert tallies(result) == []
