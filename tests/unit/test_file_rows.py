"""Header mapping and row parsing: Chinese labels, typed fields, identifier checks, row errors."""

from __future__ import annotations

import datetime
import json

import pytest

from producers.files.daily_file import parse_daily_file, write_error_report
from producers.errors import FileRejected, MappingError, BadRow
from producers.files.headers import entity_from_name, load_mapping, map_header
from producers.files.rows import Normalised, RowParser
from schemas.contract import required_fields

USCC = "91350100M000100Y43"


def columns(entity, header, mapping=None):
    return map_header(entity, tuple(header), required_fields(entity), mapping or {})


def test_chinese_labels_map_to_canonical_fields_per_entity():
    assert columns("operator", ["统一社会信用代码", "业户名称", "行政区划代码", "经营许可证号", "经营范围", "状态"]) == (
        "uscc", "name", "region_code", "permit_no", "business_scope", "status")
    assert columns("vehicle", ["车牌号码", "车牌颜色", "车辆识别代号", "车辆类型", "统一社会信用代码", "道路运输证号",
                               "核定座位", "核定吨位", "状态"])[4] == "operator_uscc"
    assert columns("licence", ["证照编号", "证照类型", "持证主体", "行政区划代码", "有效期起", "有效期止", "状态"])[3] == (
        "issuer_region_code")


def test_canonical_names_and_spacing_variants_are_accepted():
    assert columns("operator", ["USCC", " name ", "region_code", "status"]) == ("uscc", "name", "region_code", "status")


def test_unknown_columns_reject_the_file_naming_them():
    with pytest.raises(FileRejected) as caught:
        columns("operator", ["统一社会信用代码", "业户名称", "行政区划代码", "状态", "备注", "颜色"])
    assert caught.value.rule == "unknown_columns"
    assert "'备注'" in str(caught.value) and "'颜色'" in str(caught.value) and "--mapping" in str(caught.value)


def test_missing_required_columns_reject_the_file():
    with pytest.raises(FileRejected) as caught:
        columns("operator", ["统一社会信用代码", "业户名称"])
    assert caught.value.rule == "missing_columns" and "region_code" in str(caught.value)


def test_two_columns_for_one_field_reject_the_file():
    with pytest.raises(FileRejected) as caught:
        columns("operator", ["统一社会信用代码", "uscc", "业户名称", "行政区划代码", "状态"])
    assert caught.value.rule == "duplicate_columns"


def test_province_mapping_file_renames_and_ignores_columns(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"信用代码": "uscc", "备注": None}, ensure_ascii=False), "utf-8")
    mapping = load_mapping(path, "operator")
    assert columns("operator", ["信用代码", "业户名称", "行政区划代码", "状态", "备注"], mapping) == (
        "uscc", "name", "region_code", "status", None)


def test_mapping_to_an_unknown_field_is_refused(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"信用代码": "credit"}), "utf-8")
    with pytest.raises(MappingError, match="'credit', which is not a operator field"):
        load_mapping(path, "operator")


def test_unreadable_mapping_file_is_refused(tmp_path):
    path = tmp_path / "map.json"
    path.write_text("{not json", "utf-8")
    with pytest.raises(MappingError, match="not readable JSON"):
        load_mapping(path, "operator")


@pytest.mark.parametrize("name, entity", [("vehicle_20240601.csv", "vehicle"), ("营运车辆-0601.xlsx", "vehicle"),
                                          ("Operators.csv", "operator"), ("执法案件.csv", "case"), ("misc.csv", None)])
def test_entity_is_taken_from_the_file_name(name, entity):
    assert entity_from_name(name) == entity


VEHICLE = ("plate", "plate_color", "vehicle_class", "operator_uscc", "status", "seats", "tonnage_kg")


def vehicle(*cells):
    return RowParser("vehicle", VEHICLE).parse(tuple(cells))


def test_vehicle_row_with_chinese_codes_becomes_a_typed_record():
    record = vehicle("粤b12345", "黄", "危险货物运输车", USCC, "正常", "", "10.5吨")
    assert record == {"plate": "粤B12345", "plate_color": 2, "vin": None, "vehicle_class": "dangerous_goods",
                      "operator_uscc": USCC, "transport_cert_no": None, "seats": None, "tonnage_kg": 10500,
                      "status": "active"}


@pytest.mark.parametrize("text, kg", [("18000", 18000), ("18,000", 18000), ("18t", 18000), ("1800千克", 1800)])
def test_tonnage_accepts_kilograms_and_tonnes(text, kg):
    assert vehicle("粤B12345", "2", "truck", USCC, "active", "", text)["tonnage_kg"] == kg


@pytest.mark.parametrize("cells, field, rule", [
    (("粤B12345", "2", "truck", "91350100M000100Y44", "active", "", ""), "operator_uscc", "invalid_uscc"),
    (("粤BI2345", "2", "truck", USCC, "active", "", ""), "plate", "invalid_plate"),
    (("粤B12345", "7", "truck", USCC, "active", "", ""), "plate_color", "invalid_plate_color"),
    (("粤B12345", "2", "", USCC, "active", "", ""), "vehicle_class", "missing_required"),
    (("粤B12345", "2", "truck", USCC, "active", "四十", ""), "seats", "not_a_number"),
    (("粤B12345", "2", "truck", USCC, "flying", "", ""), "status", "unknown_code"),
    (("粤B12345", "2", "truck", "=cmd|' /C calc'!A0", "active", "", ""), "operator_uscc", "formula_injection"),
    (("粤B12345", "2", "truck", USCC, "active"), None, "wrong_column_count"),
])
def test_bad_vehicle_cells_raise_a_row_error_naming_field_and_rule(cells, field, rule):
    with pytest.raises(BadRow) as caught:
        vehicle(*cells)
    assert (caught.value.field, caught.value.rule) == (field, rule)


def test_trailing_empty_cells_beyond_the_header_are_allowed():
    assert vehicle("粤B12345", "2", "truck", USCC, "active", "", "", "", "")["plate"] == "粤B12345"


def test_key_of_a_bad_row_is_known_when_its_key_fields_parse():
    parser = RowParser("vehicle", VEHICLE)
    assert parser.key_of(("粤B12345", "2", "truck", USCC, "active", "四十", "")) == "vehicle:粤B12345:2"
    assert parser.key_of(("粤B12345", "x", "truck", USCC, "active", "", "")) is None


LICENCE = ("licence_no", "licence_type", "holder_key", "issuer_region_code", "valid_from", "valid_until", "status")


@pytest.mark.parametrize("text", ["2024-06-01", "2024/6/1", "20240601", "2024年6月1日", "2024-06-01 00:00:00"])
def test_dates_are_read_in_common_formats(text):
    record = RowParser("licence", LICENCE).parse(("L1", "道路运输证", "vehicle:粤B12345:2", "440300", text,
                                                   "2030-01-01", "有效"))
    assert record["valid_from"] == (datetime.date(2024, 6, 1) - datetime.date(1970, 1, 1)).days
    assert record["licence_type"] == "transport_cert" and record["status"] == "valid"


def test_unparseable_date_and_reversed_validity_are_row_errors():
    parser = RowParser("licence", LICENCE)
    with pytest.raises(BadRow) as caught:
        parser.parse(("L1", "道路运输证", "h", "440300", "2024-13-01", "2030-01-01", "有效"))
    assert (caught.value.field, caught.value.rule) == ("valid_from", "invalid_date")
    with pytest.raises(BadRow) as caught:
        parser.parse(("L1", "道路运输证", "h", "440300", "2024-06-01", "2020-01-01", "有效"))
    assert caught.value.rule == "invalid_validity"


def test_case_time_without_zone_is_china_time_and_stage_label_is_mapped():
    parser = RowParser("case", ("case_no", "region_code", "stage", "violation_code", "occurred_at"))
    record = parser.parse(("粤交执〔2024〕1号", "440300", "调查取证", "DLYS-0101", "2024-06-01 08:00:00"))
    assert record["stage"] == "investigating"
    assert record["occurred_at"] == int(datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000)


def test_practitioner_qualification_types_are_split_and_id_checked():
    parser = RowParser("practitioner", ("id_number", "name", "qualification_cert_no", "qualification_types",
                                        "region_code", "status"))
    record = parser.parse(("11010519491231002x", "张伟", "Q1", "道路危险货物运输驾驶员；押运人员", "110105", "正常"))
    assert record["id_number"] == "11010519491231002X"
    assert record["qualification_types"] == ["道路危险货物运输驾驶员", "押运人员"]
    with pytest.raises(BadRow) as caught:
        parser.parse(("110105194912310021", "张伟", "Q1", "", "110105", "正常"))
    assert caught.value.rule == "invalid_id_number"


@pytest.mark.parametrize("seats, tonnage", [("99999999999", ""), ("", "99999999999t")])
def test_vehicle_number_beyond_a_32_bit_int_is_a_row_error(seats, tonnage):
    with pytest.raises(BadRow) as caught:
        vehicle("粤B12345", "2", "truck", USCC, "active", seats, tonnage)
    assert caught.value.rule == "out_of_range" and caught.value.field == ("seats" if seats else "tonnage_kg")


def test_identifiers_are_stored_in_canonical_form_and_each_rewrite_is_noted():
    notes = []
    record = RowParser("vehicle", VEHICLE).parse(("粤b 12345", "2", "truck", "９1350100\u3000M000100-Y43", "active",
                                                  "", ""), notes)
    assert (record["plate"], record["operator_uscc"]) == ("粤B12345", USCC)
    assert notes == [Normalised("plate", "粤b 12345", "粤B12345"),
                     Normalised("operator_uscc", "９1350100\u3000M000100-Y43", USCC)]


def test_cell_padding_alone_is_not_noted():
    notes = []
    RowParser("vehicle", VEHICLE).parse((" 粤B12345 ", "2", "truck", f"{USCC}  ", "active", "", ""), notes)
    assert notes == []


def test_a_birth_date_after_the_parsers_day_is_a_row_error():
    parser = RowParser("practitioner", ("id_number", "name", "qualification_cert_no", "region_code", "status"),
                       today=datetime.date(2024, 6, 1))
    born = "44030120240602123"
    born += "10X98765432"[sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(born)) % 11]
    with pytest.raises(BadRow) as caught:
        parser.parse((born, "张伟", "Q1", "440301", "正常"))
    assert (caught.value.field, caught.value.rule) == ("id_number", "invalid_id_number")
    assert "after today" in caught.value.detail


def test_a_pilot_code_on_the_allow_list_is_accepted_in_a_row():
    cells = ("粤B12345", "2", "truck", "91350100M000100Y44", "active", "", "")
    assert RowParser("vehicle", VEHICLE, frozenset({"91350100M000100Y44"})).parse(cells)["operator_uscc"] == (
        "91350100M000100Y44")


def test_a_rewritten_identifier_is_a_note_in_the_row_report_not_a_bad_row(tmp_path):
    path = tmp_path / "operators.csv"
    path.write_text(f"统一社会信用代码,业户名称,行政区划代码,状态\n{USCC[:8]} {USCC[8:]},福州顺达运输有限公司,350100,营业\n",
                    "utf-8")
    parsed = parse_daily_file(path, "operator")
    assert parsed.failures == [] and list(parsed.current) == [f"operator:{USCC}"]
    note, = parsed.notes
    assert (note.row, note.field, note.rule) == (2, "uscc", "normalised")
    assert repr(f"{USCC[:8]} {USCC[8:]}") in note.message and repr(USCC) in note.message
    report = write_error_report(path, parsed.failures + parsed.notes).read_text("utf-8-sig").splitlines()
    assert report[1].startswith("2,uscc,normalised,")


SEALED = (*LICENCE, "seal_key_id", "seal_signature", "sealed_at")
LICENCE_ROW = ("粤交运管许可广字440106000123号", "经营许可证", "operator:91440101MA5CXXXX1X", "440106",
               "2022-03-01", "2026-03-02", "有效")


@pytest.fixture(scope="module")
def sealed_licence(tmp_path_factory):
    from schemas import seals
    from schemas.keys import PartyKeys

    key = PartyKeys(tmp_path_factory.mktemp("keys") / "44", "44").init(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    record = RowParser("licence", LICENCE).parse(LICENCE_ROW)
    return seals.seal_licence(record, key, datetime.datetime(2024, 6, 1, 8, 0, tzinfo=datetime.timezone.utc))


def test_a_licence_row_without_seal_columns_is_unsealed():
    assert RowParser("licence", LICENCE).parse(LICENCE_ROW)["seal"] is None
    assert RowParser("licence", SEALED).parse((*LICENCE_ROW, "", "", ""))["seal"] is None


def test_a_licence_row_passes_its_seal_through_from_columns_or_a_qr_payload(sealed_licence):
    from schemas import seals

    seal = sealed_licence["seal"]
    urlsafe = seal["signature"].replace("+", "-").replace("/", "_").rstrip("=")
    from_columns = RowParser("licence", columns("licence", [*map(str, LICENCE), "印章密钥标识", "印章签名值", "签章时间"]))
    record = from_columns.parse((*LICENCE_ROW, seal["key_id"], urlsafe, "2024-06-01 16:00:00"))  # China time
    assert record["seal"] == {"key_id": seal["key_id"], "signature": seal["signature"], "sealed_at": 1_717_228_800_000}
    assert seals.canonical_content(record) == seals.canonical_content(sealed_licence)
    from_qr = RowParser("licence", (*LICENCE, "seal")).parse((*LICENCE_ROW, seals.qr_payload(sealed_licence)))
    assert from_qr["seal"] == record["seal"]


@pytest.mark.parametrize("cells, field, rule", [
    (("44-0123abcd", "", ""), "seal_signature", "incomplete_seal"),
    (("", "MEUCIQ", "2024-06-01 08:00"), "seal_key_id", "incomplete_seal"),
    (("44-0123abcd", "not base64!", "2024-06-01 08:00"), "seal_signature", "malformed_seal"),
    (("440123abcd", "MEUCIQ==", "2024-06-01 08:00"), "seal", "malformed_seal"),
    (("44-0123abcd", "MEUCIQ==", "yesterday"), "sealed_at", "invalid_timestamp"),
    (("=cmd|x", "MEUCIQ==", "2024-06-01 08:00"), "seal_key_id", "formula_injection"),
])
def test_a_seal_given_in_part_or_malformed_is_a_row_error(cells, field, rule):
    with pytest.raises(BadRow) as bad:
        RowParser("licence", SEALED).parse((*LICENCE_ROW, *cells))
    assert (bad.value.field, bad.value.rule) == (field, rule)


def test_a_qr_seal_of_another_licence_or_malformed_is_a_row_error(sealed_licence):
    from schemas import seals

    parser = RowParser("licence", (*LICENCE, "seal"))
    other = seals.qr_payload({**sealed_licence, "licence_no": "粤交运管许可广字440106000124号"})
    for payload, rule in ((other, "seal_of_another_licence"), ("RDXL1:nonsense", "malformed_qr")):
        with pytest.raises(BadRow) as bad:
            parser.parse((*LICENCE_ROW, payload))
        assert bad.value.rule == rule
