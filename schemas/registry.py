"""Schema ids for Confluent framing.

``EmbeddedRegistry`` needs no server: a schema's id is derived from the SHA-256 of its
Parsing Canonical Form, so every process computes the same id for the same schema, and
it knows the current envelope plus every frozen historic version of the envelope, the
quality finding, the service request and the case reply (``avro/history``).
``ConfluentRegistry`` talks to a real Schema Registry when ``ROADX_SCHEMA_REGISTRY_URL``
is set; it registers under the topic-name strategy subject ``<topic>-value``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from . import contract
from .errors import RegistryError, UnknownSchemaError


class Registry(Protocol):
    def id_for(self, subject: str, schema: dict[str, Any]) -> int: ...

    def schema_for(self, schema_id: int) -> dict[str, Any]: ...


def fingerprint_id(canonical: str) -> int:
    """A positive 31-bit id derived from a schema's canonical form."""
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


class EmbeddedRegistry:
    """Deterministic ids for the schemas shipped with roadx; no server, no state."""

    def __init__(self) -> None:
        self._by_id: dict[int, dict[str, Any]] = {}
        current = contract.envelope_schema()
        self._by_id[fingerprint_id(contract.envelope_canonical())] = current
        historic = (*contract.historic_envelopes(), *contract.historic_findings(),
                    *contract.historic_service_requests(), *contract.historic_case_replies())
        for _name, schema in historic:
            self._by_id.setdefault(fingerprint_id(to_parsing_canonical_form(schema)), schema)

    def id_for(self, subject: str, schema: dict[str, Any]) -> int:
        schema_id = fingerprint_id(to_parsing_canonical_form(schema))
        self._by_id.setdefault(schema_id, schema)
        return schema_id

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaError(schema_id, "not one of roadx's shipped schemas") from None


class ConfluentRegistry:
    """A real Confluent-compatible Schema Registry, ids cached per process."""

    def __init__(self, url: str, client_conf: dict[str, Any] | None = None) -> None:
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient
        except ImportError as exc:
            raise RegistryError(
                "a Schema Registry URL is set but confluent-kafka's registry client cannot be "
                f"imported: {exc}"
            ) from exc
        self._client = SchemaRegistryClient({"url": url, **(client_conf or {})})
        self._by_id: dict[int, dict[str, Any]] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema: dict[str, Any]) -> int:
        from confluent_kafka.schema_registry import Schema

        canonical = to_parsing_canonical_form(schema)
        with self._lock:
            cached = self._ids.get((subject, canonical))
            if cached is not None:
                return cached
            try:
                schema_id = self._client.register_schema(subject, Schema(canonical, "AVRO"))
            except Exception as exc:  # the client raises several unrelated types
                raise RegistryError(f"registering {subject!r} failed: {exc}") from exc
            self._ids[(subject, canonical)] = schema_id
            self._by_id[schema_id] = schema
            return schema_id

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        with self._lock:
            cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            found = self._client.get_schema(schema_id)
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 404:
                raise UnknownSchemaError(schema_id, "the Schema Registry has no such id") from exc
            raise RegistryError(f"looking up schema id {schema_id} failed: {exc}") from exc
        parsed = parse_schema(json.loads(found.schema_str))
        with self._lock:
            self._by_id[schema_id] = parsed
        return parsed


def make_registry(url: str | None, client_conf: dict[str, Any] | None = None) -> Registry:
    return ConfluentRegistry(url, client_conf) if url else EmbeddedRegistry()
