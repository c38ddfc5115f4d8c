"""Cross-province routing: which provinces must act on an enforcement case.

A case involving another province's vehicle (plate), operator (USCC) or practitioner
(ID number) is delivered once to each such province's ``xprov.<Q>.inbound`` topic.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from schemas import identifiers

from .validation import subject_record

INVOLVED_FIELDS: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("involved_plate", identifiers.province_of_plate),
    ("involved_operator_uscc", identifiers.province_of_uscc),
    ("involved_id_number", identifiers.province_of_id_number),
)


def route_targets(event: Mapping[str, Any], source: str, provinces: frozenset[str]) -> dict[str, list[str]]:
    """Target province -> the involved fields pointing to it (in field order).

    Only case events are routed; the source province and provinces outside the
    exchange are never targets.
    """
    if event.get("entity_type") != "case":
        return {}
    record = subject_record(event)
    if record is None:
        return {}
    targets: dict[str, list[str]] = {}
    for field, province_of in INVOLVED_FIELDS:
        value = record.get(field)
        if not value:
            continue
        target = province_of(value)
        if target and target != source and target in provinces:
            targets.setdefault(target, []).append(field)
    return targets
