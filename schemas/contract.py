"""The Avro contract: the change-event envelope and the five entity records.

Schemas are read from ``schemas/avro/*.avsc`` once per process. Entity keys follow
``<entity_type>:<natural key>`` so that all events of one entity share a partition.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Mapping

from fastavro import parse_schema
from fastavro.schema import load_schema, to_parsing_canonical_form

from .errors import SchemaLoadError

AVRO_DIR = Path(__file__).with_name("avro")
HISTORY_DIR = AVRO_DIR / "history"
ENVELOPE_FILE = "roadx.ChangeEvent.avsc"
FINDING_FILE = "roadx.QualityFinding.avsc"
SIGNATURE_FIELD = "signature"

OPS = ("c", "u", "d", "r")
ENTITY_RECORDS = {
    "operator": "roadx.Operator",
    "vehicle": "roadx.Vehicle",
    "practitioner": "roadx.Practitioner",
    "licence": "roadx.Licence",
    "case": "roadx.Case",
}
ENTITY_TYPES = tuple(ENTITY_RECORDS)


@functools.cache
def envelope_schema() -> dict[str, Any]:
    """The current envelope, parsed (named entity types resolved from their files)."""
    try:
        schema = load_schema(str(AVRO_DIR / ENVELOPE_FILE))
    except (OSError, ValueError, KeyError) as exc:
        raise SchemaLoadError(f"cannot load {ENVELOPE_FILE}: {exc}") from exc
    if schema["fields"][-1]["name"] != SIGNATURE_FIELD:
        raise SchemaLoadError("the envelope's last field must be 'signature'")
    return schema


@functools.cache
def envelope_canonical() -> str:
    """Parsing Canonical Form of the current envelope (what registries see)."""
    return to_parsing_canonical_form(envelope_schema())


@functools.cache
def finding_schema() -> dict[str, Any]:
    """The data-quality finding published to ``national.quality``, parsed."""
    try:
        return load_schema(str(AVRO_DIR / FINDING_FILE))
    except (OSError, ValueError, KeyError) as exc:
        raise SchemaLoadError(f"cannot load {FINDING_FILE}: {exc}") from exc


def historic_envelopes() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the envelope, oldest first, parsed."""
    return _historic("ChangeEvent")


def historic_findings() -> list[tuple[str, dict[str, Any]]]:
    """Every frozen earlier version of the quality finding, oldest first, parsed."""
    return _historic("QualityFinding")


def _historic(name: str) -> list[tuple[str, dict[str, Any]]]:
    versions = []
    for path in sorted(HISTORY_DIR.glob(f"{name}.v*.avsc")):
        try:
            versions.append((path.name, parse_schema(json.loads(path.read_text("utf-8")))))
        except (OSError, ValueError) as exc:
            raise SchemaLoadError(f"cannot load {path.name}: {exc}") from exc
    return versions


def entity_fields(entity_type: str) -> list[str]:
    """Field names of one entity record, in schema order."""
    return list(_entity_field_map()[entity_type])


@functools.cache
def _entity_field_map() -> dict[str, tuple[str, ...]]:
    schema = envelope_schema()
    by_name = {  # each record is defined in full at its first use, referenced by name after
        t["name"]: t
        for f in schema["fields"] if f["name"] in ("before", "after")
        for t in f["type"] if isinstance(t, dict)
    }
    return {
        etype: tuple(f["name"] for f in by_name[record]["fields"])
        for etype, record in ENTITY_RECORDS.items()
    }


def entity_key(entity_type: str, record: Mapping[str, Any]) -> str:
    """The partitioning key of an entity: ``<entity_type>:<natural key>``."""
    if entity_type == "operator":
        natural = record["uscc"]
    elif entity_type == "vehicle":
        natural = f"{record['plate']}:{record['plate_color']}"
    elif entity_type == "practitioner":
        natural = record["id_number"]
    elif entity_type == "licence":
        natural = f"{record['licence_type']}:{record['licence_no']}"
    elif entity_type == "case":
        natural = record["case_no"]
    else:
        raise ValueError(f"unknown entity type {entity_type!r}")
    return f"{entity_type}:{natural}"
