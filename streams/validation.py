"""The shape of a change event: op, entity type, before/after, entity key.

``validate_shape`` raises ``Rejection`` naming the event and the rule. The record-level
data-quality rules are in ``streams.rules``.
"""

from __future__ import annotations

from typing import Any, Mapping

from schemas import contract

from .errors import Rejection

Record = Mapping[str, Any]


def describe(event: Mapping[str, Any]) -> str:
    """How a message names an event: its id and entity key."""
    return f"event {event.get('event_id')} ({event.get('entity_key')})"


def subject_record(event: Mapping[str, Any]) -> Record | None:
    """The record an event is about: ``after``, or ``before`` for a delete."""
    return event.get("before") if event.get("op") == "d" else event.get("after")


def validate_shape(event: Mapping[str, Any]) -> None:
    """Raise ``Rejection`` if the event is not a well-formed change of a known entity."""
    op, etype = event.get("op"), event.get("entity_type")
    if op not in contract.OPS:
        raise Rejection("unknown_op", f"{describe(event)}: unknown_op: op {op!r} is not one of {', '.join(contract.OPS)}")
    if etype not in contract.ENTITY_TYPES:
        raise Rejection(
            "unknown_entity_type",
            f"{describe(event)}: unknown_entity_type: {etype!r} is not one of {', '.join(contract.ENTITY_TYPES)}",
        )
    _check_op_shape(event)
    for side in ("before", "after"):
        record = event.get(side)
        if record is not None and set(record) != set(contract.entity_fields(etype)):
            raise Rejection(
                "record_type_mismatch",
                f"{describe(event)}: record_type_mismatch: '{side}' is not a {etype} record",
            )
    record = subject_record(event)
    expected_key = contract.entity_key(etype, record)
    if event.get("entity_key") != expected_key:
        raise Rejection(
            "entity_key_mismatch",
            f"{describe(event)}: entity_key_mismatch: entity_key {event.get('entity_key')!r} "
            f"does not match the record, expected {expected_key!r}",
        )


def _check_op_shape(event: Mapping[str, Any]) -> None:
    op = event["op"]
    if op == "d" and event.get("before") is None:
        raise Rejection("op_record_mismatch", f"{describe(event)}: op_record_mismatch: a delete ('d') must carry 'before'")
    if op != "d" and event.get("after") is None:
        raise Rejection("op_record_mismatch", f"{describe(event)}: op_record_mismatch: op {op!r} must carry 'after'")
