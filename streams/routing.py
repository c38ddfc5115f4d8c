"""Cross-party routing: which parties must act on an enforcement case, and moves; and the
ownership table's entries.

A case involving another party's vehicle (plate), operator (USCC), practitioner (ID number)
or ship (ship ID) goes to that party's ``xprov.<Q>.inbound``. The province an identifier
belongs to is looked up in the registry first (where the entity's own record came
from) and read from the identifier's embedded region only when the registry does not
know it. Once a case went to a province, every later stage follows it there; each
(case, stage, target) is delivered once.

Each delivery names the responsible county or city below the province: the 6-digit region
code of the involved entity's registration. The registry keeps it beside the province
(``owner_entry``: ``"<province>/<region>"``; entries written before hold the province alone):
an operator's or practitioner's ``region_code``, a vehicle's operator's (its USCC's region).
An entity the registry does not know gets the region its identifier embeds: a USCC's
registration region, an ID number's region of issue, a plate's province (``<PP>0000``). A ship
ID embeds nothing: a case naming a ship no register holds waits for one (``case_routes``'
``waiting``: the registry keys it waits on), and ``streams.waiting`` routes it once a register does.

The ownership table's entries (``ownership_entries``) follow the declarations: an accepted
event of a register another register's field refers to (``schemas.registers``) sets its
entity key, and the key ``<field>:<value>`` for a reference by a field that is not its whole
key (a vehicle's ``plate:<plate>``); a register some field's ``<register>_without_permit``
rule names also sets ``permit:<entity key>`` while its filing holds a valid permit (a permit
number and the status ``active``) and clears it when not.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Callable, Mapping, NamedTuple

from schemas import identifiers, registers
from schemas.registers import ENTITY_KEY, Reference

from .validation import subject_record

# Where an identifier says its entity is registered when no register says: the province, and
# the region from the identifier and that province.
HOME_OF_IDENTIFIER: dict[str, tuple[Callable[[str], str | None], Callable[[str, str], str]]] = {
    "plate": (identifiers.province_of_plate, lambda _plate, province: f"{province}0000"),
    "operator": (identifiers.party_of_uscc, lambda uscc, _province: uscc[2:8]),  # the Corps' 66 too
    "practitioner": (identifiers.province_of_id_number, lambda number, _province: number[:6]),
}
ROUTED_REGISTER = "case"  # the register whose records are routed to the parties they involve


def _involved_fields() -> tuple[tuple[str, str], ...]:
    """The routed register's fields naming another party's entity (those its declaration says
    refer to another register), each with its registry kind: the register named, or the field of
    theirs it names them by when that is not their key (a vehicle by ``plate``)."""
    kinds = []
    for field in registers.declaration(ROUTED_REGISTER).fields:
        if field.refers_to is not None:
            named = field.refers_to.registers[0]
            by = field.refers_to.by
            kinds.append((field.name, named if registers.declaration(named).key_fields == (by,) else by))
    return tuple(kinds)


INVOLVED_FIELDS = _involved_fields()
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
    """The 6-digit region an accepted register event's entity is registered in: its
    ``region_code``, else (a vehicle, a ship) its operator's USCC's; "" when it says none."""
    record = subject_record(event) or {}
    region = str(record.get("region_code") or "")
    if len(region) == 6 and region.isdigit():
        return region
    if "region_code" in record:
        return ""
    uscc = str(record.get("operator_uscc") or "")
    return uscc[2:8] if len(uscc) == 18 else ""


PERMIT = "permit:"  # an entity whose last accepted filing holds a valid permit
PERMIT_STATUS = "active"


def permit_key(entity_key: str) -> str:
    return PERMIT + entity_key


def registry_keys(reference: Reference, value: str) -> list[str]:
    """The registry keys under which an entity a reference field names would be, one per register."""
    return [prefix + value for prefix in _registry_prefixes(reference)]


@functools.cache
def _registry_prefixes(reference: Reference) -> tuple[str, ...]:
    """What precedes a reference's value in each registry key it may be under (made once per reference:
    the stage asks for every event that names an entity)."""
    prefixes = []
    for name in reference.registers:
        if reference.by == ENTITY_KEY:
            prefixes.append("")
        elif registers.declaration(name).key_fields == (reference.by,):
            prefixes.append(f"{name}:")
        else:
            prefixes.append(f"{reference.by}:")
    return tuple(dict.fromkeys(prefixes))


def _owned() -> dict[str, tuple[tuple[str, ...], bool]]:
    """Register → (the fields besides its whole key by which another register's field names its
    entities, whether a ``<register>_without_permit`` rule reads its permit), for every register referred to."""
    owned: dict[str, tuple[set[str], bool]] = {}
    for register in registers.declarations():
        for field in register.fields:
            if field.refers_to is None:
                continue
            for name in field.refers_to.registers:
                by, permit = owned.setdefault(name, (set(), False))
                if field.refers_to.by != ENTITY_KEY and registers.declaration(name).key_fields != (field.refers_to.by,):
                    by.add(field.refers_to.by)
                owned[name] = (by, permit or f"{name}_without_permit" in field.rules)
    return {name: (tuple(sorted(by)), permit) for name, (by, permit) in owned.items()}


OWNED = _owned()


def ownership_keys(event: Mapping[str, Any]) -> list[str]:
    """The ownership entries an accepted register event sets (or clears, on delete); its
    ``permit:`` entry only when the filing holds a valid permit (``ownership_entries``)."""
    return [key for key, held in _entries(event) if held]


def ownership_entries(event: Mapping[str, Any], entry: str) -> list[tuple[str, str | None]]:
    """(key, value) of every ownership entry an accepted register event writes: ``entry``
    (``owner_entry``), or None to clear it (a delete; a permit no longer held)."""
    deleted = event.get("op") == "d"
    return [(key, entry if held and not deleted else None) for key, held in _entries(event)]


def _entries(event: Mapping[str, Any]) -> list[tuple[str, bool]]:
    etype, record = event.get("entity_type"), subject_record(event)
    if record is None or etype not in OWNED:
        return []
    by, permit = OWNED[etype]
    keys = [(event["entity_key"], True)]
    keys += [(f"{field}:{record[field]}", True) for field in by if record.get(field)]
    if permit:
        held = bool(record.get("permit_no")) and record.get("status") == PERMIT_STATUS
        keys.append((permit_key(event["entity_key"]), held))
    return keys


WAIT = "wait:"  # a case waiting for a register to hold an entity it names: wait:<registry key>|<case key>


def registry_key(kind: str, value: str) -> str:
    """The ownership table's key of the entity of registry ``kind`` named by ``value``."""
    return f"{kind}:{value}"


def wait_key(registry: str, case_key: str) -> str:
    return f"{WAIT}{registry}|{case_key}"


def registered_at(kind: str, value: str, owner: Lookup) -> tuple[str, str] | None:
    """(province, region) where an involved entity is registered: the registry's, else the identifier's."""
    province, _, region = (owner(registry_key(kind, value)) or "").partition("/")
    if province:
        return province, region or (HOME_OF_IDENTIFIER[kind][1](value, province) if kind in HOME_OF_IDENTIFIER
                                    else f"{province}0000")
    return identifier_home(kind, value)


def identifier_home(kind: str, value: str) -> tuple[str, str] | None:
    """(province, region) an identifier of ``kind`` (plate, operator, practitioner) names, or None
    (also for a kind whose identifier embeds no region: a ship)."""
    if kind not in HOME_OF_IDENTIFIER:
        return None
    province_of, region_of = HOME_OF_IDENTIFIER[kind]
    try:
        province = province_of(value) or ""
    except (ValueError, KeyError, IndexError):
        return None
    return (province, region_of(value, province)) if province else None


Placed = list[tuple[str, str, str, tuple[str, str] | None]]  # (field, kind, value, ``registered_at`` or None)


def _placed(event: Mapping[str, Any], owner: Lookup) -> Placed:
    """Each involved entity a case names, with where it is registered (None: nowhere known)."""
    record = subject_record(event)
    if event.get("entity_type") != ROUTED_REGISTER or record is None:
        return []
    return [(field, kind, value, registered_at(kind, value, owner))
            for field, kind in INVOLVED_FIELDS if (value := record.get(field))]


def involved_provinces(event: Mapping[str, Any], owner: Lookup, placed: Placed | None = None
                       ) -> dict[str, tuple[list[str], str]]:
    """Province → (the involved fields of a case that point to it, in field order; the region of
    the first one's entity that names one below the province, else the province's ``PP0000``)."""
    found: dict[str, tuple[list[str], str]] = {}
    for field, _kind, _value, where in _placed(event, owner) if placed is None else placed:
        if where:
            fields, region = found.get(where[0], ([], ""))
            if not region or (region.endswith("0000") and not where[1].endswith("0000")):
                region = where[1]
            found[where[0]] = ([*fields, field], region)
    return found


class CaseRoutes(NamedTuple):
    """``deliver``: target → (reasons, responsible region) to deliver the event to now;
    ``delivered``: the case's routing state after it (``{target: [stages delivered]}``);
    ``waiting``: registry key → field, of each entity the case names that no register holds and
    whose identifier names no province (a ship), so that it is routed nowhere yet."""

    deliver: dict[str, tuple[list[str], str]]
    delivered: dict[str, list[str]]
    waiting: dict[str, str]


def case_stage(event: Mapping[str, Any]) -> str:
    """The stage a case event delivers: its record's, or ``deleted``."""
    return DELETED_STAGE if event.get("op") == "d" else str((subject_record(event) or {}).get("stage"))


def case_routes(event: Mapping[str, Any], source: str, provinces: frozenset[str], owner: Lookup,
                last: Mapping[str, Any] | None) -> CaseRoutes:
    """Where a case event goes, given ``last``, the case's routing state before it.

    A target the case went to before and no party points to any more is kept, with reason
    ``follows`` (and the province's own code, ``<PP>0000``, as its region).
    """
    stage = case_stage(event)
    placed = _placed(event, owner)
    delivered = {t: list(stages) for t, stages in (last or {}).items()}
    reasons = {t: why for t, why in involved_provinces(event, owner, placed).items()
               if t != source and t in provinces}
    for target in delivered:
        reasons.setdefault(target, (["follows"], f"{target}0000"))
    deliver = {}
    for target, why in reasons.items():
        if stage not in delivered.get(target, []):
            deliver[target] = why
            delivered.setdefault(target, []).append(stage)
    waiting = {registry_key(kind, value): field for field, kind, value, where in placed if where is None}
    return CaseRoutes(deliver, delivered, waiting)


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
