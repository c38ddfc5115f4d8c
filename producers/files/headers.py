"""Header mapping: column labels of a party's export → canonical entity fields.

A column may be labelled with the canonical field name or with a Chinese label a party's
system exports: the field's preferred label or one of the other labels its register
declaration gives it (``schemas.registers``, ``RegisterDecl.column_labels()``: JT/T 697.7
names for the road registers, the 2019 water-transport plan's for the water ones). A party may
supply its own mapping file (JSON ``{"label": "field"}``; ``null`` ignores a column), which is
applied before the defaults. For a field its export has no column for, the mapping file
may give one value for every row (as Kafka Connect's InsertField static value), read as a
cell of that field would be: ``{"constants": {"status": "营业"}}``. Unknown, duplicated or
missing required columns reject the file.

A money column (a field in yuan, ``*_yuan``) may say its unit in its label: a declared label
with the unit in brackets replaced or added, ``总投资(万元)``, ``总投资（亿元）``, ``总投资(元)``;
its bare numbers are then in that unit (``column_scales``), converted to yuan row by row.

A file name announces its register by its first word (``entity_from_name``): the entity type,
its plural, the register's Chinese name, or that name's last word when no other register
shares it (经营业户 → 业户, 营运车辆 → 车辆, 营运船舶 → 船舶).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Mapping

from schemas import registers

from ..errors import FileRejected, MappingError, BadRow
from . import fields
from .rows import column_fields, parse_cell

CONSTANTS = "constants"  # the mapping file's section of one value per field for every row

# entity -> column label -> canonical field: every label a column may carry besides the field's name.
DEFAULT_LABELS: dict[str, dict[str, str]] = {
    register.entity_type: register.column_labels() for register in registers.declarations()}

_SPELLINGS = {"licence": ("license",)}  # English spellings of an entity type besides the declared one
_UNIT = re.compile(r"^(?P<base>.*?)\((?P<unit>元|万元|亿元)\)$")


def _file_name_words() -> dict[str, tuple[str, ...]]:
    """Entity → the words a file name of it may start with."""
    declared = registers.declarations()
    short = [register.name_zh[2:] for register in declared]
    words = {}
    for register in declared:
        entity, tail = register.entity_type, register.name_zh[2:]
        own = (entity, f"{entity}s", *_SPELLINGS.get(entity, ()), register.name_zh)
        words[entity] = (*own, tail) if len(tail) >= 2 and short.count(tail) == 1 else own
    return words


_ENTITY_ALIASES = _file_name_words()


def normalize_label(label: str) -> str:
    """Labels compare without spaces, with ASCII brackets and lower-case Latin letters."""
    return "".join(label.split()).replace("（", "(").replace("）", ")").lower()


def entity_from_name(name: str) -> str | None:
    """The entity a file name announces by its first word (``vehicle_20240601.csv``, ``营运车辆-0601.xlsx``);
    the longest word wins (``shipping_enterprise_…`` is not a ``ship`` file)."""
    stem = name.lower()
    found = [(len(alias), entity) for entity, aliases in _ENTITY_ALIASES.items() for alias in aliases
             if stem.startswith(alias)]
    return max(found)[1] if found else None


def register_of(name: str) -> str | None:
    """The register a directory of the inbox names: its entity type or its Chinese name."""
    for register in registers.declarations():
        if name in (register.entity_type, register.name_zh):
            return register.entity_type
    return None


class HeaderMapping(dict):
    """A province's mapping: normalised column label → field (None: ignored), and
    ``constants``: field → the cell text every row gets for a field without a column."""

    def __init__(self, labels: Mapping[str, str | None] = {}, constants: Mapping[str, str] = {}) -> None:
        super().__init__(labels)
        self.constants = dict(constants)


def constants_of(mapping: Mapping[str, str | None]) -> dict[str, str]:
    return mapping.constants if isinstance(mapping, HeaderMapping) else {}


def load_mapping(path: Path, entity: str) -> HeaderMapping:
    """Read a province's mapping file; raises ``MappingError`` naming the bad entry."""
    try:
        data = json.loads(Path(path).read_text("utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise MappingError(f"mapping file {path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MappingError(f"mapping file {path} must hold an object {{\"label\": \"field\"}}")
    fields = set(column_fields(entity))
    constants = _constants(path, entity, data.pop(CONSTANTS) if isinstance(data.get(CONSTANTS), dict) else {})
    mapping: dict[str, str | None] = {}
    for label, field in data.items():
        if field is not None and field not in fields:
            raise MappingError(f"mapping file {path}: {label!r} maps to {field!r}, which is not a {entity} field "
                               f"(known: {', '.join(sorted(fields))})")
        if field in constants:
            raise MappingError(f"mapping file {path}: field {field}: constant_and_column: {label!r} maps to "
                               f"{field} and {CONSTANTS} gives it too; keep one")
        mapping[normalize_label(label)] = field
    return HeaderMapping(mapping, constants)


def _constants(path: Path, entity: str, given: Mapping[str, object]) -> dict[str, str]:
    """The ``constants`` section, each value checked as a cell of its field would be."""
    constants = {}
    for field, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise MappingError(f"mapping file {path}: {CONSTANTS} field {field}: bad_constant: give the value as "
                               f"text, not {json.dumps(value, ensure_ascii=False)}")
        text = str(value)
        try:
            parse_cell(entity, field, text)
        except BadRow as exc:
            raise MappingError(f"mapping file {path}: {CONSTANTS} field {field}: {exc.rule}: {exc.detail}") from exc
        constants[field] = text
    return constants


def map_header(entity: str, header: tuple[str, ...], required: Iterable[str],
               mapping: Mapping[str, str | None] = {}) -> tuple[str | None, ...]:
    """The canonical field of each column (None: ignored). Raises ``FileRejected``."""
    labels = _labels(entity)
    constants = constants_of(mapping)
    columns: list[str | None] = []
    unknown: list[str] = []
    for index, label in enumerate(header, start=1):
        key = normalize_label(label)
        if key in mapping:
            columns.append(mapping[key])
        elif key in labels:
            columns.append(labels[key])
        elif _money_column(labels, key) is not None:
            columns.append(_money_column(labels, key)[0])
        else:
            unknown.append(repr(label) if label else f"(column {index} has no label)")
            columns.append(None)
    if unknown:
        raise FileRejected("unknown_columns", f"{entity} file has unknown columns {', '.join(unknown)}: "
                           f"name them as {entity} fields or map them with --mapping (null ignores a column)")
    seen: dict[str, str] = {}
    for label, field in zip(header, columns):
        if field is None:
            continue
        if field in seen:
            raise FileRejected("duplicate_columns", f"columns {seen[field]!r} and {label!r} both give {field}")
        if field in constants:
            raise FileRejected("duplicate_columns", f"column {label!r} and the mapping's {CONSTANTS} both give "
                               f"{field}: map the column to null or drop the constant")
        seen[field] = label
    missing = sorted(set(required) - set(seen) - set(constants))
    if missing:
        example = json.dumps({CONSTANTS: {missing[0]: "<value>"}})
        raise FileRejected("missing_columns", f"{entity} file lacks required columns {', '.join(missing)}: add them, "
                           f"map a column to them with --mapping, or, if every row has the same value, give it in "
                           f"the --mapping file as {example}")
    return tuple(columns)


def _labels(entity: str) -> dict[str, str]:
    """Normalised label (and field name) → field of one entity."""
    labels = {normalize_label(f): f for f in column_fields(entity)}
    labels.update({normalize_label(label): field for label, field in DEFAULT_LABELS[entity].items()})
    return labels


def _money_column(labels: Mapping[str, str], key: str) -> tuple[str, int] | None:
    """(field, yuan per unit) of a money column whose label names its unit, e.g. ``总投资(万元)``."""
    match = _UNIT.match(key)
    if match is None:
        return None
    base = match["base"]
    for candidate in (base, f"{base}(元)"):
        field = labels.get(candidate)
        if field is not None and fields.is_yuan(field):
            return field, fields.YUAN_UNITS[match["unit"]]
    return None


def column_scales(entity: str, header: tuple[str, ...], columns: tuple[str | None, ...]) -> dict[str, int]:
    """Field → yuan per unit of the bare numbers of its money column, where the label names a unit."""
    labels = _labels(entity)
    scales = {}
    for label, field in zip(header, columns):
        if field is not None and fields.is_yuan(field):
            money = _money_column(labels, normalize_label(label))
            if money is not None and money[0] == field:
                scales[field] = money[1]
    return scales
