"""Identifier standards: valid examples pass, each kind of fault names its rule."""

from __future__ import annotations

import pytest
from stdnum.cn import ric

from schemas import identifiers as ids
from schemas.errors import InvalidIdentifier


def test_standard_examples_are_valid():
    ids.check_uscc("91350100M000100Y43")
    ids.check_uscc("91110000600037341L")
    ids.check_id_number("11010519491231002X")
    ids.check_region_code("440305")


@pytest.mark.parametrize("plate, province", [
    ("粤B12345", "44"), ("京A1234挂", "11"), ("沪AD12345", "31"), ("粤B12345D", "44"), ("川A1234学", "51"),
])
def test_plates_give_their_province(plate, province):
    assert ids.check_plate(plate) == province


@pytest.mark.parametrize("check, value, rule", [
    (ids.check_uscc, "91350100M000100Y44", "invalid_uscc"),       # wrong check character
    (ids.check_uscc, "91350100M00010", "invalid_uscc"),           # too short
    (ids.check_uscc, "91990100M000100Y4X", "invalid_uscc"),       # unknown province / bad check
    (ids.check_id_number, "110105194912310021", "invalid_id_number"),  # wrong check digit
    (ids.check_id_number, "110105194913310028", "invalid_id_number"),  # month 13
    (ids.check_id_number, "99010519491231002X", "invalid_id_number"),  # unknown province
    (ids.check_plate, "粤I12345", "invalid_plate"),                # letter I not allowed
    (ids.check_plate, "XB12345", "invalid_plate"),
    (ids.check_plate, "粤B1234", "invalid_plate"),
    (ids.check_region_code, "4403", "invalid_region_code"),
    (ids.check_region_code, "990305", "invalid_region_code"),
])
def test_faulty_identifiers_name_their_rule(check, value, rule):
    with pytest.raises(InvalidIdentifier) as caught:
        check(value)
    assert caught.value.rule == rule and value in str(caught.value)


def test_pilot_codes_on_the_allow_list_pass_without_checksum():
    with pytest.raises(InvalidIdentifier):
        ids.check_uscc("91350100M000100Y44")
    ids.check_uscc("91350100M000100Y44", allow={"91350100M000100Y44"})


def test_plate_colour_code_table():
    ids.check_plate_color(2)
    with pytest.raises(InvalidIdentifier, match="invalid_plate_color"):
        ids.check_plate_color(7)


def test_id_number_with_a_region_stdnum_has_no_county_for_is_invalid_not_a_crash():
    body = "11000119900101123"  # 110001: a code python-stdnum lists without a county entry
    value = body + ric.calc_check_digit(body + "0")
    with pytest.raises(InvalidIdentifier, match="county-level"):
        ids.check_id_number(value)


def test_id_number_of_a_county_before_it_existed_is_invalid():
    body = "44190019800101123"  # 441900 (Dongguan) is in use from 1988
    value = body + ric.calc_check_digit(body + "0")
    with pytest.raises(InvalidIdentifier, match="not in use in 1980"):
        ids.check_id_number(value)
    later = "44190019900101123"
    ids.check_id_number(later + ric.calc_check_digit(later + "0"))
