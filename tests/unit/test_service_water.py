"""The information service's water-register lookups, pure: what a caller may ask (and the rule a
bad identifier breaks), how a ship's change indexes it, and the answers per register."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import uscc

from schemas.pii import PiiMasker
from streams.errors import BadQuestion
from streams.service.answers import Answers
from streams.service.openapi import WATER_ROUTES, openapi_document
from streams.service.questions import WATER_KINDS, lookup_questions, question
from streams.service.register import Change, index_prefix, plan_changes

TS = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
USCC = "91420100MA4K00001" + uscc.calc_check_digit("91420100MA4K00001")
IMO = "9074729"  # a valid IMO number (check digit 9)
MMSI = "413123456"


class Sorted(dict):
    def items_from(self, prefix):
        return iter(sorted((k, v) for k, v in self.items() if k >= prefix))


def event(entity_type, key, record, seq, op="c", party="CJ"):
    return {"event_id": f"e{seq}{key}", "op": op, "entity_type": entity_type, "entity_key": key,
            "after": None if op == "d" else record, "before": record if op == "d" else None,
            "source": {"province": party, "seq": seq}, "ts_ms": TS}


def apply(store, *events):
    changes = [Change(0, n, e) for n, e in enumerate(events)]
    for key, value in plan_changes(changes, store.get, lambda v: f"T{v}").items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    return store


def ship(ship_id="CN20190001234", imo=IMO, mmsi=MMSI, operator=USCC):
    return {"ship_id": ship_id, "name": "长江之星", "imo": imo, "mmsi": mmsi, "port_of_registry": "武汉",
            "gross_tonnage": 2999, "ship_type": "bulk_carrier", "operator_uscc": operator, "status": "active"}


def register():
    return apply(
        Sorted(),
        event("ship", "ship:CN20190001234", ship(), 1),
        event("ship", "ship:CN20190005678", ship("CN20190005678", imo=None, mmsi="413000001"), 2),
        event("shipping_enterprise", f"shipping_enterprise:{USCC}",
              {"uscc": USCC, "name": "长航货运有限公司", "permit_no": "交XS2017001", "business_scope": ["inland"],
               "region_code": "420100", "status": "active"}, 3),
        event("operator", f"operator:{USCC}", {"uscc": USCC, "name": "武汉道路运输公司", "region_code": "420100",
                                               "status": "active"}, 4, party="42"),
        event("port_enterprise", f"port_enterprise:{USCC}", {"uscc": USCC, "name": "武汉港务集团",
                                                             "port": "武汉港", "region_code": "420100",
                                                             "status": "active"}, 5),
        event("waterway_project", "waterway_project:2019-420100-55-01-012345",
              {"project_code": "2019-420100-55-01-012345", "name": "长江航道整治工程", "owner_uscc": USCC,
               "region_code": "420100", "status": "active"}, 6),
    )


def answers(store):
    return Answers(store, PiiMasker(b"k" * 32))


# -- questions ------------------------------------------------------------------------------

def test_water_identifiers_are_asked_in_the_form_the_register_keeps():
    assert question("ship_imo", "IMO 9074729").value == IMO
    assert question("ship_mmsi", "４１３１２３４５６").value == MMSI  # full-width digits
    assert question("shipping_enterprise", USCC.lower()).value == USCC
    assert question("waterway_project", " 2019-420100-55-01-012345 ").value == "2019-420100-55-01-012345"
    assert question("ship", "CN20190001234").value == "CN20190001234"


@pytest.mark.parametrize("kind, raw, rule", [
    ("ship_imo", "9074728", "invalid_imo"),  # wrong check digit
    ("ship_imo", "IMO12345", "invalid_imo"),
    ("ship_mmsi", "41312345", "invalid_mmsi"),  # 8 digits
    ("ship_mmsi", "41312345X", "invalid_mmsi"),
    ("shipping_enterprise", "91420100MA4K000010", "invalid_uscc"),
    ("port_enterprise", "123", "invalid_uscc"),
    ("ship", "", "missing_identifier"),
    ("waterway_project", "x" * 65, "identifier_too_long"),
])
def test_a_bad_water_identifier_is_refused_naming_the_rule(kind, raw, rule):
    with pytest.raises(BadQuestion) as refused:
        question(kind, raw)
    assert (refused.value.status, refused.value.rule) == (400, rule)


def test_a_foreign_mmsi_is_asked_all_the_same():
    assert question("ship_mmsi", "636012345").value == "636012345"  # a foreign MID only warns at the hub


def test_lookups_take_the_water_kinds_among_the_others():
    asked = lookup_questions({"lookups": [{"kind": "ship_imo", "id": IMO}, {"kind": "ship_mmsi", "id": "1"},
                                          {"kind": "port_enterprise", "id": USCC}]})
    assert asked[0].kind == "ship_imo" and asked[2].kind == "port_enterprise"
    assert isinstance(asked[1], BadQuestion) and asked[1].rule == "invalid_mmsi"


def test_the_openapi_document_names_every_water_route_and_kind():
    document = openapi_document()
    for kind, path, param in WATER_ROUTES:
        assert kind in WATER_KINDS
        assert document["paths"][path]["get"]["parameters"][0]["name"] == param
        assert "400" in document["paths"][path]["get"]["responses"]
    kinds = (document["paths"]["/v1/lookups"]["post"]["requestBody"]["content"]["application/json"]["schema"]
             ["properties"]["lookups"]["items"]["properties"]["kind"]["enum"])
    assert set(WATER_KINDS) <= set(kinds)
    assert {"/v1/ships/{ship_id}", "/v1/ships/by-imo/{imo}", "/v1/ships/by-mmsi/{mmsi}",
            "/v1/shipping-enterprises/{uscc}", "/v1/port-enterprises/{uscc}",
            "/v1/waterway-projects/{project_code}"} <= set(document["paths"])


# -- the register and its answers -------------------------------------------------------------

def test_a_ship_is_indexed_by_imo_mmsi_and_its_shipping_enterprise_and_moves_with_its_record():
    store = register()
    assert index_prefix("imo", IMO) + "ship:CN20190001234" in store
    assert index_prefix("mmsi", MMSI) + "ship:CN20190001234" in store
    assert index_prefix("entship", USCC) + "ship:CN20190001234" in store
    assert index_prefix("opveh", USCC) + "ship:CN20190001234" not in store  # a ship is no operator's vehicle
    apply(store, event("ship", "ship:CN20190001234", ship(mmsi="413999999"), 7, "u"))
    assert index_prefix("mmsi", MMSI) + "ship:CN20190001234" not in store
    assert index_prefix("mmsi", "413999999") + "ship:CN20190001234" in store


def test_a_ship_is_found_by_ship_id_imo_and_mmsi():
    found = answers(register())
    for kind, value in (("ship", "CN20190001234"), ("ship_imo", "IMO9074729"), ("ship_mmsi", MMSI)):
        answer = found.entity(question(kind, value), "CJ")
        assert (answer["entity_type"], answer["entity_key"], answer["province"]) == ("ship", "ship:CN20190001234", "CJ")
        assert answer["record"]["imo"] == IMO and answer["masked"] is False
    other = found.entity(question("ship", "CN20190001234"), "44")
    assert other["masked"] is True and other["record"]["name"] == "长江之星"


def test_a_usccs_operator_and_shipping_enterprise_are_answered_each_from_its_register():
    found = answers(register())
    enterprise = found.entity(question("shipping_enterprise", USCC), "CJ")
    assert enterprise["entity_type"] == "shipping_enterprise" and enterprise["record"]["name"] == "长航货运有限公司"
    assert enterprise["ships"] == ["ship:CN20190001234", "ship:CN20190005678"]
    port = found.entity(question("port_enterprise", USCC), "CJ")
    assert (port["entity_type"], port["record"]["port"]) == ("port_enterprise", "武汉港")
    operator = found.entity(question("operator", USCC), "42")
    assert operator["entity_type"] == "operator" and operator["vehicles"] == []


def test_a_project_is_found_by_its_code_and_an_unknown_one_is_404():
    found = answers(register())
    project = found.entity(question("waterway_project", "2019-420100-55-01-012345"), "CJ")
    assert project["record"]["owner_uscc"] == USCC
    with pytest.raises(BadQuestion) as refused:
        found.entity(question("waterway_project", "2020-420100-55-01-000001"), "CJ")
    assert (refused.value.status, refused.value.rule) == (404, "not_found")
    assert "waterway_project with project_code 2020-420100-55-01-000001" in refused.value.message


def test_a_deleted_ship_is_no_longer_found_by_any_of_its_numbers():
    store = register()
    apply(store, event("ship", "ship:CN20190001234", ship(), 8, "d"))
    found = answers(store)
    for kind, value in (("ship", "CN20190001234"), ("ship_imo", IMO), ("ship_mmsi", MMSI)):
        with pytest.raises(BadQuestion) as refused:
            found.entity(question(kind, value), "CJ")
        assert refused.value.status == 404
    assert found.entity(question("shipping_enterprise", USCC), "CJ")["ships"] == ["ship:CN20190005678"]


def test_two_ships_claiming_one_imo_are_both_answered():
    store = register()
    apply(store, event("ship", "ship:CN20200000001", ship("CN20200000001", mmsi="413000002"), 9, party="ZJ"))
    answer = answers(store).entity(question("ship_imo", IMO), "CJ")
    assert [m["entity_key"] for m in answer["matches"]] == ["ship:CN20190001234", "ship:CN20200000001"]
