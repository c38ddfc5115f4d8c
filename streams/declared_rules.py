"""The rules of a register made from its declaration (``schemas.registers``).

What a declaration says becomes rules, with the severity it gives each (``errors`` reject,
``warnings`` let the event pass with a finding):

- completeness: a required text field that is missing (``required_field``, error); an
  expected field not given (``expected_field``, warning);
- completeness of the record: ``<register>_without_party`` (declared on the register): none of
  its fields that refer to another register holds a value (a case that names no one involved);
- conformity: every text field's length (``field_too_long``); a field's identifier rules
  (``schemas.water_identifiers.CHECKS``: ``invalid_imo``, ``invalid_mmsi``,
  ``mmsi_foreign_mid`` …; ``invalid_uscc``, ``uscc_unknown_org_type``,
  ``invalid_region_code``, ``invalid_plate``, ``invalid_plate_color``, ``invalid_id_number``);
  a code table's rule (``unknown_<what>`` on a field with a ``code_table``, each value of a
  list checked); ``implausible_date``; ``invalid_period`` and ``invalid_validity`` (a date
  before the register's date field preceding it);
- relational: a reference rule (``unknown_<what>`` on a field that ``refers_to`` registers):
  the entity it names is in the registry under one of them (a finding carries the first
  register's key as ``ref_key``, so it stays provisional until that entity arrives);
  ``<what>_backwards`` on a field with a code table: the value never comes before the entity's
  last accepted one in the table's order (a case's stage); ``plate_province_mismatch``: a plate
  of the province publishing the record;
  ``<register>_without_permit``: the referenced entity's last accepted filing holds a valid
  permit (a permit number and the status ``active``), which the stage keeps in the
  registry as ``permit:<entity key>`` (``streams.routing.ownership_entries``) — a permit's
  validity dates are not declared, so they are not checked; ``region_outside_party``: a
  province publishing the record names a region of its own (a region code's first two digits
  are the province's code); a party that is not a province has no region prefix and is not
  checked.

A rule a declaration names that is none of these raises ``RuleTableError`` when the table is
built (at import): a register cannot name a rule the stage does not run.
"""

from __future__ import annotations

from typing import Callable

from schemas import identifiers, registers, water_identifiers
from schemas.registers import FieldDecl, RegisterDecl

from . import checks
from .checks import COMPLETENESS, CONFORMITY, ERROR, RELATIONAL, WARNING, Check, Facts, Record, Rule
from .errors import RuleTableError
from .routing import PERMIT_STATUS, permit_key, registry_keys

__all__ = ["declared_rules", "register_rules"]

FieldRule = Callable[[RegisterDecl, FieldDecl, str], tuple[str, str, Check]]  # → (dimension, message, check)


def declared_rules(exclude: tuple[str, ...] = ()) -> list[Rule]:
    """The rules of every declared register but those of ``exclude``, in declaration order."""
    return [rule for register in registers.declarations() if register.entity_type not in exclude
            for rule in register_rules(register)]


def register_rules(register: RegisterDecl) -> list[Rule]:
    """The rules one declaration says, completeness first, then each field's in field order."""
    entity = register.entity_type
    rules = [Rule("required_field", entity, COMPLETENESS, ERROR, f.name, "a required field is missing",
                  checks.required(f.name)) for f in register.fields if f.required and f.kind == "string"]
    rules += [Rule("expected_field", entity, COMPLETENESS, WARNING, f.name, "an expected field is not given",
                   checks.present(f.name)) for f in register.fields if f.expected]
    rules.append(Rule("field_too_long", entity, CONFORMITY, ERROR, None, "a text field is too long",
                      checks.text_lengths))
    for field in register.fields:
        for severity, codes in ((ERROR, field.errors), (WARNING, field.warnings)):
            for code in codes:
                dimension, message, check = _field_rule(register, field, code)(register, field, code)
                refers_to = field.refers_to.registers[0] if field.refers_to and code.startswith("unknown_") \
                    and dimension == RELATIONAL else None
                rules.append(Rule(code, entity, dimension, severity, field.name, message, check, refers_to))
    for severity, codes in ((ERROR, register.errors), (WARNING, register.warnings)):
        for code in codes:
            if code != f"{entity}_without_party":
                raise RuleTableError(f"{entity}: rule {code} on the whole record is no rule the stream stage "
                                     f"knows (it knows {entity}_without_party); declare the others on a field")
            rules.append(_without_party(register, code, severity))
    return rules


def _without_party(register: RegisterDecl, code: str, severity: str) -> Rule:
    """``<register>_without_party``: the record names no entity of another register (a case, no one involved)."""
    named = tuple(field.name for field in register.fields if field.refers_to is not None)
    if not named:
        raise RuleTableError(f"{register.entity_type}: rule {code} needs fields that refer to another register")

    def run(record: Record, facts: Facts) -> str | None:
        return None if any(record.get(name) for name in named) else f"none of {', '.join(named)} is given"
    return Rule(code, register.entity_type, COMPLETENESS, severity, None, f"the {register.entity_type} names no "
                f"entity of another register", run)


def _field_rule(register: RegisterDecl, field: FieldDecl, code: str) -> FieldRule:
    where = f"{register.entity_type}.{field.name}: rule {code}"
    if code in water_identifiers.CHECKS:
        warned = code in water_identifiers.WARNING_RULES
        if warned != (code in field.warnings):
            raise RuleTableError(f"{where} is {'a warning' if warned else 'an error'} in schemas.water_identifiers")
        return _water_identifier
    if code in FIELD_RULES:
        return FIELD_RULES[code]
    if code == f"{_referenced(field)}_without_permit":
        return _permit
    if code.endswith("_backwards") and field.code_table is not None:
        return _forward_only
    if code.startswith("unknown_") and field.code_table is not None:
        return _code_table
    if code.startswith("unknown_") and field.refers_to is not None:
        return _reference
    raise RuleTableError(f"{where} is no rule the stream stage knows")


def _referenced(field: FieldDecl) -> str | None:
    return field.refers_to.registers[0] if field.refers_to is not None and len(field.refers_to.registers) == 1 \
        else None


def _standard(field: FieldDecl, fallback: str) -> str:
    return f"{field.label_zh} fails {field.standard}" if field.standard else fallback


def _water_identifier(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    check = water_identifiers.CHECKS[code]
    first = tuple(water_identifiers.CHECKS[c] for c in field.errors if c in water_identifiers.CHECKS and c != code)
    name = field.name

    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(name)
        if value is None or value == "":
            return None
        if any(checks.identifier_error(other, value) is not None for other in first):
            return None  # a value that fails the field's errors is not also warned about
        return checks.identifier_error(check, value)
    message = (check.__doc__ or code).strip().splitlines()[0]
    return CONFORMITY, _standard(field, message) if code not in water_identifiers.WARNING_RULES else message, run


def _uscc(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return CONFORMITY, _standard(field, "USCC fails GB 32100"), checks.uscc(field.name)


def _uscc_org_type(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return (CONFORMITY, "USCC organisation type not in GB 32100's table for its registration authority",
            checks.uscc_org_type(field.name))


def _region_code(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return CONFORMITY, _standard(field, "not a GB/T 2260 code"), checks.identifier(field.name,
                                                                                 identifiers.check_region_code)


def _plate(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return CONFORMITY, _standard(field, "plate fails GA 36"), checks.identifier(field.name, identifiers.check_plate)


def _plate_color(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return CONFORMITY, "plate colour not in JT/T 697.7", checks.identifier(field.name, identifiers.check_plate_color)


def _id_number(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return CONFORMITY, _standard(field, "ID number fails GB 11643"), checks.id_number(field.name)


def _plate_province(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return RELATIONAL, "the plate belongs to another province", checks.plate_province(field.name)


def _forward_only(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    order = registers.code_tables()[field.code_table]
    return RELATIONAL, f"a {field.name} only moves forward (in the order of {field.code_table})", \
        checks.forward_only(field.name, tuple(order))


def _date(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    return CONFORMITY, "date out of range", checks.plausible_date(field.name)


def _period(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    before = register.fields[:register.fields.index(field)]
    start = next((f.name for f in reversed(before) if f.kind in ("date", "timestamp")), None)
    if start is None:
        raise RuleTableError(f"{register.entity_type}.{field.name}: invalid_period needs a date field before it")
    end = field.name

    def run(record: Record, facts: Facts) -> str | None:
        first, last = checks.as_date(record.get(start)), checks.as_date(record.get(end))
        if first and last and first > last:
            return f"{end} {last.isoformat()} is before {start} {first.isoformat()}"
        return None
    return CONFORMITY, f"{end} comes before {start}", run


def _region_in_party(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    name = field.name

    def run(record: Record, facts: Facts) -> str | None:
        region = record.get(name)
        if facts.province not in identifiers.PROVINCES or not isinstance(region, str) or len(region) != 6:
            return None  # a party that is not a province has no region prefix
        if region[:2] == facts.province:
            return None
        return f"region {region} lies outside province {facts.province}, the party publishing it"
    return RELATIONAL, "the region is not the publishing party's", run


def _code_table(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    table = registers.code_tables()[field.code_table]
    return CONFORMITY, f"{field.name} not in the code table {field.code_table}", checks.code_table(field.name, table)


def _reference(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    reference, name = field.refers_to, field.name

    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(name)
        if not value:
            return None
        keys = registry_keys(reference, value)
        if any(facts.registered(key) is not None for key in keys):
            return None
        return f"{' / '.join(keys)} is in no party's register"
    return RELATIONAL, f"the {' or '.join(reference.registers)} named is not registered", run


def _permit(register: RegisterDecl, field: FieldDecl, code: str) -> tuple[str, str, Check]:
    reference, name = field.refers_to, field.name

    def run(record: Record, facts: Facts) -> str | None:
        value = record.get(name)
        if not value:
            return None
        (key,) = registry_keys(reference, value)
        if facts.registered(key) is None or facts.registered(permit_key(key)) is not None:
            return None  # an unregistered one is the reference rule's finding
        return (f"{key}'s last accepted filing holds no valid permit (a permit number and status "
                f"{PERMIT_STATUS!r}); validity dates are not declared, so not checked")
    return RELATIONAL, f"the {reference.registers[0]} named holds no valid permit", run


FIELD_RULES: dict[str, FieldRule] = {
    "invalid_uscc": _uscc,
    "invalid_plate": _plate,
    "invalid_plate_color": _plate_color,
    "invalid_id_number": _id_number,
    "plate_province_mismatch": _plate_province,
    "invalid_validity": _period,
    "uscc_unknown_org_type": _uscc_org_type,
    "invalid_region_code": _region_code,
    "region_outside_party": _region_in_party,
    "implausible_date": _date,
    "invalid_period": _period,
}
