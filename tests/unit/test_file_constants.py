"""A province's mapping file gives one value for every row of a field its export lacks."""

from __future__ import annotations

import json

import pytest

from producers.files.daily_file import parse_daily_file
from producers.errors import FileRejected, MappingError
from producers.files.headers import HeaderMapping, load_mapping, map_header
from schemas.contract import required_fields

USCC = "91350100M000100Y43"
WITHOUT_STATUS = ["统一社会信用代码", "业户名称", "行政区划代码"]


def mapping_file(tmp_path, data) -> str:
    path = tmp_path / "map.json"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return path


def test_an_export_without_a_status_column_is_refused_naming_the_constants_option():
    with pytest.raises(FileRejected) as caught:
        map_header("operator", tuple(WITHOUT_STATUS), required_fields("operator"))
    assert caught.value.rule == "missing_columns"
    assert 'lacks required columns status' in str(caught.value)
    assert '--mapping file as {"constants": {"status": "<value>"}}' in str(caught.value)


def test_a_constant_from_the_mapping_file_stands_for_the_missing_column(tmp_path):
    mapping = load_mapping(mapping_file(tmp_path, {"信用代码": "uscc", "constants": {"status": "营业"}}), "operator")
    assert mapping == {"信用代码": "uscc"} and mapping.constants == {"status": "营业"}
    columns = map_header("operator", ("信用代码", "业户名称", "行政区划代码"), required_fields("operator"), mapping)
    assert columns == ("uscc", "name", "region_code")


def test_a_daily_file_without_the_status_column_loads_with_the_constant_mapped_through_the_code_table(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(",".join(WITHOUT_STATUS) + f"\n{USCC},福州顺达运输有限公司,350100\n", "utf-8")
    mapping = load_mapping(mapping_file(tmp_path, {"constants": {"status": "营业"}}), "operator")
    parsed = parse_daily_file(path, "operator", mapping)
    assert parsed.failures == []
    (_row, record), = parsed.current.values()
    assert (record["uscc"], record["status"]) == (USCC, "active")


def test_a_constant_may_give_a_key_field(tmp_path):
    path = tmp_path / "vehicles.csv"
    path.write_text(f"车牌号码,车辆类型,统一社会信用代码,状态\n粤B12345,货车,{USCC},营运\n", "utf-8")
    parsed = parse_daily_file(path, "vehicle", HeaderMapping(constants={"plate_color": "黄"}))
    assert list(parsed.current) == ["vehicle:粤B12345:2"]


@pytest.mark.parametrize("constants, field, rule", [
    ({"colour": "黄"}, "colour", "unknown_field"),
    ({"status": "开张"}, "status", "unknown_code"),
    ({"status": True}, "status", "bad_constant"),
    ({"status": ""}, "status", "missing_required"),
    ({"region_code": "=1+1"}, "region_code", "formula_injection"),
])
def test_a_bad_constant_is_an_error_naming_the_mapping_file_field_and_rule(tmp_path, constants, field, rule):
    path = mapping_file(tmp_path, {"constants": constants})
    with pytest.raises(MappingError) as caught:
        load_mapping(path, "operator")
    assert str(path) in str(caught.value) and f"field {field}: {rule}" in str(caught.value)


def test_a_field_given_by_a_column_and_a_constant_is_refused(tmp_path):
    with pytest.raises(MappingError, match="constant_and_column"):
        load_mapping(mapping_file(tmp_path, {"经营状态码": "status", "constants": {"status": "营业"}}), "operator")
    with pytest.raises(FileRejected, match="'状态' and the mapping's constants both give status"):
        map_header("operator", (*WITHOUT_STATUS, "状态"), required_fields("operator"),
                   HeaderMapping(constants={"status": "营业"}))
