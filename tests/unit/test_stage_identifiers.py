"""The hub's identifier rules: only canonical values pass and route, one USCC allow-list,
birth dates against the stage's day, GB 32100 organisation types as a warning."""

from __future__ import annotations

import datetime as dt

import pytest

from schemas import signing
from streams import rules
from streams.pipeline import StageContext, process_batch

from test_identifiers import gb32100, with_check_digit
from test_pipeline import CODEC, KEYS, MASTER, TOPICS, registered, USCC_44, case, event, inbound, operator, signed
from test_rules import vehicle

PILOT = "91350100M000100Y44"  # a pilot code failing the GB 32100 checksum
OTHER_44 = gb32100("91440300MA5F0001X")


def facts(**kw):
    return rules.Facts({f"operator:{USCC_44}": "44", "plate:粤B12345": "44"}.get, None, "44", **kw)


def found(entity, record, **kw):
    return [(f.rule.code, f.rule.field, f.rule.severity) for f in rules.evaluate(entity, record, facts(**kw))]


@pytest.mark.parametrize("entity, record, field, rule", [
    ("operator", operator(uscc=USCC_44[:8] + " " + USCC_44[8:]), "uscc", "invalid_uscc"),
    ("operator", operator(legal_rep_id_number="11010519491231002x"), "legal_rep_id_number", "invalid_id_number"),
    ("vehicle", vehicle(operator_uscc="９" + USCC_44[1:]), "operator_uscc", "invalid_uscc"),
    ("vehicle", vehicle(plate="粤b12345"), "plate", "invalid_plate"),
    ("vehicle", vehicle(plate="粤B12345\n"), "plate", "invalid_plate"),
    ("operator", operator(region_code="440300\n"), "region_code", "invalid_region_code"),
    ("case", case(involved_operator_uscc=USCC_44[:8] + "\u3000" + USCC_44[8:]), "involved_operator_uscc",
     "invalid_uscc"),
])
def test_a_non_canonical_identifier_is_a_conformity_error(entity, record, field, rule):
    assert (rule, field, rules.ERROR) in found(entity, record)


def test_the_allow_list_given_to_the_rules_accepts_a_pilot_code():
    assert ("invalid_uscc", "uscc", rules.ERROR) in found("operator", operator(uscc=PILOT))
    assert found("operator", operator(uscc=PILOT), uscc_allow=frozenset({PILOT})) == []


def test_the_allow_list_does_not_leak_between_stages_through_the_identifier_cache():
    assert found("operator", operator(uscc=PILOT), uscc_allow=frozenset({PILOT})) == []
    assert ("invalid_uscc", "uscc", rules.ERROR) in found("operator", operator(uscc=PILOT))


def test_a_birth_date_after_the_stages_day_is_a_conformity_error():
    born = with_check_digit("44030120240602123")
    record = operator(legal_rep_id_number=born)
    assert found("operator", record, today=dt.date(2024, 6, 2)) == []
    assert ("invalid_id_number", "legal_rep_id_number", rules.ERROR) in found("operator", record,
                                                                              today=dt.date(2024, 6, 1))


def test_an_organisation_type_outside_gb32100s_table_is_a_conformity_warning():
    odd = gb32100("99440300MA5F0000X")  # 工商 lists the types 1, 2, 3 only
    assert found("operator", operator(uscc=odd)) == [("uscc_unknown_org_type", "uscc", rules.WARNING)]
    on_vehicle = found("vehicle", vehicle(operator_uscc=odd))
    assert ("uscc_unknown_org_type", "operator_uscc", rules.WARNING) in on_vehicle
    assert all(severity == rules.WARNING for _code, _field, severity in on_vehicle)
    rule = next(r for r in rules.RULES if r.code == "uscc_unknown_org_type")
    assert rule.dimension == rules.CONFORMITY


@pytest.mark.parametrize("authority", ["A", "N", "Y"])
def test_a_code_of_a_letter_registration_authority_is_accepted(authority):
    assert found("operator", operator(uscc=gb32100(f"{authority}1440300MA5F0000X"))) == []


# ---- through the stage -------------------------------------------------------------------

PROVINCES = frozenset({"11", "14", "44"})
KEYS3 = {**KEYS, "14": signing.mac(MASTER, "14".encode())}


def stage(**kw) -> StageContext:
    return StageContext(CODEC, TOPICS, registered(KEYS3), PROVINCES, **kw)


def outcome(result):
    return sorted({o.topic for o in result.outputs} - {TOPICS.national_quality})


def test_a_case_naming_a_credit_code_with_a_space_is_rejected_and_routed_nowhere():
    spaced = USCC_44[0] + " " + USCC_44[1:]  # read raw, positions 3-4 would say Shanxi (14)
    record = case(involved_plate=None, involved_operator_uscc=spaced)
    result = process_batch([inbound(signed(event("case", record, province="11")), province="11")], stage(), {})
    assert outcome(result) == [TOPICS.national_dlq]
    assert not result.routed


def test_the_allow_list_of_the_stage_context_reaches_the_rules():
    record = vehicle(operator_uscc=PILOT)
    assert outcome(process_batch([inbound(signed(event("vehicle", record)))], stage(), {})) == [TOPICS.national_dlq]
    allowed = stage(uscc_allow=frozenset({PILOT}))
    assert outcome(process_batch([inbound(signed(event("vehicle", record)))], allowed, {})) == [
        TOPICS.national_changes]


def test_the_stage_compares_birth_dates_with_the_day_of_its_clock():
    record = operator(uscc=OTHER_44, legal_rep_id_number=with_check_digit("44030120240602123"))
    raw = signed(event("operator", record))
    early = stage(today=lambda: dt.date(2024, 6, 1))
    assert outcome(process_batch([inbound(raw)], early, {})) == [TOPICS.national_dlq]
    later = stage(today=lambda: dt.date(2024, 6, 2))
    assert outcome(process_batch([inbound(raw)], later, {})) == [TOPICS.national_changes]
