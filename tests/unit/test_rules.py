"""Each data-quality rule as a pure function over a record."""

from __future__ import annotations

import datetime as dt

import pytest

from streams import rules

from test_pipeline import ID_44, USCC_11, USCC_44, case, operator


def vehicle(**overrides):
    record = {
        "plate": "粤B12345", "plate_color": 2, "vin": "LFV2A21K5C4123456", "vehicle_class": "truck",
        "operator_uscc": USCC_44, "transport_cert_no": "440300123456", "seats": None, "tonnage_kg": 20000,
        "status": "active",
    }
    return {**record, **overrides}


def practitioner(**overrides):
    record = {
        "id_number": ID_44, "name": "张三", "qualification_cert_no": "440300199001011234",
        "qualification_types": ["freight"], "region_code": "440300", "employer_uscc": USCC_44, "status": "active",
    }
    return {**record, **overrides}


def licence(**overrides):
    record = {
        "licence_no": "粤440300L0001", "licence_type": "operating_permit", "holder_key": f"operator:{USCC_44}",
        "issuer_region_code": "440300", "valid_from": dt.date(2024, 1, 1), "valid_until": dt.date(2028, 1, 1),
        "status": "valid",
    }
    return {**record, **overrides}


REGISTERED = {f"operator:{USCC_44}": "44", "plate:粤B12345": "44"}


def facts(last=None, province="44", registry=None):
    table = REGISTERED if registry is None else registry
    return rules.Facts(table.get, last, province)


def codes(entity, record, **kw):
    return [(f.rule.code, f.rule.field, f.rule.severity) for f in rules.evaluate(entity, record, facts(**kw))]


RECORDS = {"operator": operator, "vehicle": vehicle, "practitioner": practitioner, "licence": licence, "case": case}


@pytest.mark.parametrize("entity", ["operator", "vehicle", "practitioner", "licence"])
def test_a_clean_record_raises_no_finding(entity):
    record = RECORDS[entity]()
    if entity == "operator":
        record = {**record, "permit_no": "粤交运管许可深字440300000001", "business_scope": "道路旅客运输"}
    assert codes(entity, record) == []


@pytest.mark.parametrize("entity,field", [(r.entity, r.field) for r in rules.RULES if r.code == "required_field"
                                          and r.entity in ("operator", "vehicle", "practitioner", "licence")])
def test_an_empty_required_field_is_a_completeness_error(entity, field):
    found = rules.evaluate(entity, {**RECORDS[entity](), field: ""}, facts())
    assert any(f.rule.code == "required_field" and f.rule.field == field and f.rule.severity == rules.ERROR
               and f.rule.dimension == rules.COMPLETENESS for f in found)


def test_a_missing_expected_field_is_only_a_warning():
    assert ("expected_field", "vin", "warning") in codes("vehicle", vehicle(vin=None))


@pytest.mark.parametrize("entity,change,rule", [
    ("operator", {"uscc": "91440300MA5F0000XX"}, "invalid_uscc"),
    ("operator", {"region_code": "999999"}, "invalid_region_code"),
    ("operator", {"legal_rep_id_number": "440301199001011230"}, "invalid_id_number"),
    ("vehicle", {"plate": "XX12345"}, "invalid_plate"),
    ("vehicle", {"plate_color": 77}, "invalid_plate_color"),
    ("vehicle", {"vehicle_class": "spaceship"}, "unknown_vehicle_class"),
    ("vehicle", {"status": "flying"}, "unknown_status"),
    ("practitioner", {"id_number": "440301199001011230"}, "invalid_id_number"),
    ("licence", {"licence_type": "fishing"}, "unknown_licence_type"),
    ("licence", {"status": "lost"}, "unknown_status"),
    ("licence", {"valid_from": dt.date(2029, 1, 1)}, "invalid_validity"),
    ("licence", {"valid_until": dt.date(9999, 12, 31)}, "implausible_date"),
    ("case", {"stage": "appealed"}, "unknown_case_stage"),
    ("case", {"occurred_at": dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)}, "implausible_date"),
    ("case", {"involved_plate": "not a plate"}, "invalid_plate"),
    ("operator", {"name": "名" * 10_000_000}, "field_too_long"),
])
def test_a_broken_standard_or_code_is_a_conformity_error(entity, change, rule):
    found = rules.evaluate(entity, {**RECORDS[entity](), **change}, facts())
    hit = [f for f in found if f.rule.code == rule]
    assert hit and hit[0].rule.severity == rules.ERROR and hit[0].rule.dimension == rules.CONFORMITY
    assert found[0].rule.severity == rules.ERROR  # errors come first


def test_a_vehicle_of_an_unregistered_operator_is_a_relational_warning():
    assert ("unknown_operator", "operator_uscc", "warning") in codes("vehicle", vehicle(operator_uscc=USCC_11))


def test_a_licence_of_an_unknown_holder_is_a_relational_warning():
    assert ("unknown_holder", "holder_key", "warning") in codes("licence", licence(holder_key="practitioner:X"))


def test_a_plate_of_another_province_is_a_relational_warning():
    assert ("plate_province_mismatch", "plate", "warning") in codes("vehicle", vehicle(plate="京A12345"))


def test_a_case_stage_may_only_move_forward():
    assert codes("case", case(stage="decided"), last={"stage": "filed"}) == []
    assert ("case_stage_backwards", "stage", "error") in codes("case", case(stage="filed"), last={"stage": "decided"})


def test_a_case_with_no_involved_party_is_flagged():
    record = case(involved_plate=None, involved_operator_uscc=None, involved_id_number=None)
    assert ("case_without_party", None, "warning") in codes("case", record)


def test_every_rule_declares_a_known_dimension_and_severity():
    assert {r.dimension for r in rules.RULES} <= {rules.COMPLETENESS, rules.CONFORMITY, rules.RELATIONAL}
    assert {r.severity for r in rules.RULES} == {rules.ERROR, rules.WARNING}
    assert all(r.message and r.code for r in rules.RULES)
