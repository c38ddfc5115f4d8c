"""Confluent-framed Avro: magic byte 0, 4-byte big-endian schema id, Avro body.

Events are plain dicts shaped like the envelope; ``before``/``after`` are plain entity
dicts — the codec picks the union branch from ``entity_type``. Decoding resolves the
writer's schema (looked up by id) to the current reader schema.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from . import contract, signing
from .errors import EncodeError, MalformedBodyError, NotFramedError
from .registry import Registry

MAGIC = 0
_HEADER = struct.Struct(">bI")


class EventCodec:
    def __init__(self, registry: Registry, subject: str = "roadx-changes-value") -> None:
        self._registry = registry
        self._schema = contract.envelope_schema()
        self.schema_id = registry.id_for(subject, self._schema)
        self._header = _HEADER.pack(MAGIC, self.schema_id)

    @property
    def registry(self) -> Registry:
        return self._registry

    def encode(self, event: dict[str, Any], key: bytes | None = None) -> bytes:
        """Frame and encode one event; sign it when a province key is given."""
        record = dict(event)
        record_type = contract.ENTITY_RECORDS.get(event.get("entity_type", ""))
        if record_type is None:
            raise EncodeError(f"event {event.get('event_id')}: unknown entity_type {event.get('entity_type')!r}")
        for side in ("before", "after"):
            if record.get(side) is not None:
                record[side] = (record_type, record[side])
        record["signature"] = signing.PLACEHOLDER
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            schemaless_writer(buf, self._schema, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"event {event.get('event_id')}: does not fit the envelope: {exc}") from exc
        framed = buf.getvalue()
        return signing.seal(framed, key) if key is not None else framed

    def decode(self, value: bytes | None) -> tuple[int, dict[str, Any]]:
        """Return (writer schema id, event). Raises a ``DecodeError`` subclass."""
        schema_id = read_schema_id(value)
        writer = self._registry.schema_for(schema_id)
        try:
            event = schemaless_reader(io.BytesIO(value[5:]), writer, self._schema)
        except Exception as exc:  # fastavro raises many types on garbage
            raise MalformedBodyError(
                f"Avro body does not decode with schema id {schema_id}: {type(exc).__name__}: {exc}"
            ) from exc
        return schema_id, event


class FindingCodec:
    """Confluent-framed Avro for ``roadx.QualityFinding`` records (``national.quality``)."""

    def __init__(self, registry: Registry, subject: str = "roadx-quality-value") -> None:
        self._registry = registry
        self._schema = contract.finding_schema()
        self.schema_id = registry.id_for(subject, self._schema)
        self._header = _HEADER.pack(MAGIC, self.schema_id)

    def encode(self, finding: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            schemaless_writer(buf, self._schema, finding)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"finding {finding.get('finding_id')}: does not fit the schema: {exc}") from exc
        return buf.getvalue()

    def decode(self, value: bytes | None) -> dict[str, Any]:
        writer = self._registry.schema_for(read_schema_id(value))
        try:
            return schemaless_reader(io.BytesIO(value[5:]), writer, self._schema)
        except Exception as exc:  # fastavro raises many types on garbage
            raise MalformedBodyError(f"Avro body is not a quality finding: {type(exc).__name__}: {exc}") from exc


def read_schema_id(value: bytes | None) -> int:
    if not value:
        raise NotFramedError("empty message: expected Confluent-framed Avro")
    if len(value) < 5 or value[0] != MAGIC:
        raise NotFramedError(
            f"not Confluent-framed Avro: first byte is 0x{value[0]:02x}, expected magic byte 0x00"
            if value
            else "empty message"
        )
    return _HEADER.unpack_from(value)[1]
