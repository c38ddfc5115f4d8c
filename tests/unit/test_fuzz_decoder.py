"""Fuzzing the codec: random bytes and mutated valid messages only ever raise ``DecodeError``.

Mutations of a valid framed event: bit flips, truncation, splices of two messages, a wrong
magic byte, an unknown schema id, a valid Avro body of another schema, huge length
prefixes. Encoding random field values only ever raises ``EncodeError``.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import uuid

from fastavro import schemaless_writer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas import contract, signing
from schemas.codec import MAGIC, EventCodec, FindingCodec
from schemas.errors import DecodeError, EncodeError, MalformedBodyError, NotFramedError, UnknownSchemaError
from schemas.registry import EmbeddedRegistry

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
REGISTRY = EmbeddedRegistry()
CODEC = EventCodec(REGISTRY)
FINDINGS = FindingCodec(REGISTRY)
KEY = signing.mac(b"fuzz-master", "44".encode())
KNOWN_IDS = {CODEC.schema_id, FINDINGS.schema_id} | {
    REGISTRY.id_for("history", schema) for _name, schema in contract.historic_envelopes()}
ENVELOPE_FIELDS = {f["name"] for f in contract.envelope_schema()["fields"]}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# Milliseconds a timestamp-millis may carry and still read back as a datetime.
MIN_MS = int((dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc) - EPOCH).total_seconds() * 1000)
MAX_MS = int((dt.datetime(9999, 12, 30, tzinfo=dt.timezone.utc) - EPOCH).total_seconds() * 1000)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
maybe_text = st.none() | text
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
millis = st.integers(MIN_MS, MAX_MS)
days = st.integers(-719_000, 2_900_000)  # 0002-…-9909 as days since 1970-01-01

RECORDS = {
    "operator": st.fixed_dictionaries({
        "uscc": text, "name": text, "region_code": text, "permit_no": maybe_text, "business_scope": maybe_text,
        "status": text, "legal_rep_id_number": maybe_text, "contact_phone": maybe_text}),
    "vehicle": st.fixed_dictionaries({
        "plate": text, "plate_color": int32, "vin": maybe_text, "vehicle_class": text, "operator_uscc": text,
        "transport_cert_no": maybe_text, "seats": st.none() | int32, "tonnage_kg": st.none() | int32,
        "status": text}),
    "practitioner": st.fixed_dictionaries({
        "id_number": text, "name": text, "qualification_cert_no": text,
        "qualification_types": st.lists(text, max_size=4), "region_code": text, "employer_uscc": maybe_text,
        "status": text}),
    "licence": st.fixed_dictionaries({
        "licence_no": text, "licence_type": text, "holder_key": text, "issuer_region_code": text,
        "valid_from": days, "valid_until": days, "status": text}),
    "case": st.fixed_dictionaries({
        "case_no": text, "region_code": text, "stage": text, "violation_code": text, "occurred_at": millis,
        "involved_plate": maybe_text, "involved_operator_uscc": maybe_text, "involved_id_number": maybe_text,
        "penalty_cents": st.none() | int64, "involved_ship_id": maybe_text}),
    "ship": st.fixed_dictionaries({
        "ship_id": text, "name": text, "imo": maybe_text, "mmsi": maybe_text, "port_of_registry": text,
        "gross_tonnage": st.none() | int32, "ship_type": text, "operator_uscc": text, "status": text}),
    "shipping_enterprise": st.fixed_dictionaries({
        "uscc": text, "name": text, "permit_no": maybe_text, "business_scope": st.lists(text, max_size=4),
        "region_code": text, "status": text}),
    "port_enterprise": st.fixed_dictionaries({
        "uscc": text, "name": text, "permit_no": maybe_text, "port": text, "region_code": text, "status": text}),
    "waterway_project": st.fixed_dictionaries({
        "project_code": text, "name": text, "owner_uscc": text, "region_code": text,
        "total_investment_yuan": st.none() | int64, "start_date": st.none() | days, "end_date": st.none() | days,
        "status": text}),
}


@st.composite
def events(draw):
    """A well-typed envelope of any entity type, with random content."""
    entity_type = draw(st.sampled_from(contract.ENTITY_TYPES))
    record = draw(RECORDS[entity_type])
    op = draw(st.sampled_from(contract.OPS))
    return {
        "event_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))), "op": op, "entity_type": entity_type,
        "entity_key": draw(text), "before": record if op == "d" else draw(st.none() | RECORDS[entity_type]),
        "after": None if op == "d" else record,
        "source": {"province": draw(text), "system": draw(text), "table": draw(text), "seq": draw(int64),
                   "snapshot": draw(st.booleans()),
                   "submission": draw(st.one_of(st.none(), st.text(min_size=1, max_size=20)))},
        "ts_ms": draw(millis),
    }


signed_messages = events().map(lambda ev: CODEC.encode(ev, KEY))


def zigzag_varint(n: int) -> bytes:
    """Avro's encoding of a long (used for every length prefix)."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def decodes_or_raises_decode_error(value: bytes | None) -> dict | None:
    """The property every decode must hold: a whole event, or a ``DecodeError`` with a rule and a message."""
    try:
        schema_id, event = CODEC.decode(value)
    except DecodeError as exc:
        assert exc.rule in {"not_framed", "unknown_schema_id", "malformed_avro"}
        assert str(exc)
        return None
    assert schema_id in KNOWN_IDS
    assert ENVELOPE_FIELDS <= set(event)
    return event


@FUZZ
@given(st.none() | st.binary(max_size=300))
@example(None)
@example(b"")
@example(b"\x00")
@example(b"\x00\x00\x00\x00")
def test_random_bytes_only_ever_raise_a_decode_error(value):
    decodes_or_raises_decode_error(value)


@FUZZ
@given(st.binary(max_size=300))
def test_random_body_behind_a_valid_header_only_ever_raises_a_decode_error(body):
    for schema_id in sorted(KNOWN_IDS):
        value = struct.pack(">bI", MAGIC, schema_id) + body
        decodes_or_raises_decode_error(value)
        try:
            assert isinstance(FINDINGS.decode(value), dict)
        except DecodeError:
            pass


@FUZZ
@given(events())
def test_valid_event_decodes_to_what_was_encoded(event):
    _schema_id, decoded = CODEC.decode(CODEC.encode(event, KEY))
    assert (str(decoded["event_id"]), decoded["entity_key"], decoded["after"], decoded["source"]) == (
        event["event_id"], event["entity_key"], _as_read(event["after"]), event["source"])


def _as_read(record):
    """A record as the reader gives it back: dates and timestamps as date/datetime objects."""
    if record is None:
        return None
    out = dict(record)
    if "licence_no" in out:
        out.setdefault("seal", None)  # an optional field the writer left out reads as its default
    for name in ("valid_from", "valid_until", "start_date", "end_date"):
        if out.get(name) is not None:
            out[name] = dt.date(1970, 1, 1) + dt.timedelta(days=out[name])
    if "occurred_at" in out:
        out["occurred_at"] = EPOCH + dt.timedelta(milliseconds=out["occurred_at"])
    return out


@FUZZ
@given(signed_messages, st.data())
def test_bit_flips_in_a_valid_message_only_ever_raise_a_decode_error(message, data):
    flipped = bytearray(message)
    for position in data.draw(st.lists(st.integers(0, len(message) * 8 - 1), min_size=1, max_size=8)):
        flipped[position // 8] ^= 1 << (position % 8)
    decodes_or_raises_decode_error(bytes(flipped))


@FUZZ
@given(signed_messages, st.data())
def test_truncated_message_is_not_framed_or_malformed(message, data):
    cut = data.draw(st.integers(0, len(message) - 1))
    truncated = message[:cut]
    expected = NotFramedError if cut < 5 else MalformedBodyError
    try:
        CODEC.decode(truncated)
    except expected:
        return
    raise AssertionError(f"{cut} of {len(message)} bytes did not raise {expected.__name__}")


@FUZZ
@given(signed_messages, signed_messages, st.data())
def test_splice_of_two_messages_only_ever_raises_a_decode_error(first, second, data):
    head = data.draw(st.integers(0, len(first)))
    tail = data.draw(st.integers(0, len(second)))
    decodes_or_raises_decode_error(first[:head] + second[tail:])


@FUZZ
@given(signed_messages, st.integers(1, 255))
def test_wrong_magic_byte_is_not_framed(message, magic):
    try:
        CODEC.decode(bytes([magic]) + message[1:])
    except NotFramedError as exc:
        assert f"0x{magic:02x}" in str(exc)
        return
    raise AssertionError("a wrong magic byte decoded")


@FUZZ
@given(signed_messages, st.integers(0, 2**32 - 1).filter(lambda i: i not in KNOWN_IDS))
def test_unknown_schema_id_is_reported_with_the_id(message, schema_id):
    try:
        CODEC.decode(message[:1] + struct.pack(">I", schema_id) + message[5:])
    except UnknownSchemaError as exc:
        assert exc.schema_id == schema_id and str(schema_id) in str(exc)
        return
    raise AssertionError(f"schema id {schema_id} decoded")


findings = st.fixed_dictionaries({
    "finding_id": text, "rule": text, "dimension": text, "severity": text, "province": text,
    "entity_type": maybe_text, "entity_key": maybe_text, "event_id": maybe_text, "field": maybe_text,
    "message": text, "source_topic": text, "source_partition": int32, "source_offset": int64,
    "event_ts_ms": st.none() | millis, "detected_ms": millis,
})


@FUZZ
@given(findings)
def test_valid_avro_of_another_schema_is_malformed_or_unknown_not_an_event(finding):
    body = FINDINGS.encode(finding)[5:]
    # a finding framed with its own id, and a finding's body behind the envelope's id
    for value in (FINDINGS.encode(finding), struct.pack(">bI", MAGIC, CODEC.schema_id) + body):
        try:
            CODEC.decode(value)
        except DecodeError:
            continue
        raise AssertionError("a quality finding decoded as a change event")


@FUZZ
@given(events(), st.sampled_from(["event_id", "entity_key", "signature"]),
       st.integers(2**20, 2**62))
def test_huge_length_prefix_is_malformed(event, field, length):
    """A string or bytes field claiming more bytes than the message holds."""
    fields = contract.envelope_schema()["fields"]
    position = [f["name"] for f in fields].index(field)
    record = dict(CODEC.decode(CODEC.encode(event))[1])
    # encode every field up to the one whose length is forged, with the real writer
    prefix = io.BytesIO()
    schema = dict(contract.envelope_schema(), fields=fields[:position])
    schemaless_writer(prefix, schema, {f["name"]: _as_written(f["name"], record) for f in fields[:position]})
    value = struct.pack(">bI", MAGIC, CODEC.schema_id) + prefix.getvalue() + zigzag_varint(length) + b"\x41" * 64
    try:
        CODEC.decode(value)
    except MalformedBodyError:
        return
    raise AssertionError(f"a {length}-byte {field} decoded from a short message")


def _as_written(name, record):
    value = record[name]
    if name in ("before", "after") and value is not None:
        return (contract.ENTITY_RECORDS[record["entity_type"]], value)
    return value


@FUZZ
@given(signed_messages, st.data())
def test_huge_varint_inserted_anywhere_only_ever_raises_a_decode_error(message, data):
    at = data.draw(st.integers(5, len(message)))
    varint = zigzag_varint(data.draw(st.integers(-(2**63), 2**63 - 1)))
    decodes_or_raises_decode_error(message[:at] + varint + message[at:])


# ---- encoding: only EncodeError for a record that does not fit ---------------------------------

wild = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.binary(max_size=10) | (
    st.lists(st.integers(), max_size=2))


@FUZZ
@given(events(), st.data())
@example({"event_id": str(uuid.uuid4()), "op": "c", "entity_type": "case", "entity_key": "case:X", "before": None,
          "after": None, "source": {"province": "44", "system": "s", "table": "t", "seq": 10**30, "snapshot": False},
          "ts_ms": 0}, None)
@example({"event_id": str(uuid.uuid4()), "op": "c", "entity_type": ["case"], "entity_key": "case:X", "before": None,
          "after": None, "source": {}, "ts_ms": 0}, None)
def test_event_with_a_wrong_value_raises_only_encode_error(event, data):
    if data is not None:
        target = data.draw(st.sampled_from(["envelope", "source", "record"]))
        if target == "envelope":
            event[data.draw(st.sampled_from(sorted(ENVELOPE_FIELDS - {"signature"})))] = data.draw(wild)
        elif target == "source":
            event["source"][data.draw(st.sampled_from(sorted(event["source"])))] = data.draw(wild)
        else:
            record = event["after"] if event["after"] is not None else event["before"]
            record[data.draw(st.sampled_from(sorted(record)))] = data.draw(wild)
    try:
        value = CODEC.encode(event, KEY)
    except EncodeError as exc:
        assert str(exc)
        return
    CODEC.decode(value)  # what encodes also decodes


LOW_DAY, HIGH_DAY = (dt.date.min - EPOCH.date()).days, (dt.date.max - EPOCH.date()).days
LOW_MS = (dt.datetime.min.replace(tzinfo=dt.timezone.utc) - EPOCH) // dt.timedelta(milliseconds=1)
HIGH_MS = (dt.datetime.max.replace(tzinfo=dt.timezone.utc) - EPOCH) // dt.timedelta(milliseconds=1)


@FUZZ
@given(st.sampled_from(["ts_ms", "occurred_at", "valid_from", "event_id"]), st.data())
@example("ts_ms", None)
def test_what_encodes_also_decodes_at_the_edges_of_dates_times_and_uuids(field, data):
    edges = {
        "ts_ms": [LOW_MS - 1, LOW_MS, HIGH_MS, HIGH_MS + 1, 2**62, -(2**62)],
        "occurred_at": [LOW_MS - 1, LOW_MS, HIGH_MS, HIGH_MS + 1, float(HIGH_MS) * 10,
                        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))],
        "valid_from": [LOW_DAY - 1, LOW_DAY, HIGH_DAY, HIGH_DAY + 1, 2**31 - 1, -(2**31)],
        "event_id": ["nope", "", "{12345678-1234-5678-1234-567812345678}", "12345678123456781234567812345678",
                     "urn:uuid:12345678-1234-5678-1234-567812345678", "12345678-1234-5678-1234-56781234567g"],
    }[field]
    value = edges[0] if data is None else data.draw(st.sampled_from(edges) | st.integers(-(2**64), 2**64) | text)
    entity_type = {"occurred_at": "case", "valid_from": "licence"}.get(field, "operator")
    event = {
        "event_id": str(uuid.uuid4()), "op": "c", "entity_type": entity_type, "entity_key": "k", "before": None,
        "after": data.draw(RECORDS[entity_type]) if data is not None else {
            "uscc": "u", "name": "n", "region_code": "r", "permit_no": None, "business_scope": None, "status": "s",
            "legal_rep_id_number": None, "contact_phone": None},
        "source": {"province": "44", "system": "s", "table": "t", "seq": 1, "snapshot": False}, "ts_ms": 0,
    }
    (event["after"] if field in ("occurred_at", "valid_from") else event)[field] = value
    try:
        encoded = CODEC.encode(event, KEY)
    except EncodeError as exc:
        assert field in str(exc) or "does not fit" in str(exc)
        return
    CODEC.decode(encoded)
