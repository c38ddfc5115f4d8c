"""Rows to records and change events: type conversion, rules, deterministic ids."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from producers.database.changes import change_event, event_id, is_flag_set, required_fields, row_to_record, source_ts_ms
from producers.errors import ProducerError, RowRejected

VEHICLE = {"plate": "粤B12345", "plate_color": "2", "vehicle_class": "truck", "operator_uscc": "91350100M000100Y43",
           "status": "active", "seats": decimal.Decimal("5"), "tonnage_kg": None, "updated_at": "2024-01-01"}


def test_a_vehicle_row_becomes_a_typed_record_and_extra_columns_are_ignored():
    record = row_to_record("vehicle", VEHICLE, "1")
    assert record == {"plate": "粤B12345", "plate_color": 2, "vin": None, "vehicle_class": "truck",
                      "operator_uscc": "91350100M000100Y43", "transport_cert_no": None, "seats": 5,
                      "tonnage_kg": None, "status": "active"}


def test_a_missing_required_value_names_the_row_field_and_rule():
    with pytest.raises(RowRejected) as raised:
        row_to_record("vehicle", {**VEHICLE, "operator_uscc": "  "}, "17")
    assert (raised.value.key, raised.value.field, raised.value.rule) == ("17", "operator_uscc", "required")
    assert "row 17" in str(raised.value)


def test_a_non_numeric_value_for_a_number_field_is_rejected():
    with pytest.raises(RowRejected) as raised:
        row_to_record("vehicle", {**VEHICLE, "seats": "five"}, "3")
    assert (raised.value.field, raised.value.rule) == ("seats", "not_int")


def test_a_fractional_value_for_an_integer_field_is_rejected():
    with pytest.raises(RowRejected, match="not a whole number"):
        row_to_record("vehicle", {**VEHICLE, "tonnage_kg": 12.5}, "3")


def test_column_mapping_renames_source_columns_to_fields():
    row = {k if k != "plate" else "hphm": v for k, v in VEHICLE.items()}
    assert row_to_record("vehicle", row, "1", {"hphm": "plate"})["plate"] == "粤B12345"


@pytest.mark.parametrize("value", ["2024-03-01", "20240301", dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 9, 0),
                                   "2024-03-01 09:00:00"])
def test_licence_dates_accept_common_forms(value):
    row = {"licence_no": "L1", "licence_type": "transport_cert", "holder_key": "vehicle:粤B12345:2",
           "issuer_region_code": "440000", "valid_from": value, "valid_until": "2030-12-31", "status": "valid"}
    record = row_to_record("licence", row, "L1")
    assert record["valid_from"] == (dt.date(2024, 3, 1) - dt.date(1970, 1, 1)).days


def test_an_unparseable_date_is_rejected():
    row = {"licence_no": "L1", "licence_type": "transport_cert", "holder_key": "h", "issuer_region_code": "440000",
           "valid_from": "next tuesday", "valid_until": "2030-12-31", "status": "valid"}
    with pytest.raises(RowRejected) as raised:
        row_to_record("licence", row, "L1")
    assert (raised.value.field, raised.value.rule) == ("valid_from", "not_date")


def test_case_timestamps_become_milliseconds_and_naive_means_utc():
    row = {"case_no": "C1", "region_code": "440100", "stage": "filed", "violation_code": "V1",
           "occurred_at": dt.datetime(2024, 1, 1, 0, 0, 1)}
    assert row_to_record("case", row, "C1")["occurred_at"] == 1704067201000


@pytest.mark.parametrize("value, expected", [
    ('["A1", "B"]', ["A1", "B"]), ("A1，B", ["A1", "B"]), (None, []), (["A1"], ["A1"]),
])
def test_qualification_types_accept_json_or_separated_text(value, expected):
    row = {"id_number": "11010519491231002X", "name": "张三", "qualification_cert_no": "Q1",
           "qualification_types": value, "region_code": "110105", "status": "active"}
    assert row_to_record("practitioner", row, "p")["qualification_types"] == expected


def test_required_fields_follow_the_schema():
    assert required_fields("operator") == ["uscc", "name", "region_code", "status"]


def test_an_unknown_entity_is_refused():
    with pytest.raises(ProducerError, match="unknown entity 'truck'"):
        required_fields("truck")


@pytest.mark.parametrize("value, expected", [
    (None, False), (0, False), (1, True), ("Y", True), ("false", False), ("", False), ("2024-01-01", True),
    (dt.datetime(2024, 1, 1), True),
])
def test_soft_delete_flags(value, expected):
    assert is_flag_set(value, "k", "deleted") is expected


def test_an_unreadable_soft_delete_flag_is_rejected():
    with pytest.raises(RowRejected, match="not_a_flag"):
        is_flag_set("maybe", "k", "deleted")


def test_event_ids_are_the_same_for_the_same_row_version_and_differ_otherwise():
    first = event_id("44", "vehicles", "7", "2024-01-01")
    assert first == event_id("44", "vehicles", "7", "2024-01-01")
    assert len({first, event_id("44", "vehicles", "7", "2024-01-02"), event_id("11", "vehicles", "7", "2024-01-01"),
                event_id("44", "vehicles", "8", "2024-01-01"), event_id("44", "vehicles", "7", "2024-01-01", "1")}) == 5


def test_source_time_comes_from_a_timestamp_cursor_else_from_now():
    assert source_ts_ms(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), 5) == 1704067200000
    assert source_ts_ms("2024-01-01T00:00:00+00:00", 5) == 1704067200000
    assert source_ts_ms(17, 5) == 5


def test_a_change_event_is_keyed_by_its_entity():
    record = row_to_record("vehicle", VEHICLE, "1")
    event = change_event(event_id="e", op="c", entity_type="vehicle", before=None, after=record, province="44",
                         system="db", table="vehicles", seq=1, ts_ms=0)
    assert event["entity_key"] == "vehicle:粤B12345:2" and event["source"]["table"] == "vehicles"


def test_identifiers_are_stored_in_canonical_form_and_each_rewrite_is_noted():
    notes = []
    row = {**VEHICLE, "plate": "粤b·12345", "operator_uscc": "91350100\u3000M000100Y43"}
    record = row_to_record("vehicle", row, "1", notes=notes)
    assert (record["plate"], record["operator_uscc"]) == ("粤B12345", "91350100M000100Y43")
    assert notes == [("plate", "粤b·12345", "粤B12345"), ("operator_uscc", "91350100\u3000M000100Y43",
                                                          "91350100M000100Y43")]


def test_char_column_padding_is_stripped_without_a_note():
    notes = []
    assert row_to_record("vehicle", {**VEHICLE, "plate": "粤B12345   "}, "1", notes=notes)["plate"] == "粤B12345"
    assert notes == []
