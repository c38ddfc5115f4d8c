"""Rows of a provincial table turned into entity records and change events (pure).

A row's columns are matched to the entity's fields by name (after an optional
column → field mapping); other columns are ignored. Values are converted to the field's
Avro type: dates become days since 1970-01-01, timestamps milliseconds, so a record is
plain JSON. Identifiers are written in their canonical form (``schemas.identifiers``: no
spaces, dashes or full-width characters, capitals); each one rewritten is noted as
(field, value as given, as stored) for the adapter's report. A row that breaks a rule
raises ``RowRejected`` naming its key, the field and the rule; the caller reports it and
goes on with the rest.

``event_id`` is a UUID derived from (province, table, key, cursor value): reading the
same row again — after a crash, before it was spooled — gives the same event.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any, Mapping

from schemas import contract, identifiers
from schemas.contract import FieldSpec

from ..errors import ProducerError, RowRejected

EVENT_NAMESPACE = uuid.UUID("5d8f3c1e-7a2b-5c4d-9e0f-726f61647862")
_EPOCH_DATE = dt.date(1970, 1, 1)
_TRUE_TEXTS = {"1", "t", "true", "y", "yes", "d", "deleted", "是"}
_FALSE_TEXTS = {"", "0", "f", "false", "n", "no", "否"}


def entity_specs(entity_type: str) -> tuple[FieldSpec, ...]:
    """The fields of one entity record with their kinds; ``ProducerError`` for an unknown entity."""
    if entity_type not in contract.ENTITY_RECORDS:
        raise ProducerError(f"unknown entity {entity_type!r}; one of {', '.join(contract.ENTITY_TYPES)}")
    return contract.field_specs(entity_type)


def required_fields(entity_type: str) -> list[str]:
    entity_specs(entity_type)
    return list(contract.required_fields(entity_type))


def row_to_record(entity_type: str, row: Mapping[str, Any], key: str, mapping: Mapping[str, str] | None = None,
                  notes: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """The entity record of one row; raises ``RowRejected``. Identifiers rewritten into
    canonical form are appended to ``notes`` as (field, value as given, as stored)."""
    values = {(mapping or {}).get(column, column): value for column, value in row.items()}
    record: dict[str, Any] = {}
    for spec in entity_specs(entity_type):
        value = _convert(spec, values.get(spec.name), key)
        if value is None:
            if spec.required:
                raise RowRejected(key, spec.name, "required", "a value is required")
            value = [] if spec.kind == "string_array" else None
        elif spec.name in identifiers.CANONICAL_FIELDS:
            raw = str(values[spec.name])
            value, changed = identifiers.canonicalise(raw)
            if changed and notes is not None:
                notes.append((spec.name, raw, value))
        record[spec.name] = value
    return record


def _convert(spec: FieldSpec, value: Any, key: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    try:
        if spec.kind == "string":
            if isinstance(value, (bytes, bytearray, memoryview)):
                raise ValueError("binary value where text is expected")
            return str(value)
        if spec.kind in ("int", "long"):
            return _integer(value)
        if spec.kind == "date":
            return _days(value)
        if spec.kind == "timestamp":
            return _millis(value)
        if spec.kind == "string_array":
            return _string_list(value)
    except (ValueError, TypeError, decimal.InvalidOperation) as exc:
        raise RowRejected(key, spec.name, f"not_{spec.kind}", f"{value!r}: {exc}") from exc
    raise RowRejected(key, spec.name, "unsupported_type", f"field kind {spec.kind} is not supported")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    number = decimal.Decimal(str(value))
    if number != number.to_integral_value():
        raise ValueError("not a whole number")
    return int(number)


def _days(value: Any) -> int:
    if isinstance(value, dt.datetime):
        value = value.date()
    elif isinstance(value, str):
        text = value[:10] if len(value) > 10 and value[10] in " T" else value
        value = dt.datetime.strptime(text, "%Y%m%d").date() if len(text) == 8 else dt.date.fromisoformat(text)
    elif not isinstance(value, dt.date):
        raise ValueError("expected a date or YYYY-MM-DD")
    return (value - _EPOCH_DATE).days


def _millis(value: Any) -> int:
    if isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if not isinstance(value, dt.datetime):
        raise ValueError("expected a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1000)


def _string_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value)
    if text.startswith("["):
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("expected a JSON array")
        return [str(v) for v in items]
    return [part.strip() for part in text.replace("，", ",").replace(";", ",").split(",") if part.strip()]


def is_flag_set(value: Any, key: str, column: str) -> bool:
    """Truth of a soft-delete column (1/0, true/false, yes/no, a deletion timestamp)."""
    if value is None:
        return False
    if isinstance(value, (bool, int, float, decimal.Decimal)):
        return bool(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return True
    text = str(value).strip().lower()
    if text in _TRUE_TEXTS:
        return True
    if text in _FALSE_TEXTS:
        return False
    try:
        dt.datetime.fromisoformat(text)
        return True
    except ValueError:
        raise RowRejected(key, column, "not_a_flag", f"{value!r} is neither true nor false") from None


def event_id(province: str, table: str, key: str, cursor: str, part: str = "") -> str:
    """Deterministic event id: the same row version always gives the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, "\x1f".join((province, table, key, cursor, part))))


def source_ts_ms(cursor: Any, now_ms: int) -> int:
    """When the source committed the row: the cursor when it is a timestamp, else ``now_ms``."""
    if isinstance(cursor, dt.datetime):
        return _millis(cursor)
    if isinstance(cursor, str) and len(cursor) >= 10:
        try:
            return _millis(cursor)
        except ValueError:
            return now_ms
    return now_ms


def change_event(*, event_id: str, op: str, entity_type: str, before: dict | None, after: dict | None,
                 province: str, system: str, table: str, seq: int, ts_ms: int,
                 submission: str | None = None) -> dict[str, Any]:
    """The envelope of one change (not yet encoded or signed), sent in ``submission``."""
    if after is None and before is None:
        raise ProducerError(f"event {event_id}: a change needs a before or an after record")
    return contract.change_event(event_id=event_id, op=op, entity_type=entity_type, before=before, after=after,
                                 province=province, system=system, table=table, seq=seq, ts_ms=ts_ms,
                                 submission=submission)
