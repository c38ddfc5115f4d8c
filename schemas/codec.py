"""Confluent-framed Avro: magic byte 0, 4-byte big-endian schema id, Avro body.

Events are plain dicts shaped like the envelope; ``before``/``after`` are plain entity
dicts — the codec picks the union branch from ``entity_type``. Quality findings
(``FindingCodec``) and the information service's request records (``ServiceRequestCodec``)
are records that stand alone, encoded the same way without a signature; a province's replies
to routed cases (``ReplyCodec``) stand alone too and are signed like its events. Decoding
resolves the writer's schema (looked up by id) to the current reader schema. What encodes also decodes:
a uuid that is not one, or a date or timestamp beyond what the reader can represent
(years 1..9999), is refused with ``EncodeError``.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import re
import struct
import uuid
from typing import Any, Callable, Mapping

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from . import contract, signing
from .errors import EncodeError, MalformedBodyError, NotFramedError
from .parties import Party
from .provenance import OUTCOME_LETTERS, SM3_BYTES
from .registry import Registry

MAGIC = 0
_HEADER = struct.Struct(">bI")
# What fastavro's writer raises for a value that does not fit its field (OverflowError: an
# integer beyond int/long).
_DOES_NOT_FIT = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)
# Readable ranges: timestamp-millis as an aware datetime, date as a date (years 1..9999).
_READABLE = {
    "timestamp-millis": ((dt.datetime.min.replace(tzinfo=dt.timezone.utc) - _EPOCH) // _MS,
                         (dt.datetime.max.replace(tzinfo=dt.timezone.utc) - _EPOCH) // _MS),
    "date": ((dt.date.min - _EPOCH.date()).days, (dt.date.max - _EPOCH.date()).days),
}
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TEXT_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class EventCodec:
    def __init__(self, registry: Registry, subject: str = "roadx-changes-value") -> None:
        self._registry = registry
        self._schema = contract.envelope_schema()
        self.schema_id = registry.id_for(subject, self._schema)
        self._header = _HEADER.pack(MAGIC, self.schema_id)
        self._logical = _logical_fields(self._schema)
        self._plans: dict[int, tuple[dict[str, Any], dict[str, Any] | None]] = {}

    @property
    def registry(self) -> Registry:
        return self._registry

    def encode(self, event: dict[str, Any], key: bytes | None = None) -> bytes:
        """Frame and encode one event; sign it when a province key is given."""
        record = dict(event)
        entity_type = event.get("entity_type")
        record_type = contract.ENTITY_RECORDS.get(entity_type) if isinstance(entity_type, str) else None
        if record_type is None:
            raise EncodeError(f"event {event.get('event_id')}: unknown entity_type {event.get('entity_type')!r}")
        unreadable = _unreadable(event, self._logical[""])
        logical = self._logical[record_type]
        for side in ("before", "after"):
            value = record.get(side)
            if value is not None:
                if logical and not unreadable and isinstance(value, dict):
                    unreadable = _unreadable(value, logical)
                record[side] = (record_type, value)
        if unreadable:
            raise EncodeError(f"event {event.get('event_id')}: field {unreadable} would not decode")
        record["signature"] = signing.PLACEHOLDER
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            schemaless_writer(buf, self._schema, record)
        except _DOES_NOT_FIT as exc:
            raise EncodeError(f"event {event.get('event_id')}: does not fit the envelope: {exc}") from exc
        framed = buf.getvalue()
        return signing.seal(framed, key) if key is not None else framed

    def decode(self, value: bytes | None) -> tuple[int, dict[str, Any]]:
        """Return (writer schema id, event), the event id as its canonical text (lower-case
        8-4-4-4-12: what ``str(uuid.UUID(...))`` gives). Raises a ``DecodeError`` subclass."""
        schema_id = read_schema_id(value)
        plan = self._plans.get(schema_id)
        if plan is None:
            plan = self._plans[schema_id] = self._plan(schema_id)
        try:
            event = schemaless_reader(io.BytesIO(value[5:]), *plan)
        except Exception as exc:  # fastavro raises many types on garbage
            raise MalformedBodyError(
                f"Avro body does not decode with schema id {schema_id}: {type(exc).__name__}: {exc}"
            ) from exc
        event_id = event.get("event_id")
        if type(event_id) is str:
            try:
                event["event_id"] = uuid_text(event_id)
            except ValueError:
                raise MalformedBodyError(f"Avro body does not decode with schema id {schema_id}: "
                                         f"event_id {event_id!r} is not a UUID") from None
        return schema_id, event

    def _plan(self, schema_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(writer, reader) to read a body of ``schema_id`` with: the writer with its uuid fields
        read as text (fastavro turns a field into a ``uuid.UUID`` by the writer's logical type,
        and the wire form is the same string), no reader when the writer is the current envelope."""
        writer = _uuids_as_text(self._registry.schema_for(schema_id))
        return parse_schema(writer), (None if schema_id == self.schema_id else self._schema)


class _RecordCodec:
    """Confluent-framed Avro for one record schema that stands alone (no union branch to
    pick, no signature of its own): what encodes also decodes, and a record that does not fit
    — or that ``problem`` (the contract's check beyond the Avro types) finds wrong — is refused
    with ``EncodeError`` naming the field."""

    def __init__(self, registry: Registry, subject: str, schema: dict[str, Any], what: str, id_field: str,
                 problem: Callable[[Mapping[str, Any]], str | None] | None = None) -> None:
        self._registry = registry
        self._schema = schema
        self.schema_id = registry.id_for(subject, schema)
        self._header = _HEADER.pack(MAGIC, self.schema_id)
        self._logical = _logical_of(schema)
        self._what, self._id_field = what, id_field
        self._problem = problem

    def encode(self, record: Mapping[str, Any]) -> bytes:
        problem = self._problem(record) if self._problem is not None else None
        if problem:
            raise EncodeError(f"{self._named(record)}: field {problem}")
        unreadable = _unreadable(record, self._logical)
        if unreadable:
            raise EncodeError(f"{self._named(record)}: field {unreadable} would not decode")
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            schemaless_writer(buf, self._schema, record)
        except _DOES_NOT_FIT as exc:
            raise EncodeError(f"{self._named(record)}: does not fit the schema: "
                              f"{_misfit(record, self._schema) or exc}") from exc
        return buf.getvalue()

    def decode(self, value: bytes | None) -> dict[str, Any]:
        writer = self._registry.schema_for(read_schema_id(value))
        try:
            return schemaless_reader(io.BytesIO(value[5:]), writer, self._schema)
        except Exception as exc:  # fastavro raises many types on garbage
            raise MalformedBodyError(f"Avro body is not a {self._what}: {type(exc).__name__}: {exc}") from exc

    def _named(self, record: Mapping[str, Any]) -> str:
        return f"{self._what} {record.get(self._id_field)}"


class FindingCodec(_RecordCodec):
    """Confluent-framed Avro for ``roadx.QualityFinding`` records (``national.quality``)."""

    def __init__(self, registry: Registry, subject: str = "roadx-quality-value") -> None:
        super().__init__(registry, subject, contract.finding_schema(), "quality finding", "finding_id")


class ServiceRequestCodec(_RecordCodec):
    """Confluent-framed Avro for ``roadx.ServiceRequest`` records (``national.audit``): one per
    request the information service answered, its personal identifiers already tokenized.

    ``encode`` also refuses what ``contract.service_request_problem`` finds wrong (an unknown
    outcome, a status that is no HTTP status, an identifier in clear), naming the field.
    """

    def __init__(self, registry: Registry, subject: str = "roadx-audit-value") -> None:
        super().__init__(registry, subject, contract.service_request_schema(), "service request", "request_id",
                         contract.service_request_problem)


class AssistCodec(_RecordCodec):
    """Confluent-framed Avro for ``roadx.AssistRequest`` records (``xprov.<Q>.inbound``, header
    ``roadx.routed.kind: assist``): written by the information service for the party whose
    credential asked, so not signed by a province; ``encode`` also refuses what
    ``contract.assist_request_problem`` finds wrong, naming the field — against ``parties`` (the
    exchange's, by code) when given, so that what the service writes names its own parties."""

    def __init__(self, registry: Registry, subject: str = "roadx-assists-value",
                 parties: Mapping[str, Party] | None = None) -> None:
        super().__init__(registry, subject, contract.assist_request_schema(), "assist request", "assist_id",
                         functools.partial(contract.assist_request_problem, parties=parties))


class AlertCodec(_RecordCodec):
    """Confluent-framed Avro for ``roadx.CaseAlert`` records (``national.alerts``); ``encode``
    also refuses what ``contract.case_alert_problem`` finds wrong, naming the field.

    ``decode`` also reads an alert written as a JSON object before alerts were Avro (its times
    in epoch seconds), so what waits on the topic at an upgrade is still read; anything else
    that is not framed Avro is a ``DecodeError``.
    """

    def __init__(self, registry: Registry, subject: str = "roadx-alerts-value") -> None:
        super().__init__(registry, subject, contract.case_alert_schema(), "case alert", "alert_id",
                         contract.case_alert_problem)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if value and value[:1] == b"{":
            try:
                legacy = json.loads(value)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedBodyError(f"an alert that is neither framed Avro nor JSON: {exc}") from exc
            if not isinstance(legacy, dict):
                raise MalformedBodyError("a JSON alert that is not an object")
            return legacy
        return super().decode(value)


class SubmissionTallyCodec(_RecordCodec):
    """Confluent-framed Avro for ``roadx.SubmissionTally`` records (``national.submissions``):
    the stream worker's tally of one submission's events in one batch, in columns. ``encode``
    also refuses an empty party or submission id, columns of different lengths, digests that
    are not 32 bytes (SM3) an event and an outcome letter other than a, r or d, naming the field."""

    def __init__(self, registry: Registry, subject: str = "roadx-submissions-value") -> None:
        super().__init__(registry, subject, contract.submission_tally_schema(), "submission tally", "tally_id",
                         _tally_problem)


def _tally_problem(tally: Mapping[str, Any]) -> str | None:
    for name in ("tally_id", "party", "submission_id"):
        if isinstance(tally.get(name), str) and not tally[name]:
            return f"{name} is empty"
    ids, seqs, digests, outcomes = (tally.get(name) for name in ("event_ids", "seqs", "digests", "outcomes"))
    if not isinstance(ids, (list, tuple)) or not isinstance(seqs, (list, tuple)) or len(seqs) != len(ids):
        return "seqs is not one source seq an event of event_ids"
    if not isinstance(digests, bytes) or len(digests) != SM3_BYTES * len(ids):
        return f"digests is not one SM3 digest ({SM3_BYTES} bytes) an event"
    if not isinstance(outcomes, str) or len(outcomes) != len(ids) or outcomes.strip(OUTCOME_LETTERS):
        return f"outcomes is not one letter ({', '.join(OUTCOME_LETTERS)}) an event"
    return None


class ReplyCodec:
    """Confluent-framed, signed Avro for ``roadx.CaseReply`` records (``prov.<Q>.replies``):
    a province's receipt, progress, answer or decline of a case routed to it.

    ``encode`` refuses what ``contract.case_reply_problem`` finds wrong (an unknown kind, an
    answer without a valid outcome, a decline without a reason …) or what does not fit the
    schema (a bad uuid …), naming the field, then seals the framed reply with the province's
    key as ``EventCodec`` seals an event; ``signed_with`` says whether a framed reply carries a
    valid signature under a key (``signing.verify``).
    """

    def __init__(self, registry: Registry, subject: str = "roadx-replies-value") -> None:
        self._record = _RecordCodec(registry, subject, contract.case_reply_schema(), "case reply", "reply_id",
                                    contract.case_reply_problem)
        self.schema_id = self._record.schema_id

    def encode(self, reply: Mapping[str, Any], key: bytes) -> bytes:
        """Frame, encode and sign one reply with the replying province's ``key``."""
        unsigned = self._record.encode({**reply, contract.SIGNATURE_FIELD: signing.PLACEHOLDER})
        return signing.seal(unsigned, key)

    def decode(self, value: bytes | None) -> tuple[int, dict[str, Any]]:
        """Return (writer schema id, reply). Raises a ``DecodeError`` subclass; checks no signature."""
        return read_schema_id(value), self._record.decode(value)

    @staticmethod
    def signed_with(value: bytes, key: bytes) -> bool:
        """Whether the framed reply ``value`` ends with a valid signature under ``key`` (the key of
        the province it names in ``from_province``)."""
        return signing.verify(value, key)


def read_schema_id(value: bytes | None) -> int:
    if not value:
        raise NotFramedError("empty message: expected Confluent-framed Avro")
    if len(value) < 5 or value[0] != MAGIC:
        raise NotFramedError(
            f"not Confluent-framed Avro: first byte is 0x{value[0]:02x}, expected magic byte 0x00"
            if value
            else "empty message"
        )
    return _HEADER.unpack_from(value)[1]


def _logical_fields(envelope: Mapping[str, Any]) -> dict[str, tuple[tuple[str, str, int, int], ...]]:
    """Fields with a logical type the reader converts, with their readable range:
    ``""`` for the envelope, else per record name."""
    records = {name: _logical_of(record) for name, record in contract.entity_records(envelope).items()}
    return {"": _logical_of(envelope), **records}


def _logical_of(record: Mapping[str, Any]) -> tuple[tuple[str, str, int, int], ...]:
    """The fields of one record with a logical type the reader converts, with their readable range."""
    found = []
    for field in record["fields"]:
        for ftype in field["type"] if isinstance(field["type"], list) else [field["type"]]:
            logical = ftype.get("logicalType") if isinstance(ftype, dict) else None
            if logical == "uuid":
                found.append((field["name"], logical, 0, 0))
            elif logical in _READABLE:
                found.append((field["name"], logical, *_READABLE[logical]))
    return tuple(found)


def _uuids_as_text(schema: Any) -> Any:
    """A copy of a parsed schema with every uuid field a plain string, fastavro's own keys left out."""
    if isinstance(schema, dict):
        if schema.get("logicalType") == "uuid":
            return "string"
        return {k: _uuids_as_text(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_uuids_as_text(item) for item in schema]
    return schema


def uuid_text(value: Any) -> str:
    """A UUID (a ``uuid.UUID``, or text in any form ``uuid.UUID`` reads: upper case, braces, no
    hyphens) as its canonical text, lower-case 8-4-4-4-12; ``ValueError`` when it is not one."""
    if type(value) is str and _TEXT_UUID.fullmatch(value):
        return value
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _misfit(record: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """What fastavro's validator says of a record that did not encode: it names the field."""
    try:
        validate(record, schema, raise_errors=True)
    except ValidationError as exc:
        return "; ".join(str(error) for error in exc.errors)
    except Exception:  # the validator trips over some values the writer also refused
        return None
    return None


def _unreadable(record: Mapping[str, Any], fields: tuple[tuple[str, str, int, int], ...]) -> str | None:
    """The first field whose value the reader could not turn back into its logical type, with the value."""
    for name, logical, low, high in fields:
        value = record.get(name)
        if logical == "uuid":
            if type(value) is not str or _CANONICAL_UUID.fullmatch(value):
                continue
            try:
                uuid.UUID(value)
                continue
            except ValueError:
                return f"{name} {value!r} (not a UUID)"
        elif type(value) is int:
            if low <= value <= high:
                continue
        elif isinstance(value, dt.datetime):
            if value.tzinfo is None or low <= (value - _EPOCH) // _MS <= high:
                continue
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or low <= value <= high:
            continue
        return f"{name} {value!r} (a {logical} outside years 1..9999)"
    return None
