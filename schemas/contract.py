"""The Avro contract: the change-event envelope and the entity records it carries, the quality
finding, the information service's request record and a province's reply to a routed case.

Schemas are read from ``schemas/avro/*.avsc`` once per process. The registers the line
carries are the declared ones (``schemas.registers``), in declaration order
(``ENTITY_RECORDS``): the envelope's ``before``/``after`` union is made at load from their
records (``RegisterDecl.avro_record``), so a register declared in the configured directory is
carried with no other change. The envelope file names the exchange's own registers in that
union, and each of their record files is what its declaration makes: tests keep both equal
to the declarations. What else is known about a register is its declaration's: its key fields
(``KEY_FIELDS``), its fields and their kinds (``field_specs``). Entity keys follow
``<entity_type>:<natural key>`` so that all events of one entity share a partition;
``change_event`` builds the (unsigned, unencoded) envelope every adapter publishes;
``service_request_problem`` says what is wrong with a service request beyond its Avro types
(the codec refuses such a record, the sink stores it as a dead letter), ``case_reply_problem``
the same of a case reply.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from fastavro import parse_schema
from fastavro.schema import load_schema, to_parsing_canonical_form

from . import registers
from .codes import ANSWER, DECLINE, REPLY_KINDS, REPLY_OUTCOMES
from .errors import SchemaLoadError
from .identifiers import PROVINCES
from .parties import Party, is_party_code, known_registers
from .pii import TOKEN_BYTES, mask_raw, may_hold_personal_number

AVRO_DIR = Path(__file__).with_name("avro")
HISTORY_DIR = AVRO_DIR / "history"
ENVELOPE_FILE = "roadx.ChangeEvent.avsc"
FINDING_FILE = "roadx.QualityFinding.avsc"
SERVICE_REQUEST_FILE = "roadx.ServiceRequest.avsc"
CASE_REPLY_FILE = "roadx.CaseReply.avsc"
ASSIST_REQUEST_FILE = "roadx.AssistRequest.avsc"
CASE_ALERT_FILE = "roadx.CaseAlert.avsc"
SUBMISSION_TALLY_FILE = "roadx.SubmissionTally.avsc"
SIGNATURE_FIELD = "signature"

OPS = ("c", "u", "d", "r")


def _carried_records() -> dict[str, str]:
    """Entity type → Avro record of every declared register, in declaration order."""
    return {register.entity_type: register.record for register in registers.declarations()}


ENTITY_RECORDS: Mapping[str, str] = MappingProxyType(_carried_records())
ENTITY_TYPES = tuple(ENTITY_RECORDS)
# The fields whose values, joined by ":", are an entity's natural key (its declaration's ``key``).
KEY_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    entity_type: registers.declaration(entity_type).key_fields for entity_type in ENTITY_TYPES
})
# The kinds of value an entity field holds, from its Avro type: string, int, long, date (days
# since 1970-01-01, Avro ``date``), timestamp (epoch ms, ``timestamp-millis``), string_array,
# record (a nested record: a licence's seal, ``schemas.seals``). The declarations' kinds.
KINDS = registers.KINDS
# What the information service made of a request (``roadx.ServiceRequest.outcome``).
SERVICE_OUTCOMES = ("found", "unknown", "invalid", "denied", "limited", "error", "routed")
_TOKEN = re.compile(f"tok_[0-9a-f]{{{2 * TOKEN_BYTES}}}")  # a personal identifier as schemas.pii tokenizes it
_INT_MAX = 2**31 - 1

__all__ = [
    "ENTITY_RECORDS", "ENTITY_TYPES", "FieldSpec", "KEY_FIELDS", "KINDS", "OPS", "SERVICE_OUTCOMES",
    "case_reply_problem", "case_reply_schema", "change_event", "entity_fields", "entity_key", "entity_records",
    "envelope_canonical", "envelope_schema", "field_specs", "finding_schema", "historic_case_replies",
    "historic_envelopes", "historic_findings", "historic_service_requests", "holds_clear_identifier",
    "required_fields", "service_request_problem", "service_request_schema",
]


@functools.cache
def envelope_schema() -> dict[str, Any]:
    """The current envelope, parsed: the envelope file with the declared registers' records as
    the ``before``/``after`` union (``schemas.registers``)."""
    try:
        envelope = json.loads((AVRO_DIR / ENVELOPE_FILE).read_text("utf-8"))
        records = [register.avro_record() for register in registers.declarations()]
        for field in envelope["fields"]:
            if field["name"] in ("before", "after"):
                field["type"] = ["null", *(records if field["name"] == "before" else
                                           (record_name(record) for record in records))]
        schema = parse_schema(envelope)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SchemaLoadError(f"cannot load {ENVELOPE_FILE} with the declared registers' records: {exc}") from exc
    if schema["fields"][-1]["name"] != SIGNATURE_FIELD:
        raise SchemaLoadError("the envelope's last field must be 'signature'")
    return schema


def record_name(record: Mapping[str, Any]) -> str:
    """The full name of an Avro record schema (``roadx.Ship``)."""
    return f"{record['namespace']}.{record['name']}" if record.get("namespace") else record["name"]


@functools.cache
def envelope_canonical() -> str:
    """Parsing Canonical Form of the current envelope (what registries see)."""
    return to_parsing_canonical_form(envelope_schema())


@functools.cache
def finding_schema() -> dict[str, Any]:
    """The data-quality finding published to ``national.quality``, parsed."""
    return _record_schema(FINDING_FILE)


@functools.cache
def service_request_schema() -> dict[str, Any]:
    """The information service's record of one answered request, published to ``national.audit``, parsed."""
    return _record_schema(SERVICE_REQUEST_FILE)


@functools.cache
def case_reply_schema() -> dict[str, Any]:
    """A province's signed reply to a case routed to it, published to ``prov.<Q>.replies``, parsed."""
    schema = _record_schema(CASE_REPLY_FILE)
    if schema["fields"][-1]["name"] != SIGNATURE_FIELD:
        raise SchemaLoadError("the case reply's last field must be 'signature'")
    return schema


@functools.cache
def assist_request_schema() -> dict[str, Any]:
    """An assist request (协查) the information service routes to the province asked, parsed."""
    return _record_schema(ASSIST_REQUEST_FILE)


@functools.cache
def case_alert_schema() -> dict[str, Any]:
    """A deadline a case workflow missed, published to ``national.alerts``, parsed."""
    return _record_schema(CASE_ALERT_FILE)


@functools.cache
def submission_tally_schema() -> dict[str, Any]:
    """The stream worker's tally of a submission's events, published to ``national.submissions``, parsed."""
    return _record_schema(SUBMISSION_TALLY_FILE)


def _record_schema(file: str) -> dict[str, Any]:
    try:
        return load_schema(str(AVRO_DIR / file))
    except (OSError, ValueError, KeyError) as exc:
        raise SchemaLoadError(f"cannot load {file}: {exc}") from exc


def historic_envelopes() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the envelope, oldest first, parsed."""
    return _historic("ChangeEvent")


def historic_findings() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the quality finding, oldest first, parsed."""
    return _historic("QualityFinding")


def historic_service_requests() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the service request, oldest first, parsed."""
    return _historic("ServiceRequest")


def historic_case_replies() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the case reply, oldest first, parsed."""
    return _historic("CaseReply")


def historic_assist_requests() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the assist request, oldest first, parsed."""
    return _historic("AssistRequest")


def historic_case_alerts() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the case alert, oldest first, parsed."""
    return _historic("CaseAlert")


def historic_submission_tallies() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the submission tally, oldest first, parsed."""
    return _historic("SubmissionTally")


def _historic(name: str) -> list[tuple[str, dict[str, Any]]]:
    versions = []
    for path in sorted(HISTORY_DIR.glob(f"{name}.v*.avsc")):
        try:
            versions.append((path.name, parse_schema(json.loads(path.read_text("utf-8")))))
        except (OSError, ValueError) as exc:
            raise SchemaLoadError(f"cannot load {path.name}: {exc}") from exc
    return versions


@dataclass(frozen=True)
class FieldSpec:
    """One field of an entity record: its name, kind (one of ``KINDS``), whether a value is
    required (not nullable and no default) and its default."""

    name: str
    kind: str
    required: bool
    default: Any = None


def field_specs(entity_type: str) -> tuple[FieldSpec, ...]:
    """The fields of one entity record with their kinds, in schema order."""
    try:
        return _field_specs()[entity_type]
    except KeyError:
        raise ValueError(f"unknown entity type {entity_type!r}") from None


def entity_fields(entity_type: str) -> list[str]:
    """Field names of one entity record, in schema order."""
    return [spec.name for spec in field_specs(entity_type)]


def required_fields(entity_type: str) -> tuple[str, ...]:
    """The fields of one entity record that must hold a value, in schema order."""
    return tuple(spec.name for spec in field_specs(entity_type) if spec.required)


def entity_records(envelope: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The entity records of an envelope (this one or an earlier writer's), by record name."""
    return {  # each record is defined in full at its first use, referenced by name after
        t["name"]: t
        for f in envelope["fields"] if f["name"] in ("before", "after")
        for t in f["type"] if isinstance(t, dict)
    }


@functools.cache
def _field_specs() -> dict[str, tuple[FieldSpec, ...]]:
    by_name = entity_records(envelope_schema())
    return {
        etype: tuple(_field_spec(field) for field in by_name[record]["fields"])
        for etype, record in ENTITY_RECORDS.items()
    }


def _field_spec(field: dict[str, Any]) -> FieldSpec:
    ftype = field["type"]
    nullable = isinstance(ftype, list) and "null" in ftype
    if isinstance(ftype, list):
        ftype = next(t for t in ftype if t != "null")
    return FieldSpec(field["name"], registers.kind_of(field["name"], ftype), not nullable and "default" not in field,
                     field.get("default"))


def entity_key(entity_type: str, record: Mapping[str, Any]) -> str:
    """The partitioning key of an entity: ``<entity_type>:<natural key>``."""
    fields = KEY_FIELDS.get(entity_type)
    if fields is None:
        raise ValueError(f"unknown entity type {entity_type!r}")
    return f"{entity_type}:" + ":".join(str(record[name]) for name in fields)


def change_event(*, event_id: str, op: str, entity_type: str, before: Mapping[str, Any] | None,
                 after: Mapping[str, Any] | None, province: str, system: str, table: str, seq: int, ts_ms: int,
                 snapshot: bool = False, key: str | None = None, submission: str | None = None) -> dict[str, Any]:
    """The envelope of one change, not yet encoded or signed.

    The entity key is ``key`` when given, else that of ``after`` (``before`` for a delete);
    ``submission`` names the submission it is sent in (``schemas.provenance``).
    """
    if key is None:
        record = after if after is not None else before
        if record is None:
            raise ValueError(f"event {event_id}: a change needs a before or an after record")
        key = entity_key(entity_type, record)
    return {
        "event_id": event_id,
        "op": op,
        "entity_type": entity_type,
        "entity_key": key,
        "before": before,
        "after": after,
        "source": {"province": province, "system": system, "table": table, "seq": seq, "snapshot": snapshot,
                   "submission": submission},
        "ts_ms": ts_ms,
    }


def holds_clear_identifier(text: str) -> bool:
    """Whether ``text`` holds an ID or mobile number in clear (its ``tok_<token>`` tokens aside)."""
    if not may_hold_personal_number(text):
        return False
    return any(mask_raw(part.encode("utf-8")) != part.encode("utf-8") for part in _TOKEN.split(text))


def service_request_problem(request: Mapping[str, Any]) -> str | None:
    """What is wrong with a service request beyond its Avro types: ``"<field> <why>"``, else None.

    The outcome must be one of ``SERVICE_OUTCOMES``, the status an HTTP status, the record
    count and the latency not negative, and no text (an ``asked`` item included) may hold an
    ID or mobile number in clear.
    """
    outcome, status, records, latency = (request.get(name) for name in ("outcome", "status", "records", "latency_ms"))
    if outcome not in SERVICE_OUTCOMES:
        return f"outcome {outcome!r} is not one of {', '.join(SERVICE_OUTCOMES)}"
    if type(status) is not int or not 100 <= status <= 599:
        return f"status {status!r} is not an HTTP status (100..599)"
    if type(records) is not int or not 0 <= records <= _INT_MAX:
        return f"records {records!r} is not a count of records"
    if type(latency) not in (int, float) or not math.isfinite(latency) or latency < 0:
        return f"latency_ms {latency!r} is not a duration in milliseconds"
    asked = request.get("asked")
    texts = [(name, request.get(name)) for name in ("party", "credential_id", "method", "endpoint")]
    texts += [(f"asked[{i}]", item) for i, item in enumerate(asked if isinstance(asked, (list, tuple)) else ())]
    for name, text in texts:
        if isinstance(text, str) and holds_clear_identifier(text):
            return f"{name} holds an ID or mobile number in clear (tokenize it: schemas.pii PiiMasker.entity_key)"
    return None


# What a routed message (and so a reply) is keyed by: a case, or the entity an assist request
# asks about (``ASSIST_TYPES``: any register's but the case's, road or water).
ROUTABLE_TYPES = ("case",) + tuple(r for r in known_registers() if r != "case")
ASSIST_TYPES = ROUTABLE_TYPES[1:]
ASSIST_QUESTION_MAX = 1_000


def assist_request_problem(request: Mapping[str, Any], parties: Mapping[str, Party] | None = None) -> str | None:
    """What is wrong with an assist request beyond its Avro types: ``"<field> <why>"``, else None.

    ``from_party`` and ``to_province`` are party codes (``parties.is_party_code``: a province's,
    the Corps' ``66``, ``CJ`` …), two different ones, and members of ``parties`` when it is given
    (the exchange's own: the information service checks what it writes against them; a reader
    without the party set checks the shape). The entity asked about is one of ``ASSIST_TYPES``.
    ``region`` is the responsible region below the party asked: ``<code>0000`` (the party as a
    whole, ``Party.whole``), or a 6-digit GB/T 2260 code in its jurisdiction — for a province
    one of its own, for a party that is not a province one its declared regions cover
    (``Party.covers``: the Corps' ``66xxxx`` and ``6590xx``, the provinces along the Changjiang
    for ``CJ``); without the party set, for such a party any code of a known province or of its own.
    """
    for name in ("from_party", "to_province"):
        code = request.get(name)
        if not is_party_code(code):
            return f"{name} {code!r} is not a party code (a province's GB/T 2260 code, 66, CJ, ZJ …)"
        if parties is not None and code not in parties:
            return f"{name} {code!r} is not a party of this exchange ({', '.join(parties)})"
    target = request["to_province"]
    if request.get("from_party") == target:
        return f"to_province {target!r}: a party does not ask itself"
    if request.get("entity_type") not in ASSIST_TYPES:
        return f"entity_type {request.get('entity_type')!r} is not one of {', '.join(ASSIST_TYPES)}"
    question = request.get("question")
    if not isinstance(question, str) or not question.strip() or len(question) > ASSIST_QUESTION_MAX:
        return f"question: 1 to {ASSIST_QUESTION_MAX:,} characters saying what to check"
    region = request.get("region")
    if region == f"{target}0000":
        return None
    if not isinstance(region, str) or len(region) != 6 or not region.isdigit():
        return f"region {region!r} is not a 6-digit region code, nor {target}0000 (the party as a whole)"
    party = parties.get(target) if parties is not None else None
    if party is not None and not party.covers(region):
        return (f"region {region!r} is not in the jurisdiction of party {target} "
                f"(regions {', '.join(party.prefixes)}), nor {target}0000")
    if party is None and region[:2] != target and (target in PROVINCES or region[:2] not in PROVINCES):
        return f"region {region!r} is not a region of party {target}"
    return None


ALERT_DEADLINES = ("receipt", "answer")


def case_alert_problem(alert: Mapping[str, Any]) -> str | None:
    """What is wrong with a case alert beyond its Avro types: ``"<field> <why>"``, else None."""
    if alert.get("deadline") not in ALERT_DEADLINES:
        return f"deadline {alert.get('deadline')!r} is not one of {', '.join(ALERT_DEADLINES)}"
    for name in ("alert_id", "correlation_id", "case_key"):
        if isinstance(alert.get(name), str) and not alert[name].strip():
            return f"{name} is empty"
    if not is_party_code(alert.get("target")):
        return f"target {alert.get('target')!r} is not a party code"
    return None


def case_reply_problem(reply: Mapping[str, Any]) -> str | None:
    """What is wrong with a case reply beyond its Avro types: ``"<field> <why>"``, else None.

    The kind must be one of ``REPLY_KINDS`` and the case key the entity key of what was routed
    (a case's, or for an assist request the entity asked about); the replying
    party and a decline's ``redirect_to`` party codes (``parties.is_party_code``), the latter not
    the replier's own. An answer says its outcome (one of ``REPLY_OUTCOMES``), a decline its reason;
    no other kind carries either, nor a ``redirect_to``.
    """
    kind, outcome, reason, redirect = (reply.get(name) for name in ("kind", "outcome", "reason", "redirect_to"))
    if kind not in REPLY_KINDS:
        return f"kind {kind!r} is not one of {', '.join(REPLY_KINDS)}"
    for name in ("correlation_id", "case_key"):
        if isinstance(reply.get(name), str) and not reply[name].strip():
            return f"{name} is empty"
    case_key = reply.get("case_key")
    if isinstance(case_key, str):
        entity_type, _, natural_key = case_key.partition(":")
        if entity_type not in ROUTABLE_TYPES or not natural_key.strip():
            return (f"case_key {case_key!r} is not the entity key of a case (case:<case_no>) "
                    f"or of an entity asked about ({', '.join(ROUTABLE_TYPES[1:])})")
    sender = reply.get("from_province")
    if isinstance(sender, str) and not is_party_code(sender):
        return f"from_province {sender!r} is not a party code"
    if kind == ANSWER and outcome not in REPLY_OUTCOMES:
        return f"outcome {outcome!r} is not one of {', '.join(REPLY_OUTCOMES)} (an answer says what was done)"
    if kind != ANSWER and outcome is not None:
        return f"outcome {outcome!r}: only an answer has one, not a reply of kind {kind}"
    if kind == DECLINE:
        if not isinstance(reason, str) or not reason.strip():
            return f"reason {reason!r}: a decline says why the case is not the province's"
        if redirect is not None and (not is_party_code(redirect) or redirect == sender):
            return f"redirect_to {redirect!r} is not another party's code"
    else:
        for name, value in (("reason", reason), ("redirect_to", redirect)):
            if value is not None:
                return f"{name} {value!r}: only a decline has one, not a reply of kind {kind}"
    return None
