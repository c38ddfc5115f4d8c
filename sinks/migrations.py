"""Versioned, idempotent schema migrations, applied at every sink start.

A migration is ``(version, description, statements)``; statements use ``{db}`` for the
database and are each idempotent themselves (``IF NOT EXISTS``, ``OR REPLACE``), so a
migration interrupted half way is simply run again. ``schema_migrations`` records each
version once all its statements ran; a recorded version is never run again. Adding an
optional field to an entity is a new migration: ``ALTER TABLE ... ADD COLUMN IF NOT
EXISTS`` (existing rows read the column's default) and/or ``CREATE OR REPLACE VIEW``
exposing the field of ``after`` JSON, never a rewrite of stored data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from . import ddl, views
from .submission_store import submission_tables
from .errors import StoreError


# A licence's seal (schemas.seals) as current_licences shows it: NULL for a licence without one; the
# signature (base64) only where the stored content is the sealed content (sinks.rows keeps none of
# a licence carrying a personal number). Set here, not in ddl.VIEWS, so migration 1 stays as it ran.
SEAL_COLUMNS = (
    "JSONExtract(latest_after, 'seal', 'key_id', 'Nullable(String)') AS seal_key_id",
    "JSONExtract(latest_after, 'seal', 'signature', 'Nullable(String)') AS seal_signature",
    "parseDateTime64BestEffortOrNull(JSONExtractString(latest_after, 'seal', 'sealed_at'), 3, 'UTC') AS sealed_at",
)


# Fields declared after migration 11: the migrations up to it leave them out, as they ran, and
# migration 12 re-creates the views that show them.
LATER_FIELDS = ("involved_ship_id",)


def sealed_licences(leave_out: tuple[str, ...] = ()) -> str:
    """``current_licences`` with the seal's columns after the licence's own."""
    view = views.view_ddl("current_licences", filings_apart=True, leave_out=leave_out)
    anchor = ",\n    latest_province AS province"
    if view.count(anchor) != 1:
        raise StoreError("current_licences is not shaped as sinks.migrations expects: the seal cannot be added")
    return view.replace(anchor, "".join(f",\n    {column}" for column in SEAL_COLUMNS) + anchor)


def current_definition(view: str) -> str:
    """A ``current_*`` view as the declarations and the migrations so far define it: every declared
    column, ``current_practitioners`` without other provinces' filings, ``current_licences`` with
    the seal."""
    if view == "current_licences":
        return sealed_licences()
    return views.view_ddl(view, filings_apart=True)


# The registers whose views migration 1 created, and those migration 12 added: history, not the
# declarations (a register declared later gets its view from ``declared_views``).
ROAD_REGISTERS = ("operator", "vehicle", "practitioner", "licence", "case")
WATER_REGISTERS = ("ship", "shipping_enterprise", "port_enterprise", "waterway_project")
# The road views that show a field of LATER_FIELDS, re-created by migration 12.
WIDENED_VIEWS = tuple(view for view, (_e, columns) in views.VIEWS.items()
                      if any(column.endswith(f" AS {field}") for field in LATER_FIELDS for column in columns))


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "change_log, dlq, routed_cases and the current_* views",
              (*ddl.base_tables(), *ddl.current_views(entity_types=ROAD_REGISTERS, leave_out=LATER_FIELDS))),
    Migration(2, "routed_cases.ts: source commit time of a routed case", (ddl.ROUTED_CASES_TS,)),
    Migration(3, "quality_findings from national.quality", tuple(ddl.quality_findings())),
    Migration(4, "aggregates events_daily, quality_monthly, case_flows_daily with materialized views",
              tuple(ddl.aggregates())),
    Migration(5, "quality_findings.ref_key: the entity a provisional relational finding waits for",
              (ddl.QUALITY_FINDINGS_REF_KEY,)),
    Migration(6, "service_requests from national.audit", tuple(ddl.service_requests())),
    Migration(7, "case workflows: case_replies, case_alerts, routed_cases.correlation_id and routed_at, "
                 "the case_workflows view", tuple(ddl.case_workflows())),
    Migration(8, "routed_cases.region and case_workflows.region: the responsible county or city",
              tuple(ddl.case_regions())),
    Migration(9, "practitioner_filings, and current_practitioners without other provinces' filings",
              tuple(ddl.practitioner_filings(leave_out=LATER_FIELDS))),
    Migration(10, "the submission check: submission_manifests, submission_tallies, evidence_log, submission_findings",
              tuple(submission_tables())),
    Migration(11, "current_licences.seal_key_id, seal_signature, sealed_at: the issuing authority's seal",
              (sealed_licences(LATER_FIELDS),)),
    Migration(12, "the water registers' views: current_ships, current_shipping_enterprises, "
                  "current_port_enterprises, current_waterway_projects; current_cases.involved_ship_id",
              (*ddl.current_views(entity_types=WATER_REGISTERS), *map(current_definition, WIDENED_VIEWS))),
)


def declared_views() -> list[str]:
    """``CREATE VIEW IF NOT EXISTS`` of every declared register's view no migration creates (a
    register declared after the last migration): run after the migrations at every start, so a
    new register's view exists without a migration of its own (``{db}`` placeholder)."""
    statements = [s for m in MIGRATIONS for s in m.statements]
    made = {view for view in views.VIEWS if any(f".{view} AS" in s for s in statements)}
    return [views.view_ddl(view).replace("CREATE OR REPLACE VIEW", "CREATE VIEW IF NOT EXISTS", 1)
            for view in views.VIEWS if view not in made]

SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    description String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY version
"""


def check_order(migrations: Sequence[Migration]) -> None:
    """Versions must be positive and strictly increasing; raises ``StoreError`` otherwise."""
    previous = 0
    for migration in migrations:
        if migration.version <= previous:
            raise StoreError(f"migration {migration.version} ({migration.description}) is out of order: "
                             f"versions must increase, previous is {previous}")
        previous = migration.version


def pending(migrations: Sequence[Migration], applied: set[int]) -> list[Migration]:
    """The migrations not yet applied, in order."""
    check_order(migrations)
    return [m for m in migrations if m.version not in applied]


def applied_versions(client: Any, database: str) -> set[int]:
    db = _database(database)
    rows = _run(client, f"SELECT version FROM {db}.schema_migrations FINAL", "reading schema_migrations", query=True)
    return {int(row[0]) for row in rows}


def apply_migrations(client: Any, database: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Create the database if needed and apply every pending migration; returns their versions."""
    db = _database(database)
    _run(client, f"CREATE DATABASE IF NOT EXISTS {db}", "creating the database")
    _run(client, ddl.render(SCHEMA_MIGRATIONS.strip(), db), "creating schema_migrations")
    done = []
    for migration in pending(migrations, applied_versions(client, db)):
        for statement in migration.statements:
            _run(client, ddl.render(statement, db), f"migration {migration.version} ({migration.description})")
        try:
            client.insert("schema_migrations", [(migration.version, migration.description, _now())],
                          column_names=("version", "description", "applied_at"), database=db)
        except ClickHouseError as exc:
            raise StoreError(f"cannot record migration {migration.version}: {exc}") from exc
        done.append(migration.version)
    for statement in declared_views() if migrations is MIGRATIONS else ():
        _run(client, ddl.render(statement, db), "a declared register's view")
    return done


def _database(database: str) -> str:
    try:
        return ddl.check_identifier(database)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc


def _run(client: Any, statement: str, what: str, query: bool = False) -> Any:
    try:
        return client.query(statement).result_rows if query else client.command(statement)
    except ClickHouseError as exc:
        first_line = statement.splitlines()[0]
        raise StoreError(f"{what} failed at ({first_line} ...): {exc}") from exc


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
