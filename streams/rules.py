"""The data-quality rules, declared as data.

Each ``Rule`` has a code, the entity it applies to, the dimension the ministry scores
(completeness 完整性 / conformity 规范性 / relational 关联性), a severity (an ``error``
rejects the event, a ``warning`` lets it pass) and a message. ``evaluate`` runs every rule
of an event's entity over its record and returns every finding, so a province sees all of
a record's faults at once. Relational rules read ``Facts``: what the registry and the
entity's last accepted version say. A rule about a referenced entity that is not registered
(``refers_to``) depends on what the hub has read so far: its finding carries the missing
entity's key (``Finding.ref_key``) and stays provisional until the reference grace period
has passed without that entity arriving (the store decides, ``sinks.report``).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from schemas import identifiers
from schemas.codes import CASE_STAGES, LICENCE_TYPES, QUALITY_DIMENSIONS, STATUSES, VEHICLE_CLASSES
from schemas.errors import InvalidIdentifier

COMPLETENESS, CONFORMITY, RELATIONAL = QUALITY_DIMENSIONS
ERROR, WARNING = "error", "warning"

EARLIEST, LATEST = dt.date(1949, 10, 1), dt.date(2100, 12, 31)
MAX_TEXT = 1024  # characters in any one text field
IDENTIFIER_CACHE_SIZE = 1 << 17

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Facts:
    """What relational rules may consult: ``registered(entity_key)`` → its registry entry (the
    province, and the region when known) or None, and the entity's last accepted state
    (``{"stage": …}`` for a case) or None. Identifier rules read the configured USCC
    allow-list (early pilot codes valid in law that fail the checksum) and ``today`` (None: no
    clock, birth dates are not compared with it)."""

    registered: Callable[[str], str | None]
    last: Mapping[str, Any] | None
    province: str
    uscc_allow: frozenset[str] = frozenset()
    today: dt.date | None = None


Check = Callable[[Record, Facts], str | None]  # returns what is wrong, or None


@dataclass(frozen=True)
class Rule:
    code: str
    entity: str
    dimension: str
    severity: str
    field: str | None
    message: str
    check: Check
    refers_to: str | None = None  # the entity type ``field`` names, for a rule about an unregistered reference

    def reference(self, record: Record) -> str | None:
        """The key of the entity ``field`` refers to, for a rule with ``refers_to``."""
        value = record.get(self.field) if self.refers_to and self.field else None
        return reference_key(value, self.refers_to) if value else None


@dataclass(frozen=True)
class Finding:
    rule: Rule
    detail: str
    ref_key: str | None = None  # the unregistered entity a reference rule found missing

    @property
    def text(self) -> str:
        where = f"field {self.rule.field}: " if self.rule.field else ""
        return f"{where}{self.rule.code}: {self.detail}"


def evaluate(entity_type: str, record: Record, facts: Facts) -> list[Finding]:
    """Every finding of the rules of ``entity_type`` on ``record``, errors first."""
    findings = []
    for rule in RULES_BY_ENTITY.get(entity_type, ()):
        detail = rule.check(record, facts)
        if detail is not None:
            findings.append(Finding(rule, detail, rule.reference(record)))
    findings.sort(key=lambda f: f.rule.severity != ERROR)
    return findings


# ---- checks -----------------------------------------------------------------------------

def _required(field: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        return "is missing" if value is None or (isinstance(value, str) and not value.strip()) else None
    return check


def _present(field: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        return "is not given" if not record.get(field) else None
    return check


@functools.lru_cache(maxsize=IDENTIFIER_CACHE_SIZE)
def _identifier_error(check: Callable[..., None], value: Any, *args: Any) -> str | None:
    """What ``check(value, *args)`` finds wrong; cached, so ``check`` must be pure and its
    arguments hashable (what varies by configuration is applied outside the cache)."""
    try:
        check(value, *args)
    except InvalidIdentifier as exc:
        return str(exc)
    return None


def _identifier(field: str, check: Callable[[Any], None]) -> Check:
    """An identifier standard; an absent value is the completeness rules' business."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        return None if value is None or value == "" else _identifier_error(check, value)
    return run


def _uscc(field: str) -> Check:
    """GB 32100, or a code on the configured allow-list of pilot codes."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        if value is None or value == "" or value in facts.uscc_allow:
            return None
        return _identifier_error(identifiers.check_uscc, value)
    return run


def _uscc_org_type(field: str) -> Check:
    """The organisation type of a valid code is one GB 32100 lists for its authority."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        if not value or _identifier_error(identifiers.check_uscc, value) is not None:
            return None
        return _identifier_error(identifiers.check_uscc_org_type, value)
    return run


def _id_number(field: str) -> Check:
    """GB 11643, with birth dates after the day of the stage's clock refused."""
    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        return None if value is None or value == "" else _identifier_error(identifiers.check_id_number, value,
                                                                           facts.today)
    return run


def _code_table(field: str, table: frozenset[str] | tuple[str, ...]) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        if value is None or value in table:
            return None
        return f"{value!r} is not one of {', '.join(sorted(table))}"
    return check


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def _plausible_date(field: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        day = _as_date(record.get(field))
        if day is None or EARLIEST <= day <= LATEST:
            return None
        return f"{day.isoformat()} is outside {EARLIEST.isoformat()}..{LATEST.isoformat()}"
    return check


def _validity(record: Record, facts: Facts) -> str | None:
    start, end = _as_date(record.get("valid_from")), _as_date(record.get("valid_until"))
    if start and end and start > end:
        return f"valid_until {end.isoformat()} is before valid_from {start.isoformat()}"
    return None


def _text_lengths(record: Record, facts: Facts) -> str | None:
    for name, value in record.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return f"field {name} holds {len(value)} characters, more than {MAX_TEXT}"
    return None


def reference_key(value: str, entity: str) -> str:
    """The entity key a reference field holds: a whole key, or the natural key of ``entity``."""
    return value if ":" in value else f"{entity}:{value}"


def _known(field: str, entity: str) -> Check:
    def check(record: Record, facts: Facts) -> str | None:
        value = record.get(field)
        if not value:
            return None
        key = reference_key(value, entity)
        return None if facts.registered(key) is not None else f"{key} is not in any province's register"
    return check


def _plate_province(record: Record, facts: Facts) -> str | None:
    plate_province = identifiers.province_of_plate(record.get("plate") or "")
    if plate_province is None or plate_province == facts.province:
        return None
    return f"plate {record.get('plate')} belongs to province {plate_province}, the record to {facts.province}"


def _stage_forward(record: Record, facts: Facts) -> str | None:
    stage, last = record.get("stage"), (facts.last or {}).get("stage")
    if stage not in CASE_STAGES or last not in CASE_STAGES:
        return None
    if CASE_STAGES.index(stage) < CASE_STAGES.index(last):
        return f"stage {stage!r} comes before the case's last stage {last!r}"
    return None


# ---- the table ---------------------------------------------------------------------------

REQUIRED = {
    "operator": ("uscc", "name", "region_code", "status"),
    "vehicle": ("plate", "operator_uscc", "vehicle_class", "status"),
    "practitioner": ("id_number", "name", "qualification_cert_no", "region_code", "status"),
    "licence": ("licence_no", "licence_type", "holder_key", "issuer_region_code", "status"),
    "case": ("case_no", "region_code", "stage", "violation_code"),
}
EXPECTED = {  # optional fields whose absence lowers completeness without rejecting
    "operator": ("permit_no", "business_scope"),
    "vehicle": ("vin", "transport_cert_no"),
    "practitioner": ("employer_uscc",),
}

RULES: list[Rule] = []
for _entity, _fields in REQUIRED.items():
    RULES += [Rule("required_field", _entity, COMPLETENESS, ERROR, f, "a required field is missing", _required(f))
              for f in _fields]
for _entity, _fields in EXPECTED.items():
    RULES += [Rule("expected_field", _entity, COMPLETENESS, WARNING, f, "an expected field is not given", _present(f))
              for f in _fields]
for _entity in REQUIRED:
    RULES.append(Rule("field_too_long", _entity, CONFORMITY, ERROR, None, "a text field is too long", _text_lengths))
for _entity, _table in STATUSES.items():
    RULES.append(Rule("unknown_status", _entity, CONFORMITY, ERROR, "status", "status is not in the code table",
                      _code_table("status", _table)))
RULES += [
    Rule("invalid_uscc", "operator", CONFORMITY, ERROR, "uscc", "USCC fails GB 32100", _uscc("uscc")),
    Rule("invalid_region_code", "operator", CONFORMITY, ERROR, "region_code", "not a GB/T 2260 code",
         _identifier("region_code", identifiers.check_region_code)),
    Rule("invalid_id_number", "operator", CONFORMITY, ERROR, "legal_rep_id_number", "ID number fails GB 11643",
         _id_number("legal_rep_id_number")),
    Rule("invalid_plate", "vehicle", CONFORMITY, ERROR, "plate", "plate fails GA 36", _identifier("plate", identifiers.check_plate)),
    Rule("invalid_plate_color", "vehicle", CONFORMITY, ERROR, "plate_color", "plate colour not in JT/T 697.7",
         _identifier("plate_color", identifiers.check_plate_color)),
    Rule("invalid_uscc", "vehicle", CONFORMITY, ERROR, "operator_uscc", "USCC fails GB 32100",
         _uscc("operator_uscc")),
    Rule("unknown_vehicle_class", "vehicle", CONFORMITY, ERROR, "vehicle_class", "vehicle class not in the code table",
         _code_table("vehicle_class", VEHICLE_CLASSES)),
    Rule("invalid_id_number", "practitioner", CONFORMITY, ERROR, "id_number", "ID number fails GB 11643",
         _id_number("id_number")),
    Rule("invalid_region_code", "practitioner", CONFORMITY, ERROR, "region_code", "not a GB/T 2260 code",
         _identifier("region_code", identifiers.check_region_code)),
    Rule("invalid_uscc", "practitioner", CONFORMITY, ERROR, "employer_uscc", "USCC fails GB 32100",
         _uscc("employer_uscc")),
    Rule("unknown_licence_type", "licence", CONFORMITY, ERROR, "licence_type", "licence type not in the code table",
         _code_table("licence_type", LICENCE_TYPES)),
    Rule("invalid_region_code", "licence", CONFORMITY, ERROR, "issuer_region_code", "not a GB/T 2260 code",
         _identifier("issuer_region_code", identifiers.check_region_code)),
    Rule("implausible_date", "licence", CONFORMITY, ERROR, "valid_from", "date out of range", _plausible_date("valid_from")),
    Rule("implausible_date", "licence", CONFORMITY, ERROR, "valid_until", "date out of range", _plausible_date("valid_until")),
    Rule("invalid_validity", "licence", CONFORMITY, ERROR, "valid_until", "validity ends before it starts", _validity),
    Rule("invalid_region_code", "case", CONFORMITY, ERROR, "region_code", "not a GB/T 2260 code",
         _identifier("region_code", identifiers.check_region_code)),
    Rule("unknown_case_stage", "case", CONFORMITY, ERROR, "stage", "stage not in the code table", _code_table("stage", CASE_STAGES)),
    Rule("implausible_date", "case", CONFORMITY, ERROR, "occurred_at", "date out of range", _plausible_date("occurred_at")),
    Rule("invalid_plate", "case", CONFORMITY, ERROR, "involved_plate", "plate fails GA 36",
         _identifier("involved_plate", identifiers.check_plate)),
    Rule("invalid_uscc", "case", CONFORMITY, ERROR, "involved_operator_uscc", "USCC fails GB 32100",
         _uscc("involved_operator_uscc")),
    Rule("invalid_id_number", "case", CONFORMITY, ERROR, "involved_id_number", "ID number fails GB 11643",
         _id_number("involved_id_number")),
    Rule("case_without_party", "case", COMPLETENESS, WARNING, None, "the case names no involved party",
         lambda r, f: None if any(r.get(k) for k in ("involved_plate", "involved_operator_uscc", "involved_id_number"))
         else "no involved plate, operator or ID number"),
    Rule("case_stage_backwards", "case", RELATIONAL, ERROR, "stage", "a case stage only moves forward", _stage_forward),
    Rule("unknown_operator", "vehicle", RELATIONAL, WARNING, "operator_uscc", "the owning operator is not registered",
         _known("operator_uscc", "operator"), refers_to="operator"),
    Rule("unknown_holder", "licence", RELATIONAL, WARNING, "holder_key", "the licence holder is not registered",
         _known("holder_key", "operator"), refers_to="operator"),
    Rule("plate_province_mismatch", "vehicle", RELATIONAL, WARNING, "plate", "the plate belongs to another province",
         _plate_province),
]
USCC_FIELDS = (("operator", "uscc"), ("vehicle", "operator_uscc"), ("practitioner", "employer_uscc"),
               ("case", "involved_operator_uscc"))
RULES += [Rule("uscc_unknown_org_type", _entity, CONFORMITY, WARNING, _field,
               "USCC organisation type not in GB 32100's table for its registration authority", _uscc_org_type(_field))
          for _entity, _field in USCC_FIELDS]
RULES_BY_ENTITY: dict[str, tuple[Rule, ...]] = {
    e: tuple(r for r in RULES if r.entity == e) for e in REQUIRED
}
