"""The information service on the real broker answers the water registers: a ship by ship id,
IMO or MMSI, a shipping enterprise apart from the operator of the same USCC, a port enterprise,
a project; bad identifiers are refused naming the rule."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from deploy.broker import free_port
from deploy.topics import create_topics, exchange_topics
from schemas.credentials import Credentials, credentials_file
from schemas.settings import Settings

from test_service import NOW, Caller, change, operator, publish, running_service, wait_until
from test_sink_water import ENTERPRISE, INLAND, PORT, PROJECT, SHIP, USCC

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def water_served(broker, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("water-service"), bootstrap_servers=broker.bootstrap_servers,
                        topic_prefix=f"t{uuid.uuid4().hex[:10]}.", provinces=("44", "CJ"),
                        service_port=free_port(), service_rate_per_second=500)
    create_topics(broker.bootstrap_servers, exchange_topics(settings))
    publish(settings, [
        change("shipping_enterprise", ENTERPRISE, "CJ"),
        change("ship", SHIP, "CJ", seq=2),
        change("ship", INLAND, "CJ", seq=3),
        change("port_enterprise", PORT, "CJ", seq=4),
        change("waterway_project", PROJECT, "CJ", seq=5),
        change("operator", operator(USCC, "420100"), "44", seq=6),
    ])
    store = Credentials.load(credentials_file(settings.data_dir))
    _c, token_cj = store.issue("CJ", NOW, settings.provinces)
    _c, token_44 = store.issue("44", NOW, settings.provinces)
    log_path = settings.data_dir / "service.log"
    with running_service(settings, log_path) as proc:
        as_cj = Caller(settings, token_cj)
        wait_until(lambda: as_cj.json("/v1/waterway-projects/2019-420100-55-01-012345")[0] == 200
                   and as_cj.json(f"/v1/operators/{USCC}")[0] == 200, proc, log_path, "the register to catch up")
        yield as_cj, Caller(settings, token_44)


def test_a_ship_is_answered_by_ship_id_imo_and_mmsi(water_served):
    as_cj, as_44 = water_served
    for path in ("/v1/ships/CN20190001234", "/v1/ships/by-imo/IMO9074729", "/v1/ships/by-mmsi/413123456"):
        status, ship = as_cj.json(path)
        assert status == 200, (path, ship)
        assert (ship["entity_key"], ship["province"], ship["masked"]) == ("ship:CN20190001234", "CJ", False)
        assert ship["record"]["imo"] == "9074729" and ship["record"]["operator_uscc"] == USCC
    status, seen = as_44.json("/v1/ships/by-mmsi/413000001")
    assert status == 200 and seen["record"]["name"] == "汉江货1号" and seen["masked"] is True
    status, answers = as_44.json("/v1/lookups", {"lookups": [{"kind": "ship_imo", "id": "9074729"},
                                                             {"kind": "ship_mmsi", "id": "41300000"}]})
    assert status == 200
    assert answers["answers"][0]["answer"]["entity_key"] == "ship:CN20190001234"
    assert (answers["answers"][1]["status"], answers["answers"][1]["rule"]) == (400, "invalid_mmsi")


def test_one_uscc_is_answered_from_each_register_apart(water_served):
    as_cj, _as_44 = water_served
    status, enterprise = as_cj.json(f"/v1/shipping-enterprises/{USCC}")
    assert status == 200 and enterprise["entity_type"] == "shipping_enterprise"
    assert sorted(enterprise["ships"]) == ["ship:CN20190001234", "ship:CN20190005678"]
    status, port = as_cj.json(f"/v1/port-enterprises/{USCC}")
    assert status == 200 and port["record"]["port"] == "武汉港"
    status, operator_answer = as_cj.json(f"/v1/operators/{USCC}")
    assert status == 200 and operator_answer["entity_type"] == "operator" and operator_answer["province"] == "44"
    assert operator_answer["vehicles"] == []


@pytest.mark.parametrize("path, status, rule", [
    ("/v1/ships/by-imo/9074728", 400, "invalid_imo"),
    ("/v1/ships/by-mmsi/4131234567", 400, "invalid_mmsi"),
    ("/v1/shipping-enterprises/91420100MA4K000010", 400, "invalid_uscc"),
    ("/v1/ships/CN00000000000", 404, "not_found"),
    ("/v1/waterway-projects/2020-420100-55-01-000001", 404, "not_found"),
])
def test_bad_or_unknown_water_identifiers_are_refused_naming_the_rule(water_served, path, status, rule):
    as_cj, _as_44 = water_served
    answered, body = as_cj.json(path)
    assert (answered, body["rule"]) == (status, rule)


def test_any_declared_register_is_answered_by_its_natural_key(water_served):
    as_cj, as_44 = water_served
    status, ship = as_cj.json("/v1/registers/ship/CN20190001234")
    assert status == 200 and (ship["entity_key"], ship["masked"]) == ("ship:CN20190001234", False)
    assert ship == as_cj.json("/v1/ships/CN20190001234")[1]
    status, operator_answer = as_44.json(f"/v1/registers/operator/{USCC.lower()}")  # put in canonical form
    assert status == 200 and operator_answer["entity_key"] == f"operator:{USCC}"
    status, project = as_44.json("/v1/registers/waterway_project/2019-420100-55-01-012345")
    assert status == 200 and project["province"] == "CJ"


@pytest.mark.parametrize("path, status, rule", [
    ("/v1/registers/berth/NJ-LT-01", 404, "unknown_register"),
    (f"/v1/registers/vehicle/{quote('粤B12345')}", 400, "malformed_key"),  # a vehicle's key: plate and colour
    (f"/v1/registers/vehicle/{quote('粤B12345:')}", 400, "malformed_key"),
    ("/v1/registers/ship/CN00000000000", 404, "not_found"),
    (f"/v1/registers/ship/{'9' * 65}", 400, "identifier_too_long"),
])
def test_a_register_lookup_of_an_unknown_register_or_a_malformed_key_is_refused_naming_the_rule(
        water_served, path, status, rule):
    as_cj, _as_44 = water_served
    answered, body = as_cj.json(path)
    assert (answered, body["rule"]) == (status, rule), body
