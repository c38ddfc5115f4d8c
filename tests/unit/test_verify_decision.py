"""Licence verification: the decision table and the input guard (no store needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from schemas.pii import PiiMasker
from schemas.licences import LicenceRecord, candidate_keys, choose, format_verdict, verdict, well_formed
from sinks.verify import verify_licence

TODAY = dt.date(2025, 1, 15)


def record(status="valid", until=dt.date(2027, 1, 1), number="津交运管许可德字120128300595号"):
    return LicenceRecord(number, "operating_permit", "operator:91120000600037341L", "120128",
                         dt.date(2021, 1, 1), until, status)


@pytest.mark.parametrize("status, until, expected", [
    ("valid", dt.date(2027, 1, 1), "valid"),
    ("suspended", dt.date(2027, 1, 1), "suspended"),
    ("revoked", dt.date(2027, 1, 1), "revoked"),
    ("expired", dt.date(2027, 1, 1), "expired"),
    ("valid", dt.date(2025, 1, 14), "expired"),
    ("revoked", dt.date(2020, 1, 1), "revoked"),
    ("withdrawn", dt.date(2027, 1, 1), "unknown"),
])
def test_verdict_follows_register_status_then_validity_dates(status, until, expected):
    answer = verdict("N1", record(status, until), TODAY)
    assert answer.status == expected
    assert answer.register_status == status


def test_licence_valid_on_its_last_day_is_still_valid():
    assert verdict("N1", record("valid", TODAY), TODAY).status == "valid"


def test_verdict_names_type_issuing_province_dates_and_holder():
    answer = verdict("津交运管许可德字120128300595号", record(), TODAY)
    assert (answer.licence_type, answer.issuing_province, answer.issuing_province_name) == (
        "operating_permit", "12", "天津")
    assert (answer.valid_from, answer.valid_until) == ("2021-01-01", "2027-01-01")
    assert answer.holder == "operator:91120000600037341L"
    text = format_verdict(answer)
    assert "有效 valid" in text and "天津" in text


def test_no_record_is_unknown():
    answer = verdict("N404", None, TODAY)
    assert answer.status == "unknown" and answer.licence_type is None
    assert "unknown" in format_verdict(answer)


@pytest.mark.parametrize("text", [
    "x' OR 1=1 --", "1; DROP TABLE roadx.change_log", "110105********002X", "a", "ab%", "{no:String}",
    "津交运管许可德字120128300595号' OR '1'='1", "12 34 56", "",
])
def test_injection_or_masked_text_is_not_a_licence_number(text):
    assert not well_formed(text)


@pytest.mark.parametrize("text", ["津交运管许可德字120128300595号", "120101000063", "11010519491231002X",
                                  "京交执罚〔2024〕0000089号"])
def test_real_licence_numbers_are_well_formed(text):
    assert well_formed(text)


class RefusingClient:
    def query(self, *args, **kwargs):
        raise AssertionError("an ill-formed number must not reach the store")


def test_injection_is_answered_unknown_without_a_query():
    answer = verify_licence(RefusingClient(), "roadx", "x' OR '1'='1", today=TODAY)
    assert answer.status == "unknown" and answer.licence_no == "x' OR '1'='1"
    assert answer.reason.startswith("ill_formed_licence_no:") and "\"'\"" in answer.reason
    assert "not looked up" in format_verdict(answer) and "ill_formed_licence_no" in format_verdict(answer)


@pytest.mark.parametrize("text, says", [("ab", "2 characters"), ("A" * 65, "65 characters"),
                                        ("粤A 12345", "' '"), ("12345678;DROP", "';'")])
def test_an_ill_formed_number_is_told_why(text, says):
    answer = verify_licence(RefusingClient(), "roadx", text, today=TODAY)
    assert answer.status == "unknown" and says in answer.reason


def test_a_number_looked_up_and_not_found_carries_no_reason():
    assert verdict("粤交运管许可穗字440100000001", None, TODAY).reason is None


def test_qualification_number_is_also_looked_up_by_its_keyed_token():
    pii = PiiMasker(b"k" * 32)
    keys = candidate_keys("11010519491231002X", pii)
    assert f"licence:qualification:tok_{pii.token('11010519491231002X')}" in keys
    assert "licence:operating_permit:11010519491231002X" in keys
    assert candidate_keys("120101000063", None) == sorted(
        f"licence:{t}:120101000063" for t in ("operating_permit", "qualification", "transport_cert"))


def test_exact_number_match_is_preferred():
    masked = record(number="110105********002X")
    exact = record(number="11010519491231002X")
    assert choose([masked, exact], "11010519491231002X") is exact
    assert choose([masked], "11010519491231002X") is masked
    assert choose([], "x") is None
