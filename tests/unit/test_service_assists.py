"""The assist request's pure parts: what a body may ask (any register but the case's, any party of
the exchange), where the entity asked about is registered, and the request routed — its region
in the jurisdiction of the party asked, else that party as a whole."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import uscc

from schemas.parties import default_parties
from streams.errors import BadQuestion
from streams.service.assists import KINDS, assist_ask, assist_request, home_of

PARTIES = default_parties()
TAKING_PART = ("11", "44", "66", "CJ")
ENTERPRISE_USCC = "91420100MA4K0000X" + uscc.calc_check_digit("91420100MA4K0000X")
CORPS_USCC = "91660100MA7800000" + uscc.calc_check_digit("91660100MA7800000")
NOW = dt.datetime(2024, 6, 3, 9, 30, tzinfo=dt.timezone.utc)


def ask(**body):
    return assist_ask({"kind": "ship", "id": "CN20190001", "question": "该船是否仍在营运？", **body},
                      parties=TAKING_PART, asker="44")


def ship_entry(party="CJ"):
    return {"province": party, "entity_key": "ship:CN20190001",
            "record": {"ship_id": "CN20190001", "operator_uscc": ENTERPRISE_USCC}}


def test_an_assist_asks_about_any_register_but_the_cases():
    assert KINDS == ("operator", "vehicle", "practitioner", "licence", "ship", "shipping_enterprise",
                     "port_enterprise", "waterway_project")
    assert ask().question.kind == "ship" and ask().to_party is None
    assert ask(to_party="CJ").to_party == "CJ"


@pytest.mark.parametrize("body, rule, names", [
    ({"kind": "case"}, "unknown_kind", "kind 'case'"),
    ({"kind": "ship_imo"}, "unknown_kind", "kind 'ship_imo'"),
    ({"to_party": "ZZ"}, "unknown_party", "to_party 'ZZ' is not a party of this exchange: one of 11, 44, 66, CJ"),
    ({"to_party": "ZJ"}, "unknown_party", "to_party 'ZJ'"),  # a party, but not one taking part
    ({"to_party": 44}, "unknown_party", "to_party '44'"),
    ({"to_party": "44"}, "asks_itself", "to_party 44: a party does not ask itself"),
    ({"kind": "shipping_enterprise", "id": "91420100MA4K00000"}, "invalid_uscc", "91420100MA4K00000"),
])
def test_a_bad_body_is_refused_naming_the_field(body, rule, names):
    with pytest.raises(BadQuestion) as refused:
        ask(**body)
    assert (refused.value.status, refused.value.rule) == (400, rule) and names in refused.value.message


def test_an_entity_in_a_register_is_registered_where_its_publisher_is_in_its_registration_region():
    assert home_of(ask().question, ship_entry()) == ("CJ", "420100")  # the operator's USCC's region
    project = {"province": "ZJ", "entity_key": "waterway_project:P1", "record": {"region_code": "440100"}}
    q = ask(kind="waterway_project", id="2019-440100-55-01-000001").question
    assert home_of(q, project) == ("ZJ", "440100")


def test_an_entity_no_register_holds_is_registered_where_its_identifier_says_or_nowhere():
    assert home_of(ask().question, None) is None  # a ship id embeds no region
    assert home_of(ask(kind="shipping_enterprise", id=ENTERPRISE_USCC).question, None) == ("42", "420100")
    assert home_of(ask(kind="operator", id=CORPS_USCC).question, None) == ("66", "660100")


def test_the_request_names_a_region_of_the_party_asked_else_the_party_as_a_whole():
    routed = assist_request(ask(), "44", PARTIES["CJ"], "420100", ship_entry(), NOW)
    assert {k: routed[k] for k in ("from_party", "to_province", "entity_type", "entity_key", "region",
                                   "in_register")} == {
        "from_party": "44", "to_province": "CJ", "entity_type": "ship", "entity_key": "ship:CN20190001",
        "region": "420100", "in_register": True}
    outside = assist_request(ask(), "44", PARTIES["CJ"], "440300", None, NOW)
    assert (outside["region"], outside["entity_key"], outside["in_register"]) == ("CJ0000", "ship:CN20190001", False)
    assert assist_request(ask(), "44", PARTIES["CJ"], "", None, NOW)["region"] == "CJ0000"
    corps = assist_request(ask(kind="operator", id=CORPS_USCC), "44", PARTIES["66"], "660100", None, NOW)
    assert (corps["region"], corps["entity_key"]) == ("660100", f"operator:{CORPS_USCC}")
    assert assist_request(ask(kind="operator", id=CORPS_USCC), "44", PARTIES["11"], "660100", None,
                          NOW)["region"] == "110000"
