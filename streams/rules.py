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

The road registers' rules are the table below; every other register's are made from its
declaration (``streams.declared_rules``). The parts rules are made of are ``streams.checks``.
"""


from __future__ import annotations

from schemas import identifiers
from schemas.codes import CASE_STAGES, LICENCE_TYPES, STATUSES, VEHICLE_CLASSES

from . import checks
from .checks import (COMPLETENESS, CONFORMITY, ERROR, RELATIONAL, WARNING, Check, Facts, Finding, Record, Rule,
                     reference_key)
from .declared_rules import declared_rules

__all__ = ["COMPLETENESS", "CONFORMITY", "Check", "ERROR", "EXPECTED", "Facts", "Finding", "RELATIONAL", "REQUIRED",
           "RULES", "RULES_BY_ENTITY", "Record", "Rule", "WARNING", "evaluate", "reference_key"]


def evaluate(entity_type: str, record: Record, facts: Facts) -> list[Finding]:
    """Every finding of the rules of ``entity_type`` on ``record``, errors first."""
    findings = []
    for rule in RULES_BY_ENTITY.get(entity_type, ()):
        detail = rule.check(record, facts)
        if detail is not None:
            findings.append(Finding(rule, detail, rule.reference(record)))
    findings.sort(key=lambda f: f.rule.severity != ERROR)
    return findings



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

# A case's fields naming who is involved (its declaration's references).
INVOLVED = ("involved_plate", "involved_operator_uscc", "involved_id_number", "involved_ship_id")

RULES: list[Rule] = []
for _entity, _fields in REQUIRED.items():
    RULES += [Rule("required_field", _entity, COMPLETENESS, ERROR, f, "a required field is missing", checks.required(f))
              for f in _fields]
for _entity, _fields in EXPECTED.items():
    RULES += [Rule("expected_field", _entity, COMPLETENESS, WARNING, f, "an expected field is not given", checks.present(f))
              for f in _fields]
for _entity in REQUIRED:
    RULES.append(Rule("field_too_long", _entity, CONFORMITY, ERROR, None, "a text field is too long", checks.text_lengths))
for _entity, _table in STATUSES.items():
    RULES.append(Rule("unknown_status", _entity, CONFORMITY, ERROR, "status", "status is not in the code table",
                      checks.code_table("status", _table)))
RULES += [
    Rule("invalid_uscc", "operator", CONFORMITY, ERROR, "uscc", "USCC fails GB 32100", checks.uscc("uscc")),
    Rule("invalid_region_code", "operator", CONFORMITY, ERROR, "region_code", "not a GB/T 2260 code",
         checks.identifier("region_code", identifiers.check_region_code)),
    Rule("invalid_id_number", "operator", CONFORMITY, ERROR, "legal_rep_id_number", "ID number fails GB 11643",
         checks.id_number("legal_rep_id_number")),
    Rule("invalid_plate", "vehicle", CONFORMITY, ERROR, "plate", "plate fails GA 36", checks.identifier("plate", identifiers.check_plate)),
    Rule("invalid_plate_color", "vehicle", CONFORMITY, ERROR, "plate_color", "plate colour not in JT/T 697.7",
         checks.identifier("plate_color", identifiers.check_plate_color)),
    Rule("invalid_uscc", "vehicle", CONFORMITY, ERROR, "operator_uscc", "USCC fails GB 32100",
         checks.uscc("operator_uscc")),
    Rule("unknown_vehicle_class", "vehicle", CONFORMITY, ERROR, "vehicle_class", "vehicle class not in the code table",
         checks.code_table("vehicle_class", VEHICLE_CLASSES)),
    Rule("invalid_id_number", "practitioner", CONFORMITY, ERROR, "id_number", "ID number fails GB 11643",
         checks.id_number("id_number")),
    Rule("invalid_region_code", "practitioner", CONFORMITY, ERROR, "region_code", "not a GB/T 2260 code",
         checks.identifier("region_code", identifiers.check_region_code)),
    Rule("invalid_uscc", "practitioner", CONFORMITY, ERROR, "employer_uscc", "USCC fails GB 32100",
         checks.uscc("employer_uscc")),
    Rule("unknown_licence_type", "licence", CONFORMITY, ERROR, "licence_type", "licence type not in the code table",
         checks.code_table("licence_type", LICENCE_TYPES)),
    Rule("invalid_region_code", "licence", CONFORMITY, ERROR, "issuer_region_code", "not a GB/T 2260 code",
         checks.identifier("issuer_region_code", identifiers.check_region_code)),
    Rule("implausible_date", "licence", CONFORMITY, ERROR, "valid_from", "date out of range", checks.plausible_date("valid_from")),
    Rule("implausible_date", "licence", CONFORMITY, ERROR, "valid_until", "date out of range", checks.plausible_date("valid_until")),
    Rule("invalid_validity", "licence", CONFORMITY, ERROR, "valid_until", "validity ends before it starts", checks.validity),
    Rule("invalid_region_code", "case", CONFORMITY, ERROR, "region_code", "not a GB/T 2260 code",
         checks.identifier("region_code", identifiers.check_region_code)),
    Rule("unknown_case_stage", "case", CONFORMITY, ERROR, "stage", "stage not in the code table", checks.code_table("stage", CASE_STAGES)),
    Rule("implausible_date", "case", CONFORMITY, ERROR, "occurred_at", "date out of range", checks.plausible_date("occurred_at")),
    Rule("invalid_plate", "case", CONFORMITY, ERROR, "involved_plate", "plate fails GA 36",
         checks.identifier("involved_plate", identifiers.check_plate)),
    Rule("invalid_uscc", "case", CONFORMITY, ERROR, "involved_operator_uscc", "USCC fails GB 32100",
         checks.uscc("involved_operator_uscc")),
    Rule("invalid_id_number", "case", CONFORMITY, ERROR, "involved_id_number", "ID number fails GB 11643",
         checks.id_number("involved_id_number")),
    Rule("case_without_party", "case", COMPLETENESS, WARNING, None, "the case names no involved party",
         lambda r, f: None if any(r.get(k) for k in INVOLVED)
         else "no involved plate, operator, ID number or ship"),
    Rule("case_stage_backwards", "case", RELATIONAL, ERROR, "stage", "a case stage only moves forward", checks.stage_forward),
    Rule("unknown_operator", "vehicle", RELATIONAL, WARNING, "operator_uscc", "the owning operator is not registered",
         checks.known("operator_uscc", "operator"), refers_to="operator"),
    Rule("unknown_holder", "licence", RELATIONAL, WARNING, "holder_key", "the licence holder is not registered",
         checks.known("holder_key", "operator"), refers_to="operator"),
    Rule("plate_province_mismatch", "vehicle", RELATIONAL, WARNING, "plate", "the plate belongs to another province",
         checks.plate_province),
]
USCC_FIELDS = (("operator", "uscc"), ("vehicle", "operator_uscc"), ("practitioner", "employer_uscc"),
               ("case", "involved_operator_uscc"))
RULES += [Rule("uscc_unknown_org_type", _entity, CONFORMITY, WARNING, _field,
               "USCC organisation type not in GB 32100's table for its registration authority", checks.uscc_org_type(_field))
          for _entity, _field in USCC_FIELDS]
RULES += declared_rules(exclude=tuple(REQUIRED))  # the registers not in the table above
RULES_BY_ENTITY: dict[str, tuple[Rule, ...]] = {
    e: tuple(r for r in RULES if r.entity == e) for e in dict.fromkeys(r.entity for r in RULES)
}
