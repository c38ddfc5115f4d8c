"""Header mapping: column labels of a provincial export → canonical entity fields.

A column may be labelled with the canonical field name or with the Chinese data-element
label a provincial system exports (JT/T 697.7 names). A province may supply its own
mapping file (JSON ``{"label": "field"}``; ``null`` ignores a column), which is applied
before the defaults. For a field its export has no column for, the mapping file may give
one value for every row (as Kafka Connect's InsertField static value), read as a cell of
that field would be: ``{"constants": {"status": "营业"}}``. Unknown, duplicated or missing
required columns reject the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from schemas import contract

from ..errors import FileRejected, MappingError, BadRow
from .rows import parse_cell

CONSTANTS = "constants"  # the mapping file's section of one value per field for every row
_COMMON = {"状态": "status", "行政区划代码": "region_code"}
_ID = ("身份证号", "身份证号码", "公民身份号码")

DEFAULT_LABELS: dict[str, dict[str, str]] = {
    "operator": {
        "统一社会信用代码": "uscc", "业户名称": "name", "经营业户名称": "name", "经营许可证号": "permit_no",
        "经营范围": "business_scope", "经营状态": "status", "法定代表人身份证号": "legal_rep_id_number",
        "联系电话": "contact_phone",
    },
    "vehicle": {
        "车牌号码": "plate", "号牌号码": "plate", "车牌颜色": "plate_color", "车辆识别代号": "vin",
        "车架号": "vin", "车辆类型": "vehicle_class", "车辆类别": "vehicle_class",
        "统一社会信用代码": "operator_uscc", "业户统一社会信用代码": "operator_uscc",
        "道路运输证号": "transport_cert_no", "核定座位": "seats", "核定座位数": "seats",
        "核定吨位": "tonnage_kg", "核定载质量": "tonnage_kg", "车辆状态": "status",
    },
    "practitioner": {
        **{label: "id_number" for label in _ID}, "姓名": "name", "从业资格证号": "qualification_cert_no",
        "从业资格类别": "qualification_types", "统一社会信用代码": "employer_uscc",
        "所属业户统一社会信用代码": "employer_uscc",
    },
    "licence": {
        "证照编号": "licence_no", "证照类型": "licence_type", "持证主体": "holder_key",
        "发证机关行政区划代码": "issuer_region_code", "行政区划代码": "issuer_region_code",
        "有效期起": "valid_from", "有效期止": "valid_until", "证照状态": "status",
    },
    "case": {
        "案件编号": "case_no", "案件阶段": "stage", "违法行为代码": "violation_code", "违法时间": "occurred_at",
        "发生时间": "occurred_at", "涉案车牌": "involved_plate", "车牌号码": "involved_plate",
        "统一社会信用代码": "involved_operator_uscc", "涉案业户统一社会信用代码": "involved_operator_uscc",
        **{label: "involved_id_number" for label in _ID}, "当事人身份证号": "involved_id_number",
        "罚款金额(分)": "penalty_cents",
    },
}

_ENTITY_ALIASES = {
    "operator": ("operator", "operators", "经营业户", "业户"),
    "vehicle": ("vehicle", "vehicles", "营运车辆", "车辆"),
    "practitioner": ("practitioner", "practitioners", "从业人员"),
    "licence": ("licence", "licences", "license", "电子证照", "证照"),
    "case": ("case", "cases", "执法案件", "案件"),
}


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
    fields = set(contract.entity_fields(entity))
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
    fields = contract.entity_fields(entity)
    labels = {normalize_label(f): f for f in fields}
    labels.update({normalize_label(k): v for k, v in {**_COMMON, **DEFAULT_LABELS[entity]}.items()
                   if v in fields})
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
