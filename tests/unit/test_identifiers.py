"""Identifier standards: valid examples pass, each kind of fault names its rule."""

from __future__ import annotations

import datetime

import pytest
from stdnum.cn import ric, uscc

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


def test_id_number_of_a_county_that_came_into_use_after_the_birth_year_is_lawful():
    # The address code is the county where the number was assigned, which can be years after birth.
    ids.check_id_number(with_check_digit("44190019800101123"))  # 441900 (Dongguan) is in use from 1988


def test_id_number_of_a_county_out_of_use_before_the_birth_year_is_invalid():
    ids.check_id_number(with_check_digit("11011019800101123"))  # 110110 (燕山区) is in use until 1986
    with pytest.raises(InvalidIdentifier, match="went out of use in 1986, before the birth year 1990"):
        ids.check_id_number(with_check_digit("11011019900101123"))


# ---- GB 32100 from the standard's own definitions ----------------------------------------

GB32100_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def gb32100(body17: str) -> str:
    """``body17`` with its check character: (31 - sum(value * 3^(i-1) mod 31) mod 31) mod 31."""
    total = sum(GB32100_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body17))
    return body17 + GB32100_ALPHABET[(31 - total % 31) % 31]


def with_check_digit(body17: str) -> str:
    """GB 11643: ISO 7064 MOD 11-2 over the weights 2^(18-i) mod 11, check '10X98765432'[R]."""
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(body17))
    return body17 + "10X98765432"[total % 11]


def test_the_standards_own_checksums_agree_with_their_examples():
    assert gb32100("91350100M000100Y4") == "91350100M000100Y43"
    assert with_check_digit("11010519491231002") == "11010519491231002X"


# Every (registration authority, organisation type) pair of GB 32100's table.
LISTED = [(a, t) for a, (_name, types) in ids.REGISTRATION_AUTHORITIES.items() for t in types]


def test_the_table_holds_the_authorities_gb32100_lists():
    assert list(ids.REGISTRATION_AUTHORITIES) == [*"123456789", "A", "N", "Y"]
    assert set(ids.REGISTRATION_AUTHORITIES["9"][1]) == {"1", "2", "3"}  # 工商: 企业, 个体工商户, 农民专业合作社
    assert set(ids.REGISTRATION_AUTHORITIES["Y"][1]) == {"1"}


@pytest.mark.parametrize("authority, org_type", LISTED)
def test_every_registration_authority_and_type_of_the_table_is_a_valid_code(authority, org_type):
    code = gb32100(f"{authority}{org_type}440300MA5F0000X")
    ids.check_uscc(code)
    ids.check_uscc_org_type(code)


@pytest.mark.parametrize("authority", ["A", "N", "Y"])
def test_letter_registration_authorities_are_lawful(authority):
    ids.check_uscc(gb32100(f"{authority}1110000MA01ABCD1"))


@pytest.mark.parametrize("authority", ["0", "B", "M"])
def test_a_first_character_that_is_no_registration_authority_is_refused(authority):
    with pytest.raises(InvalidIdentifier, match="not a GB 32100 registration authority") as caught:
        ids.check_uscc(gb32100(f"{authority}1350100M000100Y4"))  # a right check character
    assert caught.value.rule == "invalid_uscc"


@pytest.mark.parametrize("authority, org_type", [("9", "9"), ("9", "4"), ("Y", "2"), ("1", "5"), ("A", "A")])
def test_an_organisation_type_outside_the_table_for_its_authority_is_named_by_its_own_rule(authority, org_type):
    code = gb32100(f"{authority}{org_type}440300MA5F0000X")
    ids.check_uscc(code)  # lawful as a code
    with pytest.raises(InvalidIdentifier) as caught:
        ids.check_uscc_org_type(code)
    assert caught.value.rule == "uscc_unknown_org_type" and f"authority {authority}" in str(caught.value)


# ---- only the canonical form passes ------------------------------------------------------

USCC = "91350100M000100Y43"
ID = "11010519491231002X"


@pytest.mark.parametrize("check, value, canonical", [
    (ids.check_uscc, "９1350100M000100Y43", USCC),             # full-width digit
    (ids.check_uscc, "91350100 M000100Y43", USCC),             # embedded space
    (ids.check_uscc, "91350100\u3000M000100Y43", USCC),        # ideographic space
    (ids.check_uscc, "913501-00M000100Y43", USCC),             # dash
    (ids.check_uscc, "9 1440300MA5F0000X6", "91440300MA5F0000X6"),
    (ids.check_uscc, "91350100m000100y43", USCC),              # lower case
    (ids.check_id_number, "11010519491231002x", ID),           # lower-case check character
    (ids.check_id_number, "１1010519491231002X", ID),
    (ids.check_id_number, "110105 19491231 002X", ID),
    (ids.check_plate, "粤b12345", "粤B12345"),
    (ids.check_plate, "粤Ｂ１２３４５", "粤B12345"),
    (ids.check_plate, "粤B·12345", "粤B12345"),
    (ids.check_plate, "粤B 12345", "粤B12345"),
])
def test_a_non_canonical_identifier_is_refused_naming_its_canonical_form(check, value, canonical):
    assert ids.canonical(value) == canonical
    with pytest.raises(InvalidIdentifier, match="not in canonical form") as caught:
        check(value)
    assert repr(canonical) in str(caught.value)


@pytest.mark.parametrize("check, value", [(ids.check_plate, "粤B12345\n"), (ids.check_region_code, "440300\n"),
                                          (ids.check_uscc, USCC + "\n"), (ids.check_id_number, ID + "\n")])
def test_a_value_ending_in_a_newline_is_refused(check, value):
    with pytest.raises(InvalidIdentifier):
        check(value)


def test_canonicalise_tells_whether_more_than_cell_padding_changed():
    assert ids.canonicalise(f" {USCC} ") == (USCC, False)
    assert ids.canonicalise(f"{USCC}\u3000") == (USCC, True)
    assert ids.canonicalise("粤b12345") == ("粤B12345", True)


# ---- GB 11643 birth dates ----------------------------------------------------------------

def test_a_birth_date_after_today_is_refused():
    born_2024_06_02 = with_check_digit("44030120240602123")
    ids.check_id_number(born_2024_06_02, today=datetime.date(2024, 6, 2))
    with pytest.raises(InvalidIdentifier, match="after today 2024-06-01"):
        ids.check_id_number(born_2024_06_02, today=datetime.date(2024, 6, 1))


def test_a_uscc_the_corps_registered_is_valid_and_names_the_corps_not_xinjiang():
    corps = with_uscc_check("91660100MA7800000")
    ids.check_uscc(corps)
    assert ids.party_of_uscc(corps) == ids.CORPS_REGION == "66"
    shihezi = with_uscc_check("91659001MA7800000")  # a Xinjiang authority in a city the Corps administers
    ids.check_uscc(shihezi)
    assert ids.party_of_uscc(shihezi) == "65"
    with pytest.raises(InvalidIdentifier, match="unknown province '67'"):
        ids.check_uscc(with_uscc_check("91670100MA7800000"))
    ids.check_region_code("660100")


def with_uscc_check(body17: str) -> str:
    return body17 + uscc.calc_check_digit(body17)
