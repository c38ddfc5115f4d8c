"""Fuzzing the stream stage: batches of valid, mutated, re-signed and random messages.

Whatever a batch holds, ``process_batch`` returns; every input is accounted for once
(accepted + duplicate + unchanged + stale + rejected == inputs); each rejected input has
exactly one DLQ record carrying its raw bytes, its offset and a reason; no rejection is an
unexpected exception (``processing_error``).
"""

from __future__ import annotations

import struct
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import signing
from schemas import topics as th
from schemas.codec import FindingCodec
from schemas.errors import DecodeError, EncodeError
from streams.pipeline import ACCEPTED, DUPLICATE, REJECTED, STALE, UNCHANGED, Inbound, StageContext, process_batch

from test_pipeline import (CODEC, ID_11, ID_44, KEYS, MASTER, PROVINCES, TOPICS, USCC_11, USCC_31, USCC_44, case,
                           event, operator, registered)

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CTX = StageContext(CODEC, TOPICS, registered(KEYS), PROVINCES)
FINDINGS = FindingCodec(CODEC.registry)
ALL_KEYS = {**KEYS, "31": signing.mac(MASTER, "31".encode())}
FOREIGN_KEY = signing.mac(b"another-master", "44".encode())
OUTCOMES = (ACCEPTED, DUPLICATE, UNCHANGED, STALE, REJECTED)
EVENT_IDS = [str(uuid.UUID(int=n)) for n in range(1, 6)]  # a few ids reused, so duplicates happen


def vehicle(**overrides):
    record = {"plate": "粤B12345", "plate_color": 2, "vin": None, "vehicle_class": "truck", "operator_uscc": USCC_44,
              "transport_cert_no": None, "seats": None, "tonnage_kg": 10_000, "status": "active"}
    return {**record, **overrides}


def practitioner(**overrides):
    record = {"id_number": ID_44, "name": "李四", "qualification_cert_no": "Q44", "qualification_types": ["货运驾驶员"],
              "region_code": "440300", "employer_uscc": USCC_44, "status": "active"}
    return {**record, **overrides}


def licence(**overrides):
    record = {"licence_no": "粤交运管许可深字440300000001号", "licence_type": "operating_permit",
              "holder_key": f"operator:{USCC_44}", "issuer_region_code": "440300", "valid_from": 19_500,
              "valid_until": 21_000, "status": "valid"}
    return {**record, **overrides}


# Valid records of province 44 (some involving province 11 or 31, so cases get routed).
VALID_RECORDS = [
    ("operator", operator()), ("operator", operator(status="suspended")), ("operator", operator(uscc=USCC_11)),
    ("vehicle", vehicle()), ("vehicle", vehicle(plate="京A12345")), ("practitioner", practitioner()),
    ("practitioner", practitioner(id_number=ID_11, region_code="110105")), ("licence", licence()),
    ("case", case()), ("case", case(involved_plate="京A12345", involved_operator_uscc=USCC_31)),
    ("case", case(stage="decided", involved_id_number=ID_11)), ("case", case(stage="filed", involved_plate=None)),
]

wild_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=10),
    st.sampled_from(["", " ", "=cmd|' /C calc'!A0", "'; DROP TABLE x; --", "粤I12345", "91440300MA5F0000X0", "99",
                     "active", "filed", "closed", "110105", "x" * 1025]),
)
wild_int = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 2, 93, 10_000]))


@st.composite
def valid_events(draw):
    entity_type, record = draw(st.sampled_from(VALID_RECORDS))
    op = draw(st.sampled_from(["c", "u", "d", "r"]))
    event_id = draw(st.sampled_from(EVENT_IDS) | st.uuids().map(str))
    ev = event(entity_type, dict(record), op=op, event_id=event_id)
    ev["source"]["seq"] = draw(st.integers(0, 4))
    return ev


@st.composite
def field_mutated_events(draw):
    """A valid event with one record or envelope field changed to a random value of its type."""
    ev = draw(valid_events())
    record = ev["after"] if ev["after"] is not None else ev["before"]
    where = draw(st.sampled_from(["record", "record", "envelope", "source"]))
    if where == "record":
        name = draw(st.sampled_from(sorted(record)))
        current = record[name]
        if isinstance(current, list):
            record[name] = draw(st.lists(wild_text, max_size=3))
        elif name in ("seats", "tonnage_kg", "penalty_cents"):
            record[name] = draw(st.none() | wild_int)
        elif isinstance(current, int):
            record[name] = draw(wild_int)
        else:
            record[name] = draw(wild_text | st.none())
    elif where == "envelope":
        name = draw(st.sampled_from(["op", "entity_key", "entity_type", "before", "after"]))
        if name in ("before", "after"):
            ev[name] = draw(st.none() | st.just(dict(record)))
        else:
            ev[name] = draw(wild_text | st.sampled_from(["c", "u", "d", "r", "operator", "case"]))
    else:
        name = draw(st.sampled_from(["province", "system", "table", "seq"]))
        ev["source"][name] = draw(st.integers(-5, 5)) if name == "seq" else draw(
            wild_text | st.sampled_from(["44", "11", "31"]))
    return ev


def signed_or_none(ev, key):
    try:
        return CODEC.encode(ev, key)
    except EncodeError:
        return None  # a record the contract cannot carry never reaches a topic


@st.composite
def messages(draw, earlier: list[tuple[str, bytes | None]]):
    """(topic, value) of one consumed message; ``earlier`` lets a message repeat a previous one."""
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "bit_flip", "truncated", "splice",
                                 "random", "none", "wrong_magic", "unknown_id", "unsigned", "forged",
                                 "wrong_topic", "foreign_topic", "repeat"]))
    topic = TOPICS.province_changes("44")
    if kind == "repeat" and earlier:
        return draw(st.sampled_from(earlier))
    if kind == "random":
        return topic, draw(st.binary(max_size=200))
    if kind == "none":
        return topic, draw(st.sampled_from([None, b""]))
    ev = draw(field_mutated_events() if kind == "mutated" else valid_events())
    province = ev["source"]["province"] if ev["source"]["province"] in ALL_KEYS else "44"
    key = {"unsigned": None, "forged": FOREIGN_KEY}.get(kind, ALL_KEYS[province])
    value = signed_or_none(ev, key)
    if value is None:
        return topic, draw(st.binary(max_size=50))
    if kind == "bit_flip":
        flipped = bytearray(value)
        for bit in draw(st.lists(st.integers(0, len(value) * 8 - 1), min_size=1, max_size=4)):
            flipped[bit // 8] ^= 1 << (bit % 8)
        value = bytes(flipped)
    elif kind == "truncated":
        value = value[: draw(st.integers(0, len(value) - 1))]
    elif kind == "splice":
        other = CODEC.encode(draw(valid_events()), KEYS["44"])
        value = value[: draw(st.integers(0, len(value)))] + other[draw(st.integers(0, len(other))):]
    elif kind == "wrong_magic":
        value = bytes([draw(st.integers(1, 255))]) + value[1:]
    elif kind == "unknown_id":
        value = value[:1] + struct.pack(">I", draw(st.integers(0, 2**32 - 1))) + value[5:]
    if kind == "wrong_topic":
        topic = TOPICS.province_changes(draw(st.sampled_from(["11", "31", "99"])))
    elif kind == "foreign_topic":
        topic = draw(st.sampled_from(["t.national.changes", "other.prov.44.changes", "t.prov.4.changes"]))
    elif ev["source"]["province"] in ALL_KEYS:
        topic = TOPICS.province_changes(ev["source"]["province"])
    return topic, value


@st.composite
def batches(draw):
    batch: list[tuple[str, bytes | None]] = []
    for _ in range(draw(st.integers(1, 12))):
        batch.append(draw(messages(list(batch))))
    return [Inbound(topic, 0, offset, f"k{offset}".encode(), value) for offset, (topic, value) in enumerate(batch)]


def outcome_totals(result):
    totals = dict.fromkeys(OUTCOMES, 0)
    for (outcome, _province), n in result.counts.items():
        assert outcome in totals, outcome
        totals[outcome] += n
    return totals


def check_accounted_for(batch, result):
    """Every input has one outcome; each rejected input one DLQ record with a reason; nothing unexpected."""
    totals = outcome_totals(result)
    assert sum(totals.values()) == len(batch)
    dead = [o for o in result.outputs if o.topic == TOPICS.national_dlq]
    assert len(dead) == totals[REJECTED] == sum(result.rejects.values())
    dead_offsets = []
    for out in dead:
        h = dict(out.headers)
        offset = int(h[th.DLQ_OFFSET])
        dead_offsets.append(offset)
        assert h[th.DLQ_REASON].strip() and h[th.DLQ_RULE].strip()
        assert h[th.DLQ_RULE] != b"processing_error", h[th.DLQ_REASON].decode()
        assert h[th.DLQ_TOPIC] == batch[offset].topic.encode()
        assert (out.key, out.value) == (batch[offset].key, batch[offset].value)
    assert len(set(dead_offsets)) == len(dead_offsets)
    passed = [index for index, _event_id in result.accepted]
    assert len(passed) == totals[ACCEPTED] + totals[UNCHANGED] + totals[STALE]
    assert not set(passed) & set(dead_offsets)
    assert len(set(passed)) == len(passed)
    forwarded = [o for o in result.outputs if o.topic == TOPICS.national_changes]
    assert len(forwarded) == totals[ACCEPTED] + totals[STALE]
    assert all(o.value == batch[int(dict(o.headers)["roadx.source.offset"])].value for o in forwarded)
    allowed = {TOPICS.national_changes, TOPICS.national_dlq, TOPICS.national_quality} | {
        TOPICS.province_inbound(p) for p in PROVINCES}
    assert {o.topic for o in result.outputs} <= allowed
    for out in result.outputs:
        if out.topic == TOPICS.national_quality:
            assert FINDINGS.decode(out.value)["message"]
    return totals, set(passed), set(dead_offsets)


@FUZZ
@given(batches())
def test_every_message_of_a_fuzzed_batch_is_accounted_for_once(batch):
    check_accounted_for(batch, process_batch(batch, CTX, {}, now_ms=1))


def identity_of(value):
    """(event id, entity key) of a message that decodes: an entity remembers the ids it accepted."""
    try:
        event = CODEC.decode(value)[1]
    except DecodeError:
        return None
    return str(event["event_id"]), event["entity_key"]


@FUZZ
@given(batches())
def test_replayed_batch_passes_nothing_again(batch):
    """A batch sent twice: the second time, whatever passed is a duplicate and nothing passes anew."""
    state: dict = {}
    first = process_batch(batch, CTX, state, now_ms=1)
    check_accounted_for(batch, first)
    seen = {identity_of(batch[index].value) for index, _event_id in first.accepted}
    replay = [Inbound(m.topic, m.partition, m.offset, m.key, m.value) for m in batch]
    again = process_batch(replay, CTX, state, now_ms=2)
    totals, passed_again, dead_again = check_accounted_for(replay, again)
    assert passed_again == set() and totals[ACCEPTED] == totals[UNCHANGED] == totals[STALE] == 0
    for index, message in enumerate(batch):
        if identity_of(message.value) in seen and index in dead_again:
            # rejected although its event id passed for its entity: only a provenance rule may say so
            rule = dict(next(o.headers for o in again.outputs if o.topic == TOPICS.national_dlq
                             and dict(o.headers)[th.DLQ_OFFSET] == str(index).encode()))[th.DLQ_RULE]
            assert rule in (b"bad_signature", b"province_mismatch", b"unknown_province"), rule


@FUZZ
@given(st.lists(field_mutated_events(), min_size=1, max_size=8))
def test_re_signed_mutated_events_are_accepted_or_rejected_naming_a_rule(evs):
    batch = []
    for ev in evs:
        province = ev["source"]["province"] if ev["source"]["province"] in ALL_KEYS else "44"
        value = signed_or_none(ev, ALL_KEYS[province])
        if value is not None:
            batch.append(Inbound(TOPICS.province_changes(province), 0, len(batch), b"k", value))
    result = process_batch(batch, CTX, {}, now_ms=1)
    check_accounted_for(batch, result)
    for rule, _province in result.rejects:
        assert rule not in ("processing_error", "malformed_avro", "not_framed", "unknown_schema_id"), rule
