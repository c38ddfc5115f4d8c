"""Cross-province routing: which provinces must act on an enforcement case, and moves.

A case involving another province's vehicle (plate), operator (USCC) or practitioner
(ID number) goes to that province's ``xprov.<Q>.inbound``. The province an identifier
belongs to is looked up in the registry first (where the entity's own record came
from) and read from the identifier's embedded region only when the registry does not
know it. Once a case went to a province, every later stage follows it there; each
(case, stage, target) is delivered once.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Mapping

from schemas import identifiers

from .validation import subject_record

# Registry keys: where each identifier's entity is registered.
INVOLVED_FIELDS: tuple[tuple[str, str, Callable[[str], str | None]], ...] = (
    ("involved_plate", "plate", identifiers.province_of_plate),
    ("involved_operator_uscc", "operator", identifiers.province_of_uscc),
    ("involved_id_number", "practitioner", identifiers.province_of_id_number),
)
MOVABLE = ("vehicle", "practitioner")
CORRELATION_NAMESPACE = uuid.UUID("6f1c0a52-4f0e-5d7b-9b8e-2a4f3c1d0e11")
DELETED_STAGE = "deleted"

Lookup = Callable[[str], str | None]


def ownership_keys(event: Mapping[str, Any]) -> list[str]:
    """The ownership entries an accepted register event sets (or clears, on delete)."""
    etype, record = event.get("entity_type"), subject_record(event)
    if record is None or etype not in ("operator", "vehicle", "practitioner"):
        return []
    keys = [event["entity_key"]]
    if etype == "vehicle" and record.get("plate"):
        keys.append(f"plate:{record['plate']}")
    return keys


def province_of(kind: str, value: str, registered: Lookup, fallback: Callable[[str], str | None]) -> str | None:
    if kind == "plate":
        known = registered(f"plate:{value}")
    else:
        known = registered(f"{kind}:{value}")
    if known is not None:
        return known
    try:
        return fallback(value)
    except (ValueError, KeyError, IndexError):
        return None


def involved_provinces(event: Mapping[str, Any], registered: Lookup) -> dict[str, list[str]]:
    """Province → the involved fields of a case that point to it (in field order)."""
    record = subject_record(event)
    if event.get("entity_type") != "case" or record is None:
        return {}
    found: dict[str, list[str]] = {}
    for field, kind, fallback in INVOLVED_FIELDS:
        value = record.get(field)
        if value:
            target = province_of(kind, value, registered, fallback)
            if target:
                found.setdefault(target, []).append(field)
    return found


def case_routes(event: Mapping[str, Any], source: str, provinces: frozenset[str], registered: Lookup,
                last: Mapping[str, Any] | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(targets to deliver this event to → reasons, the case's routing state after it).

    ``last`` is the case's routing state: ``{target: [stages delivered]}``. A target the
    case went to before and no party points to any more is kept, with reason ``follows``.
    """
    record = subject_record(event) or {}
    stage = DELETED_STAGE if event.get("op") == "d" else str(record.get("stage"))
    delivered = {t: list(stages) for t, stages in (last or {}).items()}
    reasons = {t: f for t, f in involved_provinces(event, registered).items() if t != source and t in provinces}
    for target in delivered:
        reasons.setdefault(target, ["follows"])
    deliver = {}
    for target, why in reasons.items():
        if stage not in delivered.get(target, []):
            deliver[target] = why
            delivered.setdefault(target, []).append(stage)
    return deliver, delivered


def correlation_id(source: str, case_key: str) -> str:
    """One id for the whole life of a case, whichever province receives it."""
    return str(uuid.uuid5(CORRELATION_NAMESPACE, f"{source}/{case_key}"))


def move_targets(event: Mapping[str, Any], source: str, registered: Lookup, provinces: frozenset[str]) -> list[str]:
    """Provinces to notify when a vehicle or practitioner registered elsewhere appears in ``source``."""
    if event.get("entity_type") not in MOVABLE or event.get("op") == "d":
        return []
    before = registered(event["entity_key"])
    if before is None or before == source:
        return []
    return [p for p in (before, source) if p in provinces]
