"""Reads register declarations from TOML files and checks them.

A directory of declarations holds ``index.toml`` (``registers = [...]``: the registers in
catalog order) and one ``<entity_type>.toml`` per register (the format is described in this
package's ``__init__``). Anything unknown, missing or inconsistent raises ``SchemaLoadError``
naming the file and the field: an unknown key, a key field that is not a required field, a
label naming two columns, a code table no one defines, a reference to an undeclared register
or to a field the referenced register does not have.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .. import codes
from ..errors import SchemaLoadError
from .declaration import ENTITY_KEY, PERSONAL_KINDS, CodeTable, Column, FieldDecl, Reference, RegisterDecl, kind_of

__all__ = ["INDEX", "load"]

INDEX = "index.toml"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_REGISTER_KEYS = {"entity_type", "name_zh", "name_en", "record", "key", "view", "errors", "warnings", "fields",
                  "code_tables"}
_REGISTER_REQUIRED = ("entity_type", "name_zh", "name_en", "record", "key", "view", "fields")
_FIELD_KEYS = {"name", "type", "required", "default", "label_zh", "labels", "standard", "code_table", "errors",
               "warnings", "personal", "canonical", "expected", "refers_to", "ref_by", "columns", "in_view", "doc"}
_TABLE_KEYS = {"confirmed", "codes"}


def load(directory: Path) -> tuple[RegisterDecl, ...]:
    """Every register declared in ``directory``, in the index's order, checked."""
    index = _read(directory / INDEX)
    _known_keys(index, {"registers"}, INDEX)
    names = index.get("registers")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SchemaLoadError(f"{INDEX}: 'registers' must list the registers' entity types")
    if len(set(names)) != len(names):
        raise SchemaLoadError(f"{INDEX}: a register is listed twice")
    return _checked_across(tuple(_register(directory / f"{name}.toml", name) for name in names))


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaLoadError(f"cannot read register declaration {path}: {exc}") from exc


def _known_keys(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise SchemaLoadError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise SchemaLoadError(f"{where} must be a list of non-empty strings")
    return tuple(value)


def _text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = data.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SchemaLoadError(f"{where}: {key} must be non-empty text")
    return value


def _flag(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SchemaLoadError(f"{where}: {key} must be true or false")
    return value


def _register(path: Path, name: str) -> RegisterDecl:
    data = _read(path)
    where = path.name
    _known_keys(data, _REGISTER_KEYS, where)
    missing = [key for key in _REGISTER_REQUIRED if key not in data]
    if missing:
        raise SchemaLoadError(f"{where}: missing {', '.join(missing)}")
    if data["entity_type"] != name or not _NAME.fullmatch(name):
        raise SchemaLoadError(f"{where}: entity_type {data['entity_type']!r} must be the file's name, {name!r}")
    if not isinstance(data["fields"], list) or not data["fields"]:
        raise SchemaLoadError(f"{where}: fields must be a list of [[fields]] tables")
    fields = tuple(_field(raw, f"{where} field {i}") for i, raw in enumerate(data["fields"], start=1))
    register = RegisterDecl(
        entity_type=name, name_zh=_text(data, "name_zh", where), name_en=_text(data, "name_en", where),
        record=_text(data, "record", where), key_fields=_strings(data["key"], f"{where}: key"),
        view=_text(data, "view", where), fields=fields,
        code_tables=_code_tables(name, data.get("code_tables", {}), where),
        errors=_strings(data.get("errors", []), f"{where}: errors"),
        warnings=_strings(data.get("warnings", []), f"{where}: warnings"),
    )
    _check_register(register, where)
    return register


def _field(raw: Any, where: str) -> FieldDecl:
    if not isinstance(raw, dict):
        raise SchemaLoadError(f"{where} must be a table")
    _known_keys(raw, _FIELD_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SchemaLoadError(f"{where}: name {name!r} must be lower-case letters, digits and _")
    where = f"{where.rsplit(' field', 1)[0]} field {name}"
    if "type" not in raw or "label_zh" not in raw:
        raise SchemaLoadError(f"{where}: type and label_zh are required")
    kind_of(name, raw["type"])
    required = _flag(raw, "required", where, False)
    if required and "default" in raw:
        raise SchemaLoadError(f"{where}: a required field has no default")
    personal = raw.get("personal")
    if personal is not None and personal not in PERSONAL_KINDS:
        raise SchemaLoadError(f"{where}: personal must be one of {', '.join(PERSONAL_KINDS)}")
    refers_to = None
    if "refers_to" in raw:
        refers_to = Reference(_strings(raw["refers_to"], f"{where}: refers_to"), _text(raw, "ref_by", where) or "")
    elif "ref_by" in raw:
        raise SchemaLoadError(f"{where}: ref_by without refers_to")
    columns = []
    for column in raw.get("columns", []):
        if not isinstance(column, dict) or set(column) != {"name", "labels"}:
            raise SchemaLoadError(f"{where}: each column is {{name = ..., labels = [...]}}")
        columns.append(Column(column["name"], _strings(column["labels"], f"{where}: column labels")))
    errors = _strings(raw.get("errors", []), f"{where}: errors")
    warnings = _strings(raw.get("warnings", []), f"{where}: warnings")
    if set(errors) & set(warnings):
        raise SchemaLoadError(f"{where}: rules {', '.join(sorted(set(errors) & set(warnings)))} are both an error "
                              f"and a warning")
    return FieldDecl(
        name=name, avro_type=raw["type"], required=required, nullable=not required and "default" not in raw,
        default=raw.get("default"), label_zh=_text(raw, "label_zh", where),
        labels=_strings(raw.get("labels", []), f"{where}: labels"), standard=_text(raw, "standard", where),
        code_table=_text(raw, "code_table", where), errors=errors, warnings=warnings, personal=personal,
        canonical=_flag(raw, "canonical", where, False), expected=_flag(raw, "expected", where, False),
        refers_to=refers_to, columns=tuple(columns), in_view=_flag(raw, "in_view", where, True),
        doc=_text(raw, "doc", where),
    )


def _code_tables(entity: str, raw: Any, where: str) -> Mapping[str, CodeTable]:
    if not isinstance(raw, dict):
        raise SchemaLoadError(f"{where}: code_tables must be a table of [code_tables.<field>] tables")
    tables = {}
    for field, table in raw.items():
        here = f"{where} code table {field}"
        if not isinstance(table, dict):
            raise SchemaLoadError(f"{here} must be a table")
        _known_keys(table, _TABLE_KEYS, here)
        entries = table.get("codes")
        if not isinstance(entries, dict) or not entries:
            raise SchemaLoadError(f"{here}: codes must map each code to its Chinese labels")
        name = f"{entity}.{field}"
        labels = [label for given in entries.values() for label in (given if isinstance(given, list) else ())]
        if len(set(labels)) != len(labels):
            raise SchemaLoadError(f"{here}: a label names two codes")
        tables[name] = CodeTable(name, MappingProxyType({code: _strings(labels, f"{here}: {code}")
                                                         for code, labels in entries.items()}),
                                 _flag(table, "confirmed", here, True))
    return MappingProxyType(tables)


def _check_register(register: RegisterDecl, where: str) -> None:
    names = register.field_names
    if len(set(names)) != len(names):
        raise SchemaLoadError(f"{where}: a field is declared twice")
    for key in register.key_fields:
        if key not in names or not register.field(key).required:
            raise SchemaLoadError(f"{where}: key field {key!r} must be a required field")
    seen: dict[str, str] = {}
    for field in register.fields:
        for label in (field.label_zh, *field.labels, *(lb for column in field.columns for lb in column.labels)):
            if label in seen:
                raise SchemaLoadError(f"{where}: label {label!r} names both {seen[label]} and {field.name}")
            seen[label] = field.name
    for table in register.code_tables.values():
        if not any(field.code_table == table.name for field in register.fields):
            raise SchemaLoadError(f"{where}: code table {table.name} is checked by no field")
        if table.name in codes.CODE_TABLES:
            raise SchemaLoadError(f"{where}: code table {table.name} is schemas.codes' already")


def _checked_across(declared: tuple[RegisterDecl, ...]) -> tuple[RegisterDecl, ...]:
    """The registers with what one says about another checked (references, code tables, unique
    records and views) and each reference's ``by`` filled in."""
    by_name = {register.entity_type: register for register in declared}
    tables = {name for register in by_name.values() for name in register.code_tables} | set(codes.CODE_TABLES)
    for attribute in ("record", "view"):
        values = [getattr(register, attribute) for register in by_name.values()]
        if len(set(values)) != len(values):
            raise SchemaLoadError(f"two registers declare the same {attribute}")
    checked = []
    for register in declared:
        fields = []
        for field in register.fields:
            where = f"{register.entity_type}.toml field {field.name}"
            if field.code_table is not None and field.code_table not in tables:
                raise SchemaLoadError(f"{where}: code table {field.code_table} is defined nowhere")
            if field.refers_to is not None:
                field = replace(field, refers_to=_resolved(field.refers_to, by_name, where))
            fields.append(field)
        checked.append(replace(register, fields=tuple(fields)))
    return tuple(checked)


def _resolved(reference: Reference, by_name: Mapping[str, RegisterDecl], where: str) -> Reference:
    unknown = [name for name in reference.registers if name not in by_name]
    if unknown:
        raise SchemaLoadError(f"{where}: refers to undeclared registers {', '.join(unknown)}")
    by = reference.by
    if not by:
        keys = {by_name[name].key_fields for name in reference.registers}
        if len(keys) != 1 or len(next(iter(keys))) != 1:
            raise SchemaLoadError(f"{where}: say ref_by: the registers referred to have no one single key field")
        by = next(iter(keys))[0]
    if by != ENTITY_KEY:
        lacking = [name for name in reference.registers if by not in by_name[name].field_names]
        if lacking:
            raise SchemaLoadError(f"{where}: ref_by {by!r} is not a field of {', '.join(lacking)}")
    return Reference(reference.registers, by)
