"""Header mapping: column labels of a provincial export → canonical entity fields.

A column may be labelled with the canonical field name or with a Chinese data-element label
a provincial system exports (JT/T 697.7 names): the field's preferred label in the catalog
(``schemas.catalog.LABELS_ZH``) or one of the synonyms listed here. A province may supply
its own mapping file (JSON ``{"label": "field"}``; ``null`` ignores a column), which is
applied before the defaults. For a field its export has no column for, the mapping file
may give one value for every row (as Kafka Connect's InsertField static value), read as a
cell of that field would be: ``{"constants": {"status": "营业"}}``. Unknown, duplicated or
missing required columns reject the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from schemas import catalog, contract

from ..errors import FileRejected, MappingError, BadRow
from .rows import column_fields, parse_cell

CONSTANTS = "constants"  # the mapping file's section of one value per field for every row

# Labels provincial exports use for a column besides the catalog's preferred label of its field.
_SYNONYMS: dict[str, dict[str, str]] = {
    "operator": {"经营业户名称": "name", "状态": "status"},
    "vehicle": {
        "号牌号码": "plate", "车架号": "vin", "车辆类别": "vehicle_class", "统一社会信用代码": "operator_uscc",
        "核定座位数": "seats", "核定载质量": "tonnage_kg", "状态": "status",
    },
    "practitioner": {"身份证号码": "id_number", "公民身份号码": "id_number", "统一社会信用代码": "employer_uscc"},
    "licence": {"行政区划代码": "issuer_region_code", "状态": "status",
                "印章密钥标识": "seal_key_id", "签章密钥标识": "seal_key_id", "电子印章密钥标识": "seal_key_id",
                "印章签名值": "seal_signature", "签名值": "seal_signature", "电子印章签名值": "seal_signature",
                "签章时间": "sealed_at", "盖章时间": "sealed_at"},
    "case": {
        "发生时间": "occurred_at", "车牌号码": "involved_plate", "统一社会信用代码": "involved_operator_uscc",
        "身份证号": "involved_id_number", "身份证号码": "involved_id_number", "公民身份号码": "involved_id_number",
    },
}


def _default_labels(entity: str) -> dict[str, str]:
    """Label → field of one entity: the catalog's preferred labels, then the synonyms."""
    labels = {label: field for field, label in catalog.LABELS_ZH[entity].items()}
    for label, field in _SYNONYMS[entity].items():
        if label in labels:
            raise ValueError(f"{entity} column label {label!r} is given twice (for {labels[label]} and {field})")
        labels[label] = field
    return labels


# entity -> column label -> canonical field: every label a column may carry besides the field's name.
DEFAULT_LABELS: dict[str, dict[str, str]] = {entity: _default_labels(entity) for entity in contract.ENTITY_TYPES}

_FILE_NAME_WORDS = {  # what a file name may start with besides the register's Chinese name
    "operator": ("operator", "operators", "业户"),
    "vehicle": ("vehicle", "vehicles", "车辆"),
    "practitioner": ("practitioner", "practitioners"),
    "licence": ("licence", "licences", "license", "证照"),
    "case": ("case", "cases", "案件"),
}
_ENTITY_ALIASES = {entity: (*words, catalog.REGISTER_NAMES[entity][0]) for entity, words in _FILE_NAME_WORDS.items()}


def normalize_label(label: str) -> str:
    """Labels compare without spaces, with ASCII brackets and lower-case Latin letters."""
    return "".join(label.split()).replace("（", "(").replace("）", ")").lower()


def entity_from_name(name: str) -> str | None:
    """The entity a file name announces by its first word (``vehicle_20240601.csv``, ``营运车辆-0601.xlsx``)."""
    stem = name.lower()
    for entity, aliases in _ENTITY_ALIASES.items():
        if any(stem.startswith(alias) for alias in aliases):
            return entity
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
    fields = column_fields(entity)
    labels = {normalize_label(f): f for f in fields}
    labels.update({normalize_label(label): field for label, field in DEFAULT_LABELS[entity].items()})
    constants = constants_of(mapping)
    columns: list[str | None] = []
    unknown: list[str] = []
    for index, label in enumerate(header, start=1):
        key = normalize_label(label)
        if key in mapping:
            columns.append(mapping[key])
        elif key in labels:
            columns.append(labels[key])
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
