"""Data-quality rules of an accepted event: shape, code tables and identifier standards.

``validate_event`` raises ``Rejection`` naming the event, the field, the rule and the value.
Identifier checks come from ``schemas.identifiers``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Mapping

from schemas import contract, identifiers
from schemas.errors import InvalidIdentifier

from .errors import Rejection

LICENCE_TYPES = frozenset({"operating_permit", "qualification", "transport_cert"})
CASE_STAGES = ("filed", "investigating", "decided", "executed", "closed")
IDENTIFIER_CACHE_SIZE = 1 << 17

Record = Mapping[str, Any]


def describe(event: Mapping[str, Any]) -> str:
    """How a message names an event: its id and entity key."""
    return f"event {event.get('event_id')} ({event.get('entity_key')})"


def subject_record(event: Mapping[str, Any]) -> Record | None:
    """The record an event is about: ``after``, or ``before`` for a delete."""
    return event.get("before") if event.get("op") == "d" else event.get("after")


def validate_event(event: Mapping[str, Any], uscc_allow: Iterable[str] = ()) -> None:
    """Raise ``Rejection`` if the event breaks a rule; return None if it is valid."""
    who = describe(event)
    op, etype = event.get("op"), event.get("entity_type")
    if op not in contract.OPS:
        raise Rejection("unknown_op", f"{who}: unknown_op: op {op!r} is not one of {', '.join(contract.OPS)}")
    if etype not in contract.ENTITY_TYPES:
        raise Rejection(
            "unknown_entity_type",
            f"{who}: unknown_entity_type: {etype!r} is not one of {', '.join(contract.ENTITY_TYPES)}",
        )
    _check_op_shape(event, who)
    for side in ("before", "after"):
        record = event.get(side)
        if record is not None and set(record) != set(contract.entity_fields(etype)):
            raise Rejection(
                "record_type_mismatch",
                f"{who}: record_type_mismatch: '{side}' is not a {etype} record",
            )
    record = subject_record(event)
    expected_key = contract.entity_key(etype, record)
    if event.get("entity_key") != expected_key:
        raise Rejection(
            "entity_key_mismatch",
            f"{who}: entity_key_mismatch: entity_key {event.get('entity_key')!r} "
            f"does not match the record, expected {expected_key!r}",
        )
    if op != "d":
        _RECORD_CHECKS[etype](record, who, frozenset(uscc_allow))


def _check_op_shape(event: Mapping[str, Any], who: str) -> None:
    op = event["op"]
    if op == "d" and event.get("before") is None:
        raise Rejection("op_record_mismatch", f"{who}: op_record_mismatch: a delete ('d') must carry 'before'")
    if op != "d" and event.get("after") is None:
        raise Rejection("op_record_mismatch", f"{who}: op_record_mismatch: op {op!r} must carry 'after'")


def _identifier(who: str, field: str, check: Callable[..., Any], value: Any, *args: Any) -> None:
    error = _identifier_error(check, value, *args)
    if error is not None:
        rule, reason = error
        raise Rejection(rule, f"{who}: field {field}: {reason}")


@functools.lru_cache(maxsize=IDENTIFIER_CACHE_SIZE)
def _identifier_error(check: Callable[..., Any], value: Any, *args: Any) -> tuple[str, str] | None:
    """(rule, reason) if a pure identifier check fails; the same identifiers recur across events."""
    try:
        check(value, *args)
    except InvalidIdentifier as exc:
        return exc.rule, str(exc)
    return None


def _code(who: str, field: str, rule: str, value: Any, table: Iterable[str]) -> None:
    if value not in table:
        raise Rejection(rule, f"{who}: field {field}: {rule}: {value!r} is not one of {', '.join(sorted(table))}")


def _check_operator(record: Record, who: str, allow: frozenset[str]) -> None:
    _identifier(who, "uscc", identifiers.check_uscc, record["uscc"], allow)
    _identifier(who, "region_code", identifiers.check_region_code, record["region_code"])
    if record.get("legal_rep_id_number"):
        _identifier(who, "legal_rep_id_number", identifiers.check_id_number, record["legal_rep_id_number"])


def _check_vehicle(record: Record, who: str, allow: frozenset[str]) -> None:
    _identifier(who, "plate", identifiers.check_plate, record["plate"])
    _identifier(who, "plate_color", identifiers.check_plate_color, record["plate_color"])
    _identifier(who, "operator_uscc", identifiers.check_uscc, record["operator_uscc"], allow)


def _check_practitioner(record: Record, who: str, allow: frozenset[str]) -> None:
    _identifier(who, "id_number", identifiers.check_id_number, record["id_number"])
    _identifier(who, "region_code", identifiers.check_region_code, record["region_code"])
    if record.get("employer_uscc"):
        _identifier(who, "employer_uscc", identifiers.check_uscc, record["employer_uscc"], allow)


def _check_licence(record: Record, who: str, allow: frozenset[str]) -> None:
    _code(who, "licence_type", "unknown_licence_type", record["licence_type"], LICENCE_TYPES)
    _identifier(who, "issuer_region_code", identifiers.check_region_code, record["issuer_region_code"])
    if record["valid_from"] > record["valid_until"]:
        raise Rejection(
            "invalid_validity",
            f"{who}: field valid_until: invalid_validity: {record['valid_until']} is before "
            f"valid_from {record['valid_from']}",
        )


def _check_case(record: Record, who: str, allow: frozenset[str]) -> None:
    _identifier(who, "region_code", identifiers.check_region_code, record["region_code"])
    _code(who, "stage", "unknown_case_stage", record["stage"], CASE_STAGES)
    if record.get("involved_plate"):
        _identifier(who, "involved_plate", identifiers.check_plate, record["involved_plate"])
    if record.get("involved_operator_uscc"):
        _identifier(who, "involved_operator_uscc", identifiers.check_uscc, record["involved_operator_uscc"], allow)
    if record.get("involved_id_number"):
        _identifier(who, "involved_id_number", identifiers.check_id_number, record["involved_id_number"])


_RECORD_CHECKS: dict[str, Callable[[Record, str, frozenset[str]], None]] = {
    "operator": _check_operator,
    "vehicle": _check_vehicle,
    "practitioner": _check_practitioner,
    "licence": _check_licence,
    "case": _check_case,
}
