"""The store's current_* views come from the register declarations: the road views exactly as
they were written by hand, the water registers' views from their declared columns."""

from __future__ import annotations

import hashlib

import pytest

from schemas.registers import declaration, declarations
from sinks import ddl, views
from sinks.downloads import REGISTER_VIEWS, REGISTERS
from sinks.errors import StoreError
from sinks.migrations import (LATER_FIELDS, MIGRATIONS, ROAD_REGISTERS, WATER_REGISTERS, WIDENED_VIEWS,
                              current_definition, declared_views)

# The road views' columns as sinks.ddl wrote them by hand before they were generated.
ROAD_VIEWS = {
    "current_operators": ("operator", (
        "JSONExtractString(latest_after, 'uscc') AS uscc",
        "JSONExtractString(latest_after, 'name') AS name",
        "JSONExtractString(latest_after, 'region_code') AS region_code",
        "JSONExtract(latest_after, 'permit_no', 'Nullable(String)') AS permit_no",
        "JSONExtract(latest_after, 'business_scope', 'Nullable(String)') AS business_scope",
        "JSONExtractString(latest_after, 'status') AS status",
        "JSONExtract(latest_after, 'legal_rep_id_number', 'Nullable(String)') AS legal_rep_id_number",
        "JSONExtract(latest_after, 'legal_rep_id_number_token', 'Nullable(String)') AS legal_rep_id_number_token",
        "JSONExtract(latest_after, 'contact_phone', 'Nullable(String)') AS contact_phone",
        "JSONExtract(latest_after, 'contact_phone_token', 'Nullable(String)') AS contact_phone_token",
    )),
    "current_vehicles": ("vehicle", (
        "JSONExtractString(latest_after, 'plate') AS plate",
        "JSONExtractInt(latest_after, 'plate_color') AS plate_color",
        "JSONExtract(latest_after, 'vin', 'Nullable(String)') AS vin",
        "JSONExtractString(latest_after, 'vehicle_class') AS vehicle_class",
        "JSONExtractString(latest_after, 'operator_uscc') AS operator_uscc",
        "JSONExtract(latest_after, 'transport_cert_no', 'Nullable(String)') AS transport_cert_no",
        "JSONExtract(latest_after, 'seats', 'Nullable(Int32)') AS seats",
        "JSONExtract(latest_after, 'tonnage_kg', 'Nullable(Int32)') AS tonnage_kg",
        "JSONExtractString(latest_after, 'status') AS status",
    )),
    "current_practitioners": ("practitioner", (
        "JSONExtractString(latest_after, 'id_number') AS id_number",
        "JSONExtractString(latest_after, 'id_number_token') AS id_number_token",
        "JSONExtractString(latest_after, 'name') AS name",
        "JSONExtractString(latest_after, 'qualification_cert_no') AS qualification_cert_no",
        "JSONExtract(latest_after, 'qualification_types', 'Array(String)') AS qualification_types",
        "JSONExtractString(latest_after, 'region_code') AS region_code",
        "JSONExtract(latest_after, 'employer_uscc', 'Nullable(String)') AS employer_uscc",
        "JSONExtractString(latest_after, 'status') AS status",
    )),
    "current_licences": ("licence", (
        "JSONExtractString(latest_after, 'licence_no') AS licence_no",
        "JSONExtractString(latest_after, 'licence_type') AS licence_type",
        "JSONExtractString(latest_after, 'holder_key') AS holder_key",
        "JSONExtractString(latest_after, 'issuer_region_code') AS issuer_region_code",
        "toDateOrNull(JSONExtractString(latest_after, 'valid_from')) AS valid_from",
        "toDateOrNull(JSONExtractString(latest_after, 'valid_until')) AS valid_until",
        "JSONExtractString(latest_after, 'status') AS status",
    )),
    "current_cases": ("case", (
        "JSONExtractString(latest_after, 'case_no') AS case_no",
        "JSONExtractString(latest_after, 'region_code') AS region_code",
        "JSONExtractString(latest_after, 'stage') AS stage",
        "JSONExtractString(latest_after, 'violation_code') AS violation_code",
        "parseDateTime64BestEffortOrNull(JSONExtractString(latest_after, 'occurred_at'), 3, 'UTC') AS occurred_at",
        "JSONExtract(latest_after, 'involved_plate', 'Nullable(String)') AS involved_plate",
        "JSONExtract(latest_after, 'involved_operator_uscc', 'Nullable(String)') AS involved_operator_uscc",
        "JSONExtract(latest_after, 'involved_id_number', 'Nullable(String)') AS involved_id_number",
        "JSONExtract(latest_after, 'involved_id_number_token', 'Nullable(String)') AS involved_id_number_token",
        "JSONExtract(latest_after, 'penalty_cents', 'Nullable(Int64)') AS penalty_cents",
    )),
}
# sha256 of the statements of migrations 1-11 as they ran, joined by "\n;\n".
MIGRATIONS_1_TO_11 = "4969277279c96daae68939fcc667ca2611372d0b2cbc7508741ea1a0b1fe04bc"
WATER_VIEWS = {"current_ships": "ship", "current_shipping_enterprises": "shipping_enterprise",
               "current_port_enterprises": "port_enterprise", "current_waterway_projects": "waterway_project"}


def _aliases(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(column.rsplit(" AS ", 1)[1] for column in columns)


def test_the_road_views_are_generated_exactly_as_they_were_written():
    as_written = {view: (entity, tuple(c for c in columns if _aliases((c,))[0] not in LATER_FIELDS))
                  for view, (entity, columns) in ddl.VIEWS.items() if view in ROAD_VIEWS}
    assert as_written == ROAD_VIEWS


def test_a_field_declared_since_is_a_column_after_those_written_by_hand():
    for view, (_entity, columns) in ROAD_VIEWS.items():
        generated = ddl.VIEWS[view][1]
        assert generated[:len(columns)] == columns
        assert set(_aliases(generated[len(columns):])) <= set(LATER_FIELDS), view
        assert (view in WIDENED_VIEWS) == (len(generated) > len(columns))


def test_the_last_migration_creating_each_view_creates_it_as_declared_now():
    for view in ddl.VIEWS:
        last = [s for m in MIGRATIONS for s in m.statements if s.startswith(f"CREATE OR REPLACE VIEW {{db}}.{view} AS")]
        assert last and last[-1] == current_definition(view), f"{view}: a declared column no migration shows"


def test_migrations_one_to_eleven_are_unchanged_text():
    text = "\n;\n".join(s for m in MIGRATIONS if m.version <= 11 for s in m.statements)
    assert hashlib.sha256(text.encode()).hexdigest() == MIGRATIONS_1_TO_11


def test_every_declared_register_has_its_view_with_its_declared_columns():
    assert list(ddl.VIEWS) == [register.view for register in declarations()]
    for view, (entity_type, columns) in ddl.VIEWS.items():
        assert declaration(entity_type).view == view
        assert _aliases(columns) == declaration(entity_type).view_columns(), view


def test_the_water_views_read_typed_columns_from_the_latest_after():
    assert {view: ddl.VIEWS[view][0] for view in WATER_VIEWS} == WATER_VIEWS
    ships = dict(zip(_aliases(ddl.VIEWS["current_ships"][1]), ddl.VIEWS["current_ships"][1]))
    assert list(ships) == ["ship_id", "name", "imo", "mmsi", "port_of_registry", "gross_tonnage", "ship_type",
                           "operator_uscc", "status"]
    assert ships["ship_id"] == "JSONExtractString(latest_after, 'ship_id') AS ship_id"
    assert ships["imo"] == "JSONExtract(latest_after, 'imo', 'Nullable(String)') AS imo"
    assert ships["gross_tonnage"] == "JSONExtract(latest_after, 'gross_tonnage', 'Nullable(Int32)') AS gross_tonnage"
    scope = dict(zip(_aliases(ddl.VIEWS["current_shipping_enterprises"][1]),
                     ddl.VIEWS["current_shipping_enterprises"][1]))["business_scope"]
    assert scope == "JSONExtract(latest_after, 'business_scope', 'Array(String)') AS business_scope"
    project = dict(zip(_aliases(ddl.VIEWS["current_waterway_projects"][1]), ddl.VIEWS["current_waterway_projects"][1]))
    assert project["total_investment_yuan"] == ("JSONExtract(latest_after, 'total_investment_yuan', "
                                                "'Nullable(Int64)') AS total_investment_yuan")
    assert project["start_date"] == "toDateOrNull(JSONExtractString(latest_after, 'start_date')) AS start_date"


def test_migration_one_creates_the_road_views_and_migration_twelve_the_water_ones():
    first, twelfth = MIGRATIONS[0], next(m for m in MIGRATIONS if m.version == 12)
    created = lambda m: [v for v in ddl.VIEWS if any(f".{v} AS" in s for s in m.statements)]  # noqa: E731
    assert created(first) == list(ROAD_VIEWS)
    assert created(twelfth) == [v for v in ddl.VIEWS if v in WIDENED_VIEWS or v in WATER_VIEWS]
    assert all(s.startswith("CREATE OR REPLACE VIEW {db}.current_") for s in twelfth.statements)
    assert not any(f" AS {field}" in s for field in LATER_FIELDS for s in first.statements)
    assert all("WHERE entity_type = '" in s and "FROM {db}.change_log FINAL" in s for s in twelfth.statements)
    assert set(ROAD_REGISTERS) | set(WATER_REGISTERS) == {r.entity_type for r in declarations()}


def test_no_declared_register_is_left_without_a_view():
    assert declared_views() == []


def test_a_register_declared_later_gets_its_view_without_a_migration(monkeypatch):
    monkeypatch.setitem(views.VIEWS, "current_barges", ("barge", ("JSONExtractString(latest_after, 'hull') AS hull",)))
    [statement] = declared_views()
    assert statement.startswith("CREATE VIEW IF NOT EXISTS {db}.current_barges AS")
    assert "WHERE entity_type = 'barge'" in statement


def test_a_nested_record_cannot_be_a_view_column():
    seal = declaration("licence").field("seal")
    assert not seal.in_view
    with pytest.raises(StoreError, match="nested record"):
        views.column(seal)


def test_an_undeclared_register_has_no_view():
    with pytest.raises(StoreError, match="no declared register 'barge'"):
        ddl.current_views(entity_types=["barge"])


def test_downloads_offer_every_declared_register_by_its_view():
    assert REGISTERS == tuple(r.entity_type for r in declarations())
    assert REGISTER_VIEWS["ship"] == "current_ships"
    assert REGISTER_VIEWS["waterway_project"] == "current_waterway_projects"
