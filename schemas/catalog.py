"""The data-resource catalog (数据资源目录): the registers the exchange holds, as data.

A register is one entity type of the contract (``contract.ENTITY_TYPES``, in that order).
The catalog adds to the contract what only it says: each register's Chinese and English
name (``REGISTER_NAMES``), each field's preferred Chinese label (``LABELS_ZH``, the JT/T
697.7-style data-element name a provincial export heads its column with) and the standard
the hub checks a field's values against (``FIELD_STANDARDS``). Everything else is read from
where it is said already: fields, their kinds and whether they are required from
``contract.field_specs``, key fields from ``contract.KEY_FIELDS``, personal fields from
``pii.ID_NUMBER_FIELDS`` and ``pii.PHONE_FIELDS``.

``catalog_entries(parties)`` is the JSON-ready catalog; ``registers(parties)`` the same as
dataclasses. Every party given publishes every register.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from . import contract, pii
from .errors import SchemaLoadError

__all__ = [
    "CatalogField", "FIELD_STANDARDS", "LABELS_ZH", "REGISTER_NAMES", "Register", "catalog_entries", "catalog_fields",
    "registers",
]

# entity type -> (Chinese name, English name) of its register
REGISTER_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "operator": ("经营业户", "Road-transport operators"),
    "vehicle": ("营运车辆", "Operating vehicles"),
    "practitioner": ("从业人员", "Road-transport practitioners"),
    "licence": ("电子证照", "Electronic licences"),
    "case": ("执法案件", "Law-enforcement cases"),
})

# entity type -> field -> its preferred Chinese label, fields in schema order. Other labels
# provincial exports use for a column are the file adapter's synonyms.
LABELS_ZH: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "operator": {
        "uscc": "统一社会信用代码", "name": "业户名称", "region_code": "行政区划代码", "permit_no": "经营许可证号",
        "business_scope": "经营范围", "status": "经营状态", "legal_rep_id_number": "法定代表人身份证号",
        "contact_phone": "联系电话",
    },
    "vehicle": {
        "plate": "车牌号码", "plate_color": "车牌颜色", "vin": "车辆识别代号", "vehicle_class": "车辆类型",
        "operator_uscc": "业户统一社会信用代码", "transport_cert_no": "道路运输证号", "seats": "核定座位",
        "tonnage_kg": "核定吨位", "status": "车辆状态",
    },
    "practitioner": {
        "id_number": "身份证号", "name": "姓名", "qualification_cert_no": "从业资格证号",
        "qualification_types": "从业资格类别", "region_code": "行政区划代码",
        "employer_uscc": "所属业户统一社会信用代码", "status": "状态",
    },
    "licence": {
        "licence_no": "证照编号", "licence_type": "证照类型", "holder_key": "持证主体",
        "issuer_region_code": "发证机关行政区划代码", "valid_from": "有效期起", "valid_until": "有效期止",
        "status": "证照状态", "seal": "电子印章",
    },
    "case": {
        "case_no": "案件编号", "region_code": "行政区划代码", "stage": "案件阶段", "violation_code": "违法行为代码",
        "occurred_at": "违法时间", "involved_plate": "涉案车牌", "involved_operator_uscc": "涉案业户统一社会信用代码",
        "involved_id_number": "当事人身份证号", "penalty_cents": "罚款金额(分)",
    },
})

_USCC, _ID_NUMBER, _PLATE, _REGION = "GB 32100-2015", "GB 11643-1999", "GA 36-2018", "GB/T 2260"
# field name -> the standard the hub checks its values against (schemas.identifiers); a field
# of the same name means the same thing in every register. Fields not listed follow none.
FIELD_STANDARDS: Mapping[str, str] = MappingProxyType({
    "uscc": _USCC, "operator_uscc": _USCC, "employer_uscc": _USCC, "involved_operator_uscc": _USCC,
    "id_number": _ID_NUMBER, "legal_rep_id_number": _ID_NUMBER, "involved_id_number": _ID_NUMBER,
    "plate": _PLATE, "involved_plate": _PLATE,
    "plate_color": "JT/T 697.7",  # its plate-colour code table (identifiers.PLATE_COLORS)
    "region_code": _REGION, "issuer_region_code": _REGION,
})


@dataclass(frozen=True)
class CatalogField:
    """One field of a register: canonical name, preferred Chinese label, kind (one of
    ``contract.KINDS``), whether a value is required, the standard its values are checked
    against (None: none) and whether it holds personal data (masked in the store)."""

    name: str
    label_zh: str
    kind: str
    required: bool
    standard: str | None
    personal: bool

    def to_dict(self) -> dict[str, Any]:
        """The field as JSON-ready values."""
        return {"name": self.name, "label_zh": self.label_zh, "kind": self.kind, "required": self.required,
                "standard": self.standard, "personal": self.personal}


@dataclass(frozen=True)
class Register:
    """One register of the catalog: an entity type, its names, key fields, fields in schema
    order and the parties that publish it."""

    entity_type: str
    name_zh: str
    name_en: str
    key_fields: tuple[str, ...]
    fields: tuple[CatalogField, ...]
    publishers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The register as JSON-ready values (lists, strings, booleans, None)."""
        return {"entity_type": self.entity_type, "name_zh": self.name_zh, "name_en": self.name_en,
                "key_fields": list(self.key_fields), "fields": [field.to_dict() for field in self.fields],
                "publishers": list(self.publishers)}


def registers(parties: Iterable[str]) -> tuple[Register, ...]:
    """Every register in contract order, each published by every party of ``parties``
    (in the order given, each once)."""
    publishers = tuple(dict.fromkeys(parties))
    return tuple(
        Register(entity, *REGISTER_NAMES[entity], contract.KEY_FIELDS[entity], catalog_fields(entity), publishers)
        for entity in contract.ENTITY_TYPES
    )


def catalog_entries(parties: Iterable[str]) -> list[dict[str, Any]]:
    """The catalog as JSON-ready dicts: ``registers(parties)``, each ``to_dict()``."""
    return [register.to_dict() for register in registers(parties)]


@functools.cache
def catalog_fields(entity_type: str) -> tuple[CatalogField, ...]:
    """The catalog's fields of one register, in schema order."""
    labels = LABELS_ZH[entity_type]
    personal = frozenset((*pii.ID_NUMBER_FIELDS, *pii.PHONE_FIELDS))
    fields = []
    for spec in contract.field_specs(entity_type):
        if spec.name not in labels:
            raise SchemaLoadError(f"{entity_type} field {spec.name!r} has no Chinese label in the catalog")
        fields.append(CatalogField(spec.name, labels[spec.name], spec.kind, spec.required,
                                   FIELD_STANDARDS.get(spec.name), spec.name in personal))
    return tuple(fields)
