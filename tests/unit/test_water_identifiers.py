"""Identifier checks of the water registers: IMO numbers (check digit), MMSI (length, Chinese
MIDs), and warnings for permit and project numbers whose formats are unconfirmed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import water_identifiers as water
from schemas.errors import InvalidIdentifier


def rule_of(check, value) -> str | None:
    try:
        check(value)
    except InvalidIdentifier as exc:
        return exc.rule
    return None


@pytest.mark.parametrize("value", ["9319466", "8814275", "9074729"])
def test_a_valid_imo_number_passes(value):
    water.check_imo(value)


@pytest.mark.parametrize("value, why", [
    ("9319467", "check digit"), ("8814274", "check digit"), ("931946", "not 7 digits"),
    ("93194660", "not 7 digits"), ("93I9466", "not 7 digits"), ("IMO9319466", "written so it is '9319466'"),
    ("IMO 9319466", "written so it is '9319466'"), ("９３１９４６６", "written form"), ("", "not 7 digits"),
])
def test_an_imo_number_with_a_wrong_check_digit_or_shape_is_refused(value, why):
    with pytest.raises(InvalidIdentifier, match=why) as caught:
        water.check_imo(value)
    assert caught.value.rule == "invalid_imo" and caught.value.value == value


def test_an_imo_number_is_written_canonically_without_its_prefix():
    assert water.canonical_imo("IMO 9319466") == "9319466"
    assert water.canonical_imo(" imo９３１９４６６ ") == "9319466"
    water.check_imo(water.canonical_imo("IMO 9319466"))


@pytest.mark.parametrize("value", ["412345678", "413000001", "414999999"])
def test_a_chinese_ship_stations_mmsi_passes_both_checks(value):
    water.check_mmsi(value)
    water.check_mmsi_china(value)


@pytest.mark.parametrize("value", ["41234567", "4123456789", "41234567X", "", "412 345 678", "４１２３４５６７８"])
def test_an_mmsi_of_the_wrong_length_or_not_digits_is_an_error(value):
    assert rule_of(water.check_mmsi, value) == "invalid_mmsi"
    assert "invalid_mmsi" not in water.WARNING_RULES


@pytest.mark.parametrize("value", ["477123456", "366123456", "211234567"])
def test_a_foreign_mid_is_a_warning_not_an_error(value):
    water.check_mmsi(value)
    assert rule_of(water.check_mmsi_china, value) == "mmsi_foreign_mid"
    assert "mmsi_foreign_mid" in water.WARNING_RULES


@pytest.mark.parametrize("check, good, bad", [
    (water.check_water_permit_format, ["交XS2017001", "苏XK0123"], ["XS2017001", "交XS", "water permit 1"]),
    (water.check_port_permit_format, ["(粤广)港经证(0012)号", "(苏南)港经证(1)号"], ["粤广港经证0012号", "(XX)港经证(1)号"]),
    (water.check_project_code_format, ["2019-440300-55-01-012345"], ["20194403005501012345", "2019-990300-55-01-012345",
                                                                      "1800-440300-55-01-012345"]),
])
def test_unconfirmed_formats_warn_rather_than_reject(check, good, bad):
    for value in good:
        check(value)
    for value in bad:
        rule = rule_of(check, value)
        assert rule in water.WARNING_RULES, (value, rule)


def test_full_width_brackets_are_not_the_written_form_of_a_permit_number():
    assert water.plain("（粤广）港经证（0012）号") == "(粤广)港经证(0012)号"
    assert rule_of(water.check_port_permit_format, "（粤广）港经证（0012）号") == "port_permit_format"


def test_every_check_is_listed_under_the_rule_it_raises():
    samples = {"invalid_imo": "9319467", "invalid_mmsi": "4123", "mmsi_foreign_mid": "477123456",
               "water_permit_format": "x", "port_permit_format": "x", "project_code_format": "x"}
    assert set(samples) == set(water.CHECKS)
    for rule, check in water.CHECKS.items():
        assert rule_of(check, samples[rule]) == rule
    assert water.WARNING_RULES < set(water.CHECKS)


ANY_VALUE = st.one_of(st.text(max_size=40), st.integers(), st.none(), st.binary(max_size=12),
                      st.from_regex(r"(IMO)?[0-9]{5,9}", fullmatch=True))


@settings(max_examples=300, deadline=None)
@given(value=ANY_VALUE)
def test_the_checks_raise_nothing_but_invalid_identifier(value):
    for rule, check in water.CHECKS.items():
        try:
            check(value)
        except InvalidIdentifier as exc:
            assert exc.rule == rule


@settings(max_examples=200, deadline=None)
@given(digits=st.from_regex(r"[0-9]{6}", fullmatch=True))
def test_exactly_one_check_digit_completes_six_digits_to_an_imo_number(digits):
    passing = [d for d in "0123456789" if rule_of(water.check_imo, digits + d) is None]
    assert len(passing) == 1
