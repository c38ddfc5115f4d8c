"""The water registers through the real stream worker: the Changjiang administration (CJ)
files a shipping enterprise and a ship on prov.CJ.changes, which reach national.changes; a ship
with a wrong IMO check digit goes to the DLQ under invalid_imo; a case Guangdong (44) files
against the ship is routed to xprov.CJ.inbound, the party that registered it."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from stdnum.cn import uscc

from schemas import topics as th
from schemas.codec import EventCodec
from schemas.registry import EmbeddedRegistry

from parts import running_part
from test_party_worker import change, read_until, settings  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.integration

ENTERPRISE_USCC = "91420100MA4K0000X" + uscc.calc_check_digit("91420100MA4K0000X")


def enterprise():
    return {"uscc": ENTERPRISE_USCC, "name": "长江航运有限公司", "permit_no": "交XS2017001",
            "business_scope": ["inland", "inter_provincial"], "region_code": "420100", "status": "active"}


def ship(**overrides):
    record = {"ship_id": "CN20190001", "name": "长航货运1号", "imo": "9074729", "mmsi": "413000001",
              "port_of_registry": "武汉", "gross_tonnage": 2999, "ship_type": "bulk_carrier",
              "operator_uscc": ENTERPRISE_USCC, "status": "active"}
    return {**record, **overrides}


def ship_case():
    return {"case_no": "粤交执2024009", "region_code": "440300", "stage": "filed", "violation_code": "W201",
            "occurred_at": 1_700_000_000_000, "involved_plate": None, "involved_operator_uscc": None,
            "involved_id_number": None, "penalty_cents": None, "involved_ship_id": "CN20190001"}


def test_a_ship_from_changjiang_reaches_the_national_log_and_a_case_about_it_reaches_changjiang(settings):
    names, codec = settings.topics, EventCodec(EmbeddedRegistry())
    cj = settings.province_key("CJ")
    filed = codec.encode(change("shipping_enterprise", enterprise(), "CJ"), cj)
    good = codec.encode(change("ship", ship(), "CJ"), cj)
    bad = codec.encode(change("ship", ship(ship_id="CN20190002", imo="9074728"), "CJ"), cj)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    for value, key in ((filed, f"shipping_enterprise:{ENTERPRISE_USCC}"), (good, "ship:CN20190001"),
                       (bad, "ship:CN20190002")):
        producer.produce(names.province_changes("CJ"), value=value, key=key.encode())
    assert producer.flush(30) == 0

    log = settings.data_dir / "worker.log"
    with running_part("streams", settings, log) as worker:
        got = read_until(settings, {names.national_changes: 2, names.national_dlq: 1}, worker, log)
        assert sorted(m.value() for m in got[names.national_changes]) == sorted([filed, good])
        (dead,) = got[names.national_dlq]
        assert dead.value() == bad and dict(dead.headers())[th.DLQ_RULE] == b"invalid_imo"

        case = codec.encode(change("case", ship_case(), "44"), settings.province_key("44"))
        producer.produce(names.province_changes("44"), value=case, key=b"case:W1")
        assert producer.flush(30) == 0
        routed = read_until(settings, {names.province_inbound("CJ"): 1}, worker, log)[names.province_inbound("CJ")]

    assert [m.value() for m in routed] == [case]
    routed_headers = dict(routed[0].headers())
    assert routed_headers[th.ROUTED_FROM] == b"44" and routed_headers[th.ROUTED_TO] == b"CJ"
    assert routed_headers[th.ROUTED_REASON] == b"involved_ship_id"
