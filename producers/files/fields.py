"""What the file adapter knows of a register's fields, read from its declaration (``schemas.registers``).

Nothing here names a register: each answer comes from the declared fields.

- ``field_specs``: the fields in record order, their kinds and whether they are required.
- ``column_fields``: what a file column may give: the fields, and a nested field's columns
  (a licence's seal in ``seal_key_id``, ``seal_signature``, ``sealed_at``).
- ``code_labels``: a code table's Chinese labels → codes (``schemas.codes.LABELS`` for the
  contract's tables, ``CodeTable.labels()`` for the tables a register defines).
- ``strict_codes``: whether a value outside the field's code table rejects the row (its rule is
  declared an error) or passes as given for the stage to warn about (declared a warning).
- ``canonical_form``: how a canonical identifier is written (an IMO number without its ``IMO``
  prefix, every other one as ``schemas.identifiers.canonical``).
- ``record_checks``: the identifier checks of the field's declared error rules, in field order.

Units. A field's declared unit is the last word of its name: ``_kg`` (kilograms; a cell may give
tonnes, ``10.5吨``/``10.5t``) and ``_yuan`` (yuan; a cell may say ``3200万元``, ``1.5亿元`` or
``120000元``, and a column headed ``总投资(万元)`` gives bare numbers in 万元, see ``headers``).
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Callable, Mapping

from schemas import codes, identifiers, registers, water_identifiers
from schemas.contract import FieldSpec
from schemas.errors import InvalidIdentifier

from ..errors import BadRow

__all__ = ["YUAN_UNITS", "canonical_form", "code_labels", "column_fields", "field_specs", "is_yuan",
           "record_checks", "required_fields", "strict_codes"]

# The units a money column or cell may be given in, → yuan.
YUAN_UNITS: Mapping[str, int] = {"元": 1, "万元": 10_000, "亿元": 100_000_000}
Check = Callable[[dict, frozenset, "datetime.date | None"], None]


@functools.cache
def field_specs(entity: str) -> tuple[FieldSpec, ...]:
    """The register's fields with their kinds, in record order (as ``schemas.contract.field_specs``)."""
    return tuple(FieldSpec(f.name, f.kind, f.required, None if f.nullable else f.default)
                 for f in _declaration(entity).fields)


def required_fields(entity: str) -> tuple[str, ...]:
    return tuple(spec.name for spec in field_specs(entity) if spec.required)


def key_fields(entity: str) -> tuple[str, ...]:
    return _declaration(entity).key_fields


def entity_key(entity: str, record: Mapping[str, Any]) -> str:
    """``<entity>:<natural key>``, as ``schemas.contract.entity_key``."""
    return f"{entity}:" + ":".join(str(record[name]) for name in key_fields(entity))


@functools.cache
def column_fields(entity: str) -> tuple[str, ...]:
    """What a column may give: the fields, then the columns of nested fields."""
    fields = _declaration(entity).fields
    return (*(f.name for f in fields), *(c.name for f in fields for c in f.columns))


@functools.cache
def nested_columns(entity: str, name: str) -> tuple[str, ...]:
    return tuple(column.name for column in _declaration(entity).field(name).columns)


@functools.cache
def code_labels(table: str) -> Mapping[str, str]:
    """Chinese label → code of a code table."""
    if table in codes.CODE_TABLES:
        return codes.LABELS.get(table, {})
    for register in registers.declarations():
        if table in register.code_tables:
            return register.code_tables[table].labels()
    raise KeyError(f"no code table {table!r}")


@functools.cache
def code_table(entity: str, name: str) -> str | None:
    return _field(entity, name).code_table


@functools.cache
def strict_codes(entity: str, name: str) -> bool:
    """A value outside the field's code table rejects the row unless its rule is declared a warning."""
    field = _field(entity, name)
    return not any(rule.startswith("unknown_") for rule in field.warnings)


@functools.cache
def canonical_form(entity: str, name: str) -> Callable[[str], str] | None:
    """How the field's value is written in canonical form (None: it has no canonical form)."""
    field = _field(entity, name)
    if not field.canonical:
        return None
    return water_identifiers.canonical_imo if "invalid_imo" in field.errors else identifiers.canonical


def is_yuan(name: str) -> bool:
    return name.endswith("_yuan")


def _identifier(field: str, check: Callable[..., Any], value: Any, *args: Any) -> None:
    if value is None:
        return
    try:
        check(value, *args)
    except InvalidIdentifier as exc:
        raise BadRow(field, exc.rule, str(exc)) from exc


def _rule_check(rule: str, field: str, label: str, previous_date: tuple[str, str] | None) -> Check | None:
    """The check a declared error rule makes of one field, or None when the adapter leaves it to the stage."""
    if rule == "invalid_uscc":
        return lambda r, allow, _today: _identifier(field, identifiers.check_uscc, r[field], allow)
    if rule == "invalid_id_number":
        return lambda r, _allow, today: _identifier(field, identifiers.check_id_number, r[field], today)
    simple = {"invalid_region_code": identifiers.check_region_code, "invalid_plate": identifiers.check_plate,
              "invalid_plate_color": identifiers.check_plate_color, "invalid_imo": water_identifiers.check_imo,
              "invalid_mmsi": water_identifiers.check_mmsi}.get(rule)
    if simple is not None:
        return lambda r, _allow, _today: _identifier(field, simple, r[field])
    if rule in ("invalid_validity", "invalid_period") and previous_date is not None:
        start, start_label = previous_date

        def period(r: dict, _allow: frozenset, _today: datetime.date | None) -> None:
            if r[start] is not None and r[field] is not None and r[start] > r[field]:
                raise BadRow(field, rule, f"{label} is before {start_label}")
        return period
    return None


@functools.cache
def record_checks(entity: str) -> tuple[Check, ...]:
    """The checks of a parsed record, in field order: each declared error rule the adapter knows how to
    check (identifiers, a period's end before its start); the others are the stage's."""
    checks: list[Check] = []
    previous_date: tuple[str, str] | None = None
    for field in _declaration(entity).fields:
        for rule in field.errors:
            check = _rule_check(rule, field.name, field.label_zh, previous_date)
            if check is not None:
                checks.append(check)
        if field.kind == "date":
            previous_date = (field.name, field.label_zh)
    return tuple(checks)


def _declaration(entity: str) -> registers.RegisterDecl:
    try:
        return registers.declaration(entity)
    except KeyError:
        raise ValueError(f"unknown entity type {entity!r}") from None


@functools.cache
def _field(entity: str, name: str) -> registers.FieldDecl:
    return _declaration(entity).field(name)
