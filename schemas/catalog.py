"""The data-resource catalog (数据资源目录): the registers the exchange holds, as data.

Every register is read from its declaration (``schemas.registers``, in their order): its
Chinese and English name (``REGISTER_NAMES``), each field's preferred Chinese label
(``LABELS_ZH``, the JT/T 697.7-style data-element name a provincial export heads its column
with), kind, whether it is required, the standard the hub checks its values against
(``FIELD_STANDARDS``) and whether it is personal (masked in the store). A register the line
carries (an entity type of ``contract.ENTITY_TYPES``) must agree with its Avro record field by
field; a register declared but not yet carried (no record in the contract, so no adapter,
stage or store takes it) is listed with ``carried`` False and no publishers.

``catalog_entries(parties)`` is the JSON-ready catalog; ``registers(parties)`` the same as
dataclasses. A register's publishers are the parties given (those taking part, by code) that
may publish it (``schemas.parties``: a province its road and water registers, the Corps its
road registers, a navigation administration the water registers and cases).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from . import contract
from . import registers as declared
from .errors import SchemaLoadError
from .parties import Party

__all__ = [
    "CatalogField", "FIELD_STANDARDS", "LABELS_ZH", "REGISTER_NAMES", "Register", "carried", "catalog_entries",
    "catalog_fields", "registers",
]

# entity type -> (Chinese name, English name) of its register
REGISTER_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType({
    register.entity_type: (register.name_zh, register.name_en) for register in declared.declarations()
})

# entity type -> field -> its preferred Chinese label, fields in schema order. Other labels
# provincial exports use for a column are declared beside it (``FieldDecl.labels``).
LABELS_ZH: Mapping[str, Mapping[str, str]] = MappingProxyType({
    register.entity_type: MappingProxyType({field.name: field.label_zh for field in register.fields})
    for register in declared.declarations()
})


def _field_standards() -> Mapping[str, str]:
    """Field name -> the standard the hub checks its values against; a field of the same name
    means the same thing in every register, so two registers may not give it two standards."""
    standards: dict[str, str] = {}
    for register in declared.declarations():
        for field in register.fields:
            if field.standard is None:
                continue
            if standards.setdefault(field.name, field.standard) != field.standard:
                raise SchemaLoadError(f"field {field.name!r} is checked against {standards[field.name]} in one "
                                      f"register and {field.standard} in {register.entity_type}")
    return MappingProxyType(standards)


# field name -> the standard the hub checks its values against (schemas.identifiers,
# schemas.water_identifiers). Fields not listed follow none.
FIELD_STANDARDS: Mapping[str, str] = _field_standards()


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
    order, the parties that publish it and whether the line carries it yet."""

    entity_type: str
    name_zh: str
    name_en: str
    key_fields: tuple[str, ...]
    fields: tuple[CatalogField, ...]
    publishers: tuple[str, ...]
    carried: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The register as JSON-ready values (lists, strings, booleans, None)."""
        return {"entity_type": self.entity_type, "name_zh": self.name_zh, "name_en": self.name_en,
                "key_fields": list(self.key_fields), "fields": [field.to_dict() for field in self.fields],
                "publishers": list(self.publishers), "carried": self.carried}


def registers(parties: Mapping[str, Party]) -> tuple[Register, ...]:
    """Every declared register in declaration order; each the line carries is published by the
    parties of ``parties`` (code → party, in their order) allowed to publish it, the others by none yet."""
    return tuple(
        Register(register.entity_type, register.name_zh, register.name_en, register.key_fields,
                 catalog_fields(register.entity_type),
                 tuple(code for code, party in parties.items() if party.may_publish(register.entity_type))
                 if carried(register.entity_type) else (), carried(register.entity_type))
        for register in declared.declarations()
    )


def carried(entity_type: str) -> bool:
    """Whether the line carries a register: the contract has its record."""
    return entity_type in contract.ENTITY_RECORDS


def catalog_entries(parties: Mapping[str, Party]) -> list[dict[str, Any]]:
    """The catalog as JSON-ready dicts: ``registers(parties)``, each ``to_dict()``."""
    return [register.to_dict() for register in registers(parties)]


@functools.cache
def catalog_fields(entity_type: str) -> tuple[CatalogField, ...]:
    """The catalog's fields of one register, in schema order; for a register the line
    carries, checked against its Avro record (``SchemaLoadError`` when they disagree);
    ``KeyError`` for a register no one declared."""
    register = declared.declaration(entity_type)
    fields = tuple(CatalogField(field.name, field.label_zh, field.kind, field.required, field.standard,
                                field.personal is not None) for field in register.fields)
    if carried(entity_type):
        in_record = [(spec.name, spec.kind, spec.required) for spec in contract.field_specs(entity_type)]
        if [(field.name, field.kind, field.required) for field in fields] != in_record:
            raise SchemaLoadError(f"the declaration of {entity_type} does not match its Avro record "
                                  f"{contract.ENTITY_RECORDS[entity_type]} (names, order, kinds, required)")
    return fields
