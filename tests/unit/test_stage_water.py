"""The water registers through the stream stage: rules made from their declarations
(completeness, identifier checks, code tables), the relational rules against the registry
the stage keeps, and a case involving a ship routed to the party that registered it."""

from __future__ import annotations

import pytest

from schemas import signing
from schemas.codec import FindingCodec
from schemas import topics as th
from schemas.parties import default_parties
from streams import routing
from streams.pipeline import OWNER, StageContext, process_batch
from streams.rules import RULES_BY_ENTITY

from test_pipeline import CODEC, TOPICS, case, event, headers, inbound, only_dlq, registered, valid_uscc

PARTIES = ("44", "11", "CJ", "66")
KEYS = {p: signing.mac(b"test-master", p.encode()) for p in PARTIES}
REGISTERS = {p: frozenset(default_parties()[p].registers) for p in PARTIES}
ENTERPRISE_USCC = valid_uscc("91420100MA4K0000X")  # registered in Wuhan (420100)
IMO = "9074729"  # a valid IMO number (check digit 9)
CODEC_FINDINGS = FindingCodec(CODEC.registry)


@pytest.fixture
def ctx():
    return StageContext(CODEC, TOPICS, registered(KEYS), frozenset(PARTIES), registers=REGISTERS)


def ship(**overrides):
    record = {"ship_id": "CN20190001", "name": "长航货运1号", "imo": IMO, "mmsi": "413000001",
              "port_of_registry": "武汉", "gross_tonnage": 2999, "ship_type": "bulk_carrier",
              "operator_uscc": ENTERPRISE_USCC, "status": "active"}
    return {**record, **overrides}


def enterprise(**overrides):
    record = {"uscc": ENTERPRISE_USCC, "name": "长江航运有限公司", "permit_no": "交XS2017001",
              "business_scope": ["inland", "inter_provincial", "bulk"], "region_code": "420100", "status": "active"}
    return {**record, **overrides}


def project(**overrides):
    record = {"project_code": "2019-440300-55-01-012345", "name": "深圳港航道工程", "owner_uscc": ENTERPRISE_USCC,
              "region_code": "440300", "total_investment_yuan": 120_000_000, "start_date": 18_000,
              "end_date": 18_700, "status": "under_construction"}
    return {**record, **overrides}


def signed(ev):
    return CODEC.encode(ev, KEYS[ev["source"]["province"]])


def run(ctx, state, *events):
    batch = [inbound(signed(ev), province=ev["source"]["province"], offset=i) for i, ev in enumerate(events)]
    return process_batch(batch, ctx, state)


def finding_rules(result):
    return sorted(CODEC_FINDINGS.decode(o.value)["rule"] for o in result.outputs if o.topic == TOPICS.national_quality)


def registered_enterprise(ctx, state, **overrides):
    result = run(ctx, state, event("shipping_enterprise", enterprise(**overrides), province="CJ"))
    assert result.counts == {("accepted", "CJ"): 1}, result.outputs
    return result


def test_a_good_ship_from_changjiang_is_accepted_and_registered(ctx):
    state = {}
    registered_enterprise(ctx, state)
    ev = event("ship", ship(), province="CJ")
    result = run(ctx, state, ev)
    assert result.counts == {("accepted", "CJ"): 1}
    assert [o.topic for o in result.outputs] == [TOPICS.national_changes]
    assert result.outputs[0].key == b"ship:CN20190001"
    assert result.ownership == [("ship:CN20190001", "CJ/420100")]  # the operator's USCC region
    assert state[OWNER + "ship:CN20190001"] == "CJ/420100"


def test_an_imo_with_a_wrong_check_digit_is_rejected(ctx):
    result = run(ctx, {}, event("ship", ship(imo="9074728"), province="CJ"))
    dead = only_dlq(result)
    assert headers(dead)[th.DLQ_RULE] == b"invalid_imo"
    assert b"check digit" in headers(dead)[th.DLQ_REASON]
    assert result.rejects == {("invalid_imo", "CJ"): 1}


def test_an_mmsi_of_the_wrong_length_is_rejected_and_not_also_warned_about(ctx):
    result = run(ctx, {}, event("ship", ship(mmsi="41300001"), province="CJ"))
    assert headers(only_dlq(result))[th.DLQ_RULE] == b"invalid_mmsi"
    assert "mmsi_foreign_mid" not in finding_rules(result)


def test_a_foreign_mid_is_a_warning_and_the_ship_is_accepted(ctx):
    state = {}
    registered_enterprise(ctx, state)
    result = run(ctx, state, event("ship", ship(mmsi="477000001"), province="CJ"))
    assert result.counts == {("accepted", "CJ"): 1}
    assert finding_rules(result) == ["mmsi_foreign_mid"]
    assert result.findings == {("CJ", "conformity", "warning"): 1}


def test_a_ship_whose_operator_is_unknown_is_accepted_with_a_provisional_relational_finding(ctx):
    result = run(ctx, {}, event("ship", ship(), province="CJ"))
    assert result.counts == {("accepted", "CJ"): 1}
    (out,) = [o for o in result.outputs if o.topic == TOPICS.national_quality]
    finding = CODEC_FINDINGS.decode(out.value)
    assert (finding["rule"], finding["dimension"], finding["severity"]) == (
        "unknown_shipping_enterprise", "relational", "warning")
    assert finding["ref_key"] == f"shipping_enterprise:{ENTERPRISE_USCC}"
    assert "shipping_enterprise_without_permit" not in finding_rules(result)  # unknown says it already


def test_an_operator_without_a_valid_permit_is_a_relational_warning_until_it_holds_one(ctx):
    state = {}
    registered_enterprise(ctx, state, status="suspended")
    assert state.get(OWNER + routing.permit_key(f"shipping_enterprise:{ENTERPRISE_USCC}")) is None
    result = run(ctx, state, event("ship", ship(), province="CJ"))
    assert finding_rules(result) == ["shipping_enterprise_without_permit"]
    again = run(ctx, state, event("shipping_enterprise", enterprise(), province="CJ"))
    assert (routing.permit_key(f"shipping_enterprise:{ENTERPRISE_USCC}"), "CJ/420100") in again.ownership
    assert finding_rules(run(ctx, state, event("ship", ship(name="长航货运2号"), province="CJ"))) == []


def test_code_tables_and_formats_that_are_unconfirmed_only_warn(ctx):
    result = run(ctx, {}, event("shipping_enterprise", enterprise(permit_no="许可123", business_scope=["space"],
                                                                  status="弄丢了"), province="CJ"))
    assert result.counts == {("accepted", "CJ"): 1}
    assert finding_rules(result) == ["unknown_business_scope", "unknown_status", "water_permit_format"]


def test_a_required_field_missing_is_rejected(ctx):
    result = run(ctx, {}, event("ship", ship(port_of_registry=" "), province="CJ"))
    assert headers(only_dlq(result))[th.DLQ_RULE] == b"required_field"


def test_a_provinces_record_names_a_region_of_its_own_a_navigation_administrations_is_not_checked(ctx):
    state = {}
    registered_enterprise(ctx, state)
    ours = run(ctx, state, event("waterway_project", project(), province="44"))
    assert ours.counts == {("accepted", "44"): 1} and finding_rules(ours) == []
    away = run(ctx, state, event("waterway_project", project(project_code="2019-420100-55-01-000002",
                                                              region_code="420100"), province="44"))
    assert finding_rules(away) == ["region_outside_party"]
    assert finding_rules(run(ctx, state, event("waterway_project", project(region_code="420100"),
                                               province="CJ"))) == []


def test_a_projects_owner_is_known_in_any_enterprise_register_and_its_period_runs_forward(ctx):
    unknown = run(ctx, {}, event("waterway_project", project(), province="44"))
    assert finding_rules(unknown) == ["unknown_project_owner"]
    backwards = run(ctx, {}, event("waterway_project", project(end_date=17_000), province="44"))
    assert headers(only_dlq(backwards))[th.DLQ_RULE] == b"invalid_period"


def test_a_case_involving_a_ship_registered_by_changjiang_is_routed_there(ctx):
    state = {}
    registered_enterprise(ctx, state)
    run(ctx, state, event("ship", ship(), province="CJ"))
    result = run(ctx, state, event("case", case(involved_plate=None, involved_ship_id="CN20190001")))
    assert result.counts == {("accepted", "44"): 1}
    (routed,) = [o for o in result.outputs if o.topic.startswith("t.xprov.")]
    assert routed.topic == TOPICS.province_inbound("CJ") == "t.xprov.CJ.inbound"
    assert headers(routed)[th.ROUTED_TO] == b"CJ" and headers(routed)[th.ROUTED_REASON] == b"involved_ship_id"
    assert headers(routed)[th.ROUTED_REGION] == b"420100"
    assert "case_without_party" not in finding_rules(result)


def test_a_case_involving_a_ship_no_register_holds_is_routed_nowhere(ctx):
    result = run(ctx, {}, event("case", case(involved_plate=None, involved_ship_id="CN_UNKNOWN")))
    assert result.counts == {("accepted", "44"): 1} and result.routed == {}


def test_the_road_registers_ownership_entries_are_what_they_were():
    assert routing.OWNED["vehicle"] == (("plate",), False)
    assert {e: routing.OWNED[e] for e in ("operator", "practitioner")} == {"operator": ((), False),
                                                                           "practitioner": ((), False)}
    assert "licence" not in routing.OWNED and "case" not in routing.OWNED


def test_every_register_has_rules_and_each_water_rule_is_the_declarations():
    from schemas import registers

    assert set(RULES_BY_ENTITY) == {r.entity_type for r in registers.declarations()}
    for entity in ("ship", "shipping_enterprise", "port_enterprise", "waterway_project"):
        declared = registers.declaration(entity)
        named = {(f.name, code, sev) for f in declared.fields
                 for sev, codes in (("error", f.errors), ("warning", f.warnings)) for code in codes}
        made = {(r.field, r.code, r.severity) for r in RULES_BY_ENTITY[entity]
                if r.code not in ("required_field", "expected_field", "field_too_long")}
        assert made == named, entity
