"""What a register declaration holds, as frozen dataclasses (``loader`` reads them from TOML).

A ``RegisterDecl`` says everything the exchange knows about one register: its entity type,
Chinese and English names, Avro record name, key fields, store view, fields in record order,
the rules that look at the record as a whole, and the code tables it defines. A ``FieldDecl``
says one field's canonical name, Avro type, whether it is required (else nullable, or given
a default), its preferred Chinese label and the other labels provincial exports head its
column with, the standard, code table and rules that check it, whether it is personal (how
the store masks it), whether it has one canonical form, whether its absence lowers
completeness, which registers' entities it names, and for a nested record the columns a file
gives it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import SchemaLoadError

__all__ = ["Column", "CodeTable", "ENTITY_KEY", "FieldDecl", "KINDS", "PERSONAL_KINDS", "Reference", "RegisterDecl",
           "kind_of"]

# The kinds of value a field holds, from its Avro type (as ``schemas.contract.KINDS``).
KINDS = ("string", "int", "long", "date", "timestamp", "string_array", "record")
# How the store masks a personal field (``schemas.pii``): as an ID number or as a phone number.
PERSONAL_KINDS = ("id_number", "phone")
ENTITY_KEY = "entity_key"  # a reference holding a whole entity key (``operator:<uscc>``) rather than a field value


def kind_of(name: str, avro_type: Any) -> str:
    """The kind (one of ``KINDS``) of a field's non-null Avro type."""
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return "date"
        if logical == "timestamp-millis":
            return "timestamp"
        if avro_type.get("type") == "array" and avro_type.get("items") == "string":
            return "string_array"
        if avro_type.get("type") == "record":
            return "record"
        avro_type = avro_type.get("type")
    if avro_type in ("string", "int", "long"):
        return avro_type
    raise SchemaLoadError(f"field {name!r} has a type the contract does not know: {avro_type!r}")


@dataclass(frozen=True)
class Column:
    """A file column one part of a nested field is given in, and the labels exports use for it."""

    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """The registers whose entity a field names, and what of theirs its value is: a field of
    each (``by``), or a whole entity key (``ENTITY_KEY``)."""

    registers: tuple[str, ...]
    by: str


@dataclass(frozen=True)
class CodeTable:
    """A code table a register defines (``<entity>.<field>``): codes in order, each with the
    Chinese labels files use for it; ``confirmed`` False when no standard at hand confirms it."""

    name: str
    codes: Mapping[str, tuple[str, ...]]
    confirmed: bool

    def labels(self) -> dict[str, str]:
        """Chinese label → code."""
        return {label: code for code, labels in self.codes.items() for label in labels}


@dataclass(frozen=True)
class FieldDecl:
    name: str
    avro_type: Any  # the non-null Avro type, as in an .avsc file
    required: bool
    nullable: bool  # not required and no default: ["null", type] with default null
    default: Any  # the default of a field neither required nor nullable
    label_zh: str
    labels: tuple[str, ...] = ()
    standard: str | None = None
    code_table: str | None = None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    personal: str | None = None  # one of PERSONAL_KINDS
    canonical: bool = False
    expected: bool = False
    refers_to: Reference | None = None
    columns: tuple[Column, ...] = ()
    in_view: bool = True
    doc: str | None = None

    @property
    def kind(self) -> str:
        return kind_of(self.name, self.avro_type)

    @property
    def rules(self) -> tuple[str, ...]:
        """Every rule that checks this field, errors first."""
        return (*self.errors, *self.warnings)

    def avro_field(self) -> dict[str, Any]:
        """The field as an Avro record field."""
        field: dict[str, Any] = {"name": self.name}
        if self.required:
            field["type"] = self.avro_type
        elif self.nullable:
            field.update(type=["null", self.avro_type], default=None)
        else:
            field.update(type=self.avro_type, default=self.default)
        field["doc"] = self.doc or self.label_zh
        return field


@dataclass(frozen=True)
class RegisterDecl:
    entity_type: str
    name_zh: str
    name_en: str
    record: str  # the Avro record's full name, ``roadx.<Name>``
    key_fields: tuple[str, ...]
    view: str  # the store's view of each entity's current version
    fields: tuple[FieldDecl, ...]
    code_tables: Mapping[str, CodeTable]  # the tables this register defines, by name
    errors: tuple[str, ...] = ()  # rules on the record as a whole
    warnings: tuple[str, ...] = ()

    def field(self, name: str) -> FieldDecl:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.entity_type} has no field {name!r}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    def avro_record(self) -> dict[str, Any]:
        """The register's Avro record schema, fields in declared order."""
        namespace, _, name = self.record.rpartition(".")
        return {"type": "record", "name": name, "namespace": namespace, "doc": f"{self.name_zh}: {self.name_en}",
                "fields": [field.avro_field() for field in self.fields]}

    def view_columns(self) -> tuple[str, ...]:
        """The columns of the store's view: the fields it shows, each personal one followed by its token."""
        columns: list[str] = []
        for field in self.fields:
            if field.in_view:
                columns += [field.name, f"{field.name}_token"] if field.personal else [field.name]
        return tuple(columns)

    def column_labels(self) -> dict[str, str]:
        """Every label (preferred, other, a nested field's columns') → the field or column it names."""
        labels = {field.label_zh: field.name for field in self.fields}
        labels.update({label: field.name for field in self.fields for label in field.labels})
        labels.update({label: column.name for field in self.fields for column in field.columns
                       for label in column.labels})
        return labels
