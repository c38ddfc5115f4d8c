"""Cross-province routing: which provinces must act on an enforcement case, and moves.

A case involving another province's vehicle (plate), operator (USCC) or practitioner
(ID number) goes to that province's ``xprov.<Q>.inbound``. The province an identifier
belongs to is looked up in the registry first (where the entity's own record came
from) and read from the identifier's embedded region only when the registry does not
know it. Once a case went to a province, every later stage follows it there; each
(case, stage, target) is delivered once.

Each delivery names the responsible county or city below the province: the 6-digit region
code of the involved entity's registration. The registry keeps it beside the province
(``owner_entry``: ``"<province>/<region>"``; entries written before hold the province alone):
an operator's or practitioner's ``region_code``, a vehicle's operator's (its USCC's region).
An entity the registry does not know gets the region its identifier embeds: a USCC's
registration region, an ID number's region of issue, a plate's province (``<PP>0000``).
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Mapping

from schemas import identifiers

from .validation import subject_record

# Where an identifier says its entity is registered when no register says: the province, and
# the region from the identifier and that province.
HOME_OF_IDENTIFIER: dict[str, tuple[Callable[[str], str | None], Callable[[str, str], str]]] = {
    "plate": (identifiers.province_of_plate, lambda _plate, province: f"{province}0000"),
    "operator": (identifiers.province_of_uscc, lambda uscc, _province: uscc[2:8]),
    "practitioner": (identifiers.province_of_id_number, lambda number, _province: number[:6]),
}
# A case's fields naming another party's entity, and the registry kind of each.
INVOLVED_FIELDS = (("involved_plate", "plate"), ("involved_operator_uscc", "operator"),
                   ("involved_id_number", "practitioner"))
MOVABLE = ("vehicle", "practitioner")
CORRELATION_NAMESPACE = uuid.UUID("6f1c0a52-4f0e-5d7b-9b8e-2a4f3c1d0e11")
DELETED_STAGE = "deleted"

Lookup = Callable[[str], str | None]  # a registry key → its raw entry (``owner_entry``) or None


def owner_entry(province: str, region: str) -> str:
    """The registry's entry for an entity: its province, and the region it is registered in when known."""
    return f"{province}/{region}" if region else province


def owner_province(entry: str | None) -> str | None:
    return None if entry is None else entry.partition("/")[0]


WORKING_AWAY = "working_away"  # the reason of a filing routed to the practitioner's home province
AWAY_FILED, AWAY_ENDED = "filed", "ended"


def away_filing_home(event: Mapping[str, Any], source: str) -> str | None:
    """The province a practitioner is registered in when ``event`` is another province's filing of
    them working there (异地从业人员备案): a practitioner record published by ``source`` whose
    ``region_code`` (where they are registered) lies in another province; None otherwise. A
    filing changes neither who owns the practitioner nor the home province's record."""
    record = subject_record(event) or {}
    if event.get("entity_type") != "practitioner":
        return None
    home = str(record.get("region_code") or "")[:2]
    return home if len(home) == 2 and home != source else None


def away_filing_routes(event: Mapping[str, Any], home: str, last: Mapping[str, Any] | None
                       ) -> tuple[str | None, dict[str, list[str]]]:
    """(the stage to deliver to ``home`` now, or None; the filing's routing state after it): a
    filing reaches the home province once when made (``filed``) and once when ended (a delete)."""
    stage = AWAY_ENDED if event.get("op") == "d" else AWAY_FILED
    delivered = {t: list(stages) for t, stages in (last or {}).items()}
    if stage in delivered.get(home, []):
        return None, delivered
    delivered.setdefault(home, []).append(stage)
    return stage, delivered


def registration_region(event: Mapping[str, Any]) -> str:
    """The 6-digit region an accepted register event's entity is registered in ("" when it says none)."""
    etype, record = event.get("entity_type"), subject_record(event) or {}
    if etype == "vehicle":
        uscc = str(record.get("operator_uscc") or "")
        return uscc[2:8] if len(uscc) == 18 else ""
    region = str(record.get("region_code") or "")
    return region if len(region) == 6 and region.isdigit() else ""


def ownership_keys(event: Mapping[str, Any]) -> list[str]:
    """The ownership entries an accepted register event sets (or clears, on delete)."""
    etype, record = event.get("entity_type"), subject_record(event)
    if record is None or etype not in ("operator", "vehicle", "practitioner"):
        return []
    keys = [event["entity_key"]]
    if etype == "vehicle" and record.get("plate"):
        keys.append(f"plate:{record['plate']}")
    return keys


def registered_at(kind: str, value: str, owner: Lookup) -> tuple[str, str] | None:
    """(province, region) where an involved entity is registered: the registry's, else the identifier's."""
    province, _, region = (owner(f"plate:{value}" if kind == "plate" else f"{kind}:{value}") or "").partition("/")
    if province:
        return province, region or HOME_OF_IDENTIFIER[kind][1](value, province)
    return identifier_home(kind, value)


def identifier_home(kind: str, value: str) -> tuple[str, str] | None:
    """(province, region) an identifier of ``kind`` (plate, operator, practitioner) names, or None."""
    province_of, region_of = HOME_OF_IDENTIFIER[kind]
    try:
        province = province_of(value) or ""
    except (ValueError, KeyError, IndexError):
        return None
    return (province, region_of(value, province)) if province else None


def involved_provinces(event: Mapping[str, Any], owner: Lookup) -> dict[str, tuple[list[str], str]]:
    """Province → (the involved fields of a case that point to it, in field order; the region of
    the first one's entity that names one below the province, else the province's ``PP0000``)."""
    record = subject_record(event)
    if event.get("entity_type") != "case" or record is None:
        return {}
    found: dict[str, tuple[list[str], str]] = {}
    for field, kind in INVOLVED_FIELDS:
        value = record.get(field)
        where = registered_at(kind, value, owner) if value else None
        if where:
            fields, region = found.get(where[0], ([], ""))
            if not region or (region.endswith("0000") and not where[1].endswith("0000")):
                region = where[1]
            found[where[0]] = ([*fields, field], region)
    return found


def case_routes(event: Mapping[str, Any], source: str, provinces: frozenset[str], owner: Lookup,
                last: Mapping[str, Any] | None) -> tuple[dict[str, tuple[list[str], str]], dict[str, list[str]]]:
    """(targets to deliver this event to → (reasons, responsible region), the case's routing state after it).

    ``last`` is the case's routing state: ``{target: [stages delivered]}``. A target the
    case went to before and no party points to any more is kept, with reason ``follows``
    (and the province's own code, ``<PP>0000``, as its region).
    """
    record = subject_record(event) or {}
    stage = DELETED_STAGE if event.get("op") == "d" else str(record.get("stage"))
    delivered = {t: list(stages) for t, stages in (last or {}).items()}
    reasons = {t: why for t, why in involved_provinces(event, owner).items() if t != source and t in provinces}
    for target in delivered:
        reasons.setdefault(target, (["follows"], f"{target}0000"))
    deliver = {}
    for target, why in reasons.items():
        if stage not in delivered.get(target, []):
            deliver[target] = why
            delivered.setdefault(target, []).append(stage)
    return deliver, delivered


def correlation_id(source: str, case_key: str) -> str:
    """One id for the whole life of a case, whichever province receives it."""
    return str(uuid.uuid5(CORRELATION_NAMESPACE, f"{source}/{case_key}"))


def move_targets(event: Mapping[str, Any], source: str, owner: Lookup, provinces: frozenset[str]) -> list[str]:
    """Provinces to notify when a vehicle or practitioner registered elsewhere appears in ``source``."""
    if event.get("entity_type") not in MOVABLE or event.get("op") == "d":
        return []
    before = owner_province(owner(event["entity_key"]))
    if before is None or before == source:
        return []
    return [p for p in (before, source) if p in provinces]
