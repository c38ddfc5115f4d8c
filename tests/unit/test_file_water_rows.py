"""The file adapter reads the water registers from their declarations alone: Chinese labels, canonical
identifiers (IMO without its prefix), numbers, money in 万元, dates and code-table labels; bad rows
are row errors naming the field and the rule, as for the road registers."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import Workbook

from producers.errors import BadRow, FileRejected
from producers.files import fields
from producers.files.daily_file import parse_daily_file
from producers.files.headers import DEFAULT_LABELS, entity_from_name, map_header, register_of
from producers.files.rows import RowParser
from schemas import codes, contract, registers

ROAD = ("operator", "vehicle", "practitioner", "licence", "case")
WATER = ("ship", "shipping_enterprise", "port_enterprise", "waterway_project")
SHIP_HEADER = ("船舶识别号", "船名", "IMO编号", "MMSI", "船籍港", "总吨", "船舶种类", "经营人统一社会信用代码", "状态")
OPERATOR = "91350100M000100Y43"
GOOD_SHIP = ("CN20190001", "长航货运1", "IMO 9074729", "413000001", "武汉", "1,200", "散货船", OPERATOR, "营运")


def ship_parser() -> RowParser:
    return RowParser("ship", map_header("ship", SHIP_HEADER, fields.required_fields("ship")))


@pytest.mark.parametrize("entity", ROAD + WATER)
def test_the_labels_a_column_may_carry_are_its_registers_declared_ones(entity):
    assert DEFAULT_LABELS[entity] == registers.declaration(entity).column_labels()


@pytest.mark.parametrize("entity", ROAD + WATER)
def test_the_adapters_fields_are_the_contracts(entity):
    assert fields.field_specs(entity) == contract.field_specs(entity)
    assert fields.key_fields(entity) == contract.KEY_FIELDS[entity]


def test_road_code_labels_are_the_contracts_and_water_ones_the_declared_tables():
    for table, labels in codes.LABELS.items():
        assert fields.code_labels(table) == labels
    assert fields.code_labels("ship.ship_type") == registers.declaration("ship").code_tables["ship.ship_type"].labels()


def test_a_ship_export_with_chinese_labels_parses_into_a_typed_record_with_canonical_identifiers():
    notes = []
    record = ship_parser().parse(GOOD_SHIP, notes)
    assert record == {"ship_id": "CN20190001", "name": "长航货运1", "imo": "9074729", "mmsi": "413000001",
                      "port_of_registry": "武汉", "gross_tonnage": 1200, "ship_type": "bulk_carrier",
                      "operator_uscc": OPERATOR, "status": "active"}
    assert [(n.field, n.raw, n.value) for n in notes] == [("imo", "IMO 9074729", "9074729")]


@pytest.mark.parametrize("column, value, field, rule", [
    (2, "9074728", "imo", "invalid_imo"),            # a wrong check digit
    (3, "41300000", "mmsi", "invalid_mmsi"),          # 8 digits
    (3, "4130000011", "mmsi", "invalid_mmsi"),        # 10 digits
    (7, "91350100M000100Y44", "operator_uscc", "invalid_uscc"),
    (5, "1200.5", "gross_tonnage", "not_a_number"),
    (1, "", "name", "missing_required"),
])
def test_a_bad_ship_row_is_a_row_error_naming_its_field_and_rule(column, value, field, rule):
    cells = list(GOOD_SHIP)
    cells[column] = value
    with pytest.raises(BadRow) as raised:
        ship_parser().parse(tuple(cells))
    assert (raised.value.field, raised.value.rule) == (field, rule)


def test_an_unknown_ship_type_passes_as_given_for_the_stage_to_warn_as_declared():
    assert "unknown_ship_type" in registers.declaration("ship").field("ship_type").warnings
    cells = list(GOOD_SHIP)
    cells[6] = "渔船"
    assert ship_parser().parse(tuple(cells))["ship_type"] == "渔船"


def test_a_road_code_outside_its_table_still_rejects_the_row():
    parser = RowParser("vehicle", ("plate", "plate_color", "vehicle_class", "operator_uscc", "status"))
    with pytest.raises(BadRow) as raised:
        parser.parse(("粤B12345", "2", "拖拉机", OPERATOR, "营运"))
    assert (raised.value.field, raised.value.rule) == ("vehicle_class", "unknown_code")


def test_a_shipping_enterprises_business_scope_is_a_list_of_codes():
    header = ("统一社会信用代码", "企业名称", "水路运输许可证号", "经营范围", "行政区划代码", "状态")
    parser = RowParser("shipping_enterprise", map_header("shipping_enterprise", header, ()))
    record = parser.parse((OPERATOR, "长江航运有限公司", "交CJ20190001", "国内沿海；省际、集装箱", "420100", "营业"))
    assert record["business_scope"] == ["coastal", "inter_provincial", "container"] and record["status"] == "active"


PROJECT_HEADER = ("项目代码", "项目名称", "项目法人统一社会信用代码", "建设地点行政区划代码")


@pytest.mark.parametrize("label, cell, yuan", [
    ("总投资(元)", "120000000", 120_000_000),
    ("总投资", "120,000,000", 120_000_000),
    ("总投资(万元)", "12000", 120_000_000),
    ("总投资（万元）", "1.5亿元", 150_000_000),   # a cell's unit wins over the column's
    ("总投资(亿元)", "1.2", 120_000_000),
    ("总投资(元)", "3200.5万元", 32_005_000),
])
def test_a_projects_investment_is_converted_to_yuan_from_the_unit_its_column_or_cell_names(tmp_path, label, cell,
                                                                                            yuan):
    path = tmp_path / "waterway_project.csv"
    row = ("2019-420100-55-01-012345", "汉江航道整治工程", OPERATOR, "420100", cell, "2019-10-01", "2022年6月30日", "在建")
    header = (*PROJECT_HEADER, label, "开工日期", "完工日期", "项目状态")
    path.write_text(",".join(header) + "\n" + ",".join(f'"{c}"' for c in row) + "\n", "utf-8")
    parsed = parse_daily_file(path, "waterway_project")
    assert not parsed.failures
    (_row, record), = parsed.current.values()
    assert record["total_investment_yuan"] == yuan
    assert record["start_date"] == (dt.date(2019, 10, 1) - dt.date(1970, 1, 1)).days
    assert record["status"] == "under_construction"


def test_a_project_ending_before_it_starts_or_in_a_fraction_of_a_yuan_is_a_bad_row():
    header = ("project_code", "name", "owner_uscc", "region_code", "total_investment_yuan", "start_date", "end_date",
              "status")
    parser = RowParser("waterway_project", header)
    good = ["2019-420100-55-01-012345", "汉江航道整治工程", OPERATOR, "420100", "100", "2020-01-01", "2021-01-01", "在建"]
    parser.parse(tuple(good))
    with pytest.raises(BadRow) as raised:
        parser.parse(tuple(good[:5] + ["2022-01-01", "2021-01-01", "在建"]))
    assert (raised.value.field, raised.value.rule) == ("end_date", "invalid_period")
    with pytest.raises(BadRow) as raised:
        parser.parse(tuple(good[:4] + ["0.00001万元"] + good[5:]))
    assert (raised.value.field, raised.value.rule) == ("total_investment_yuan", "not_a_number")


@pytest.mark.parametrize("shape, rule", [("second_sheet", "extra_sheets"), ("merged", "merged_header")])
def test_a_ship_xlsx_with_a_second_sheet_or_merged_header_cells_is_refused_whole(tmp_path, shape, rule):
    book = Workbook()
    book.active.append(SHIP_HEADER)
    book.active.append(GOOD_SHIP)
    if shape == "second_sheet":
        book.create_sheet("港口企业").append(("统一社会信用代码",))
    else:
        book.active.merge_cells("A1:B1")
    path = tmp_path / "ship.xlsx"
    book.save(path)
    with pytest.raises(FileRejected) as raised:
        parse_daily_file(path, "ship")
    assert raised.value.rule == rule


@pytest.mark.parametrize("name, entity", [
    ("ship_20240601.xlsx", "ship"), ("ships.csv", "ship"), ("营运船舶-0601.xlsx", "ship"),
    ("shipping_enterprise_20240601.csv", "shipping_enterprise"), ("航运企业.xlsx", "shipping_enterprise"),
    ("port_enterprises.csv", "port_enterprise"), ("水运建设项目.xlsx", "waterway_project"),
    ("vehicle_20240601.csv", "vehicle"), ("license.csv", "licence"), ("业户.csv", "operator"), ("备注.csv", None),
])
def test_a_file_name_announces_its_register_the_longest_word_winning(name, entity):
    assert entity_from_name(name) == entity


def test_an_inbox_folder_names_its_register_by_entity_type_or_chinese_name():
    assert register_of("ship") == register_of("营运船舶") == "ship"
    assert register_of("ships") is None
