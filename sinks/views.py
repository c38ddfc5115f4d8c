"""The store's ``current_*`` views, generated from the register declarations (``schemas.registers``).

Each declared register has one view (its declaration's ``view``): one row per live entity,
the latest version by ``(seq, ts)``, deleted entities hidden, with the columns the
declaration lists (``RegisterDecl.view_columns()``: each field shown in the view, a personal
one followed by its ``*_token``) read from the latest ``after`` JSON of ``change_log``, typed
from the field's kind, then ``entity_key``, ``province``, ``last_op``, ``seq``, ``ts``.

How a field's kind becomes a column (``column``):

    string     String; Nullable(String) when the field may be absent (no default)
    int        Int64 when required (JSONExtractInt), else Nullable(Int32)
    long       Int64 when required, else Nullable(Int64)
    date       Nullable(Date) (toDateOrNull)
    timestamp  Nullable(DateTime64(3, 'UTC')) (parseDateTime64BestEffortOrNull)
    string_array  Array(String)

A nested record is not a view column (declare it ``in_view = false``); the licence's seal is
added by a migration of its own (``sinks.migrations.SEAL_COLUMNS``).
"""

from __future__ import annotations

from typing import Iterable

from schemas.registers import FieldDecl, RegisterDecl, declarations

from .errors import StoreError

__all__ = ["AWAY_FILING", "PRACTITIONER_FILINGS", "VIEWS", "column", "columns", "current_views", "view_ddl"]

_NULLABLE_TYPES = {"string": "String", "int": "Int32", "long": "Int64"}


def _s(name: str) -> str:
    return f"JSONExtractString(latest_after, '{name}') AS {name}"


def _n(name: str, ch_type: str) -> str:
    return f"JSONExtract(latest_after, '{name}', 'Nullable({ch_type})') AS {name}"


def column(field: FieldDecl, name: str | None = None) -> str:
    """The SELECT expression of one view column of ``field`` (``name``: its token column)."""
    name = name or field.name
    kind = "string" if name != field.name else field.kind  # a token is text
    present = field.required or (not field.nullable and field.default is not None)
    if kind == "string":
        return _s(name) if present else _n(name, "String")
    if kind in ("int", "long"):
        if not present:
            return _n(name, _NULLABLE_TYPES[kind])
        return (f"JSONExtractInt(latest_after, '{name}') AS {name}" if kind == "int"
                else f"JSONExtract(latest_after, '{name}', 'Int64') AS {name}")
    if kind == "date":
        return f"toDateOrNull(JSONExtractString(latest_after, '{name}')) AS {name}"
    if kind == "timestamp":
        return f"parseDateTime64BestEffortOrNull(JSONExtractString(latest_after, '{name}'), 3, 'UTC') AS {name}"
    if kind == "string_array":
        return f"JSONExtract(latest_after, '{name}', 'Array(String)') AS {name}"
    raise StoreError(f"field {name!r} is a nested record: declare it in_view = false, the view cannot show it whole")


def columns(register: RegisterDecl, leave_out: Iterable[str] = ()) -> tuple[str, ...]:
    """The typed columns of ``register``'s view, in ``view_columns()`` order, but for the fields
    named in ``leave_out`` (a migration written before they were declared)."""
    out: list[str] = []
    for field in register.fields:
        if field.in_view and field.name not in leave_out:
            out.append(column(field))
            if field.personal:
                out.append(column(field, f"{field.name}_token"))
    return tuple(out)


def _register(entity_type: str) -> RegisterDecl:
    return next(register for register in declarations() if register.entity_type == entity_type)


# view name -> (entity_type, typed columns extracted from the latest ``after``), every declared register
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    register.view: (register.entity_type, columns(register)) for register in declarations()
}

_VIEW_DDL = """
CREATE OR REPLACE VIEW {db}.{view} AS
SELECT
    entity_key,
    {columns},
    latest_province AS province,
    last_op,
    latest_seq AS seq,
    latest_ts AS ts
FROM (
    SELECT
        entity_key,
        argMax(after, (seq, ts)) AS latest_after,
        argMax(province, (seq, ts)) AS latest_province,
        argMax(op, (seq, ts)) AS last_op,
        max(seq) AS latest_seq,
        argMax(ts, (seq, ts)) AS latest_ts
    FROM {db}.change_log FINAL
    WHERE entity_type = '{entity_type}'{filter}
    GROUP BY entity_key
)
WHERE last_op != 'd'
"""

# A practitioner event published by another province than the one their region_code names is
# that province's filing of them working there (异地从业人员备案, ``streams.routing``), not the
# home province's record: ``current_practitioners`` leaves it out from migration 9 on, and
# ``practitioner_filings`` lists the filings in force.
_REGION_OF_EVENT = "JSONExtractString(if(op = 'd', before, after), 'region_code')"
AWAY_FILING = f"(length({_REGION_OF_EVENT}) = 6 AND province != substring({_REGION_OF_EVENT}, 1, 2))"

PRACTITIONER_FILINGS = f"""
CREATE OR REPLACE VIEW {{db}}.practitioner_filings AS
SELECT
    entity_key,
    province,
    JSONExtractString(latest_after, 'employer_uscc') AS employer_uscc,
    JSONExtractString(latest_after, 'region_code') AS home_region,
    substring(home_region, 1, 2) AS home_province,
    latest_seq AS seq,
    latest_ts AS ts
FROM (
    SELECT
        entity_key,
        province,
        argMax(after, (seq, ts)) AS latest_after,
        argMax(op, (seq, ts)) AS last_op,
        max(seq) AS latest_seq,
        argMax(ts, (seq, ts)) AS latest_ts
    FROM {{db}}.change_log FINAL
    WHERE entity_type = 'practitioner' AND {AWAY_FILING}
    GROUP BY entity_key, province
)
WHERE last_op != 'd'
"""


def view_ddl(view: str, filings_apart: bool = False, leave_out: Iterable[str] = ()) -> str:
    """``CREATE OR REPLACE VIEW`` of one ``current_*`` view (``{db}`` placeholder); with
    ``filings_apart`` (migration 9 on) ``current_practitioners`` leaves other provinces'
    filings (``AWAY_FILING``) out; without the fields named in ``leave_out``."""
    entity_type, typed = VIEWS[view]
    if leave_out:
        typed = columns(_register(entity_type), leave_out)
    return (_VIEW_DDL.replace("{view}", view).replace("{entity_type}", entity_type)
            .replace("{columns}", ",\n    ".join(typed))
            .replace("{filter}", f" AND NOT {AWAY_FILING}" if filings_apart and entity_type == "practitioner" else "")
            .strip())


def current_views(entity_types: Iterable[str] | None = None, filings_apart: bool = False,
                  leave_out: Iterable[str] = ()) -> list[str]:
    """The ``current_*`` views of ``entity_types`` (every declared register by default), in
    catalog order (``{db}`` placeholder), without the fields named in ``leave_out``."""
    wanted = None if entity_types is None else set(entity_types)
    unknown = (wanted or set()) - {entity_type for entity_type, _c in VIEWS.values()}
    if unknown:
        raise StoreError(f"no declared register {sorted(unknown)[0]!r}: it has no view")
    return [view_ddl(view, filings_apart, tuple(leave_out)) for view, (entity_type, _c) in VIEWS.items()
            if wanted is None or entity_type in wanted]
