"""Assist requests (协查) on the real broker: ``POST /v1/assists`` answered at once from the
national register, or routed to the party that registered the entity (a province, or for a ship
the navigation administration that filed it) or the one named, where the case workflows take it
in; that party's receipt and answer reach the asking party. Every bad request is refused with
its rule, naming the field."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from schemas import topics as th
from schemas.codec import AssistCodec, ReplyCodec
from schemas.credentials import Credentials, credentials_file
from schemas.kafka import read_topics
from schemas.registry import EmbeddedRegistry

from deploy.topics import create_topics, exchange_topics
from deploy.broker import free_port
from parts import running_part
from schemas.settings import Settings
from test_service import (NOW, USCC_11, USCC_44, Caller, change, new_settings, operator, publish, running_service,
                          wait_until)
from test_water_worker import enterprise, ship

pytestmark = pytest.mark.integration


def read(settings, topic):
    return [m for batch in read_topics({"bootstrap.servers": settings.bootstrap_servers}, f"r{uuid.uuid4().hex[:6]}",
                                       [topic], error=AssertionError, what=topic) for m in batch]


def headers(message):
    return {k: v.decode() for k, v in (message.headers() or [])}


def reply(settings, assist_id, entity_key, kind, frm="11", **more):
    """The signed reply of the party asked (11 unless ``frm``) to the assist request, as its system sends it."""
    body = {"reply_id": str(uuid.uuid4()), "correlation_id": assist_id, "case_key": entity_key, "from_province": frm,
            "kind": kind, "outcome": None, "reason": None, "redirect_to": None, "note": None, "ts": NOW, **more}
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"})
    producer.produce(settings.topics.province_replies(frm), ReplyCodec(EmbeddedRegistry()).encode(
        body, settings.province_key(frm)), entity_key.encode())
    assert producer.flush(30) == 0
    return body["reply_id"]


def test_an_assist_request_is_answered_from_the_register_or_worked_by_the_province_that_registered_it(
        bootstrap, tmp_path):
    settings = new_settings(bootstrap, tmp_path).with_overrides(case_check_seconds=0.5)
    publish(settings, [change("operator", operator(USCC_11, "110105"), "11"),
                       change("operator", operator(USCC_44, "440300"), "44")])
    _c, token = Credentials.load(credentials_file(settings.data_dir)).issue("44", NOW, settings.provinces)
    service_log, cases_log = settings.data_dir / "service.log", settings.data_dir / "cases.log"
    with running_service(settings, service_log) as service, running_part("cases", settings, cases_log) as cases:
        as44 = Caller(settings, token)
        wait_until(lambda: as44.json("/v1/health")[0] == 200, service, service_log, "the register to catch up")
        ask = {"kind": "operator", "id": USCC_11, "question": "该业户是否仍在经营？", "case_no": "粤深交执2024001"}

        status, at_once = as44.json("/v1/assists", ask)
        assert status == 200 and at_once["status"] == "answered" and at_once["source"] == "national_register"
        assert at_once["answer"]["entity_key"].startswith("operator:") and at_once["answer"]["province"] == "11"

        status, routed = as44.json("/v1/assists", {**ask, "ask_province": True})
        assert status == 202, routed
        assert (routed["status"], routed["to_province"], routed["region"], routed["in_register"]) == (
            "in_progress", "11", "110105", True)
        status, unknown = as44.json("/v1/assists", {"kind": "vehicle", "id": "京A99999", "question": "车辆是否报废？"})
        assert status == 202 and (unknown["to_province"], unknown["region"], unknown["in_register"]) == (
            "11", "110000", False)

        inbound_11 = settings.topics.province_inbound("11")
        sent = read(settings, inbound_11)
        assert {headers(m)[th.ROUTED_CORRELATION_ID] for m in sent} == {routed["assist_id"], unknown["assist_id"]}
        first = next(m for m in sent if headers(m)[th.ROUTED_CORRELATION_ID] == routed["assist_id"])
        request = AssistCodec(EmbeddedRegistry()).decode(first.value())
        assert (request["from_party"], request["to_province"], request["identifier"], request["case_no"]) == (
            "44", "11", USCC_11, "粤深交执2024001")
        assert {k: headers(first)[k] for k in (th.ROUTED_KIND, th.ROUTED_REASON, th.ROUTED_FROM, th.ROUTED_REGION)} == {
            th.ROUTED_KIND: "assist", th.ROUTED_REASON: "assist", th.ROUTED_FROM: "44", th.ROUTED_REGION: "110105"}

        # 11 works it like a case: the receipt and the answer reach 44 under the assist's id
        key = first.key().decode()
        receipt = reply(settings, routed["assist_id"], key, "receipt")
        answer = reply(settings, routed["assist_id"], key, "answer", outcome="action_taken", note="仍在经营")
        inbound_44 = settings.topics.province_inbound("44")

        def back():
            return [headers(m) for m in read(settings, inbound_44)]

        wait_until(lambda: len(back()) >= 2, cases, cases_log, "11's replies at 44")
        got = back()
        assert [(h[th.REPLY_KIND], h[th.REPLY_ID], h[th.ROUTED_CORRELATION_ID]) for h in got] == [
            ("receipt", receipt, routed["assist_id"]), ("answer", answer, routed["assist_id"])]
        assert read(settings, settings.topics.national_dlq) == []

        audit = [m for m in read(settings, settings.topics.national_audit)]
        assert len(audit) >= 3  # every assist request answered is recorded, the routed ones as such


def test_an_assist_about_a_ship_goes_to_the_navigation_administration_that_registered_it_and_comes_back_answered(
        bootstrap, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                        provinces=("11", "44", "CJ"), service_port=free_port(), service_rate_per_second=500,
                        case_check_seconds=0.5)
    create_topics(bootstrap, exchange_topics(settings))
    publish(settings, [change("shipping_enterprise", enterprise(), "CJ"), change("ship", ship(), "CJ")])
    _c, token = Credentials.load(credentials_file(settings.data_dir)).issue("44", NOW, settings.provinces)
    service_log, cases_log = settings.data_dir / "service.log", settings.data_dir / "cases.log"
    with running_service(settings, service_log) as service, running_part("cases", settings, cases_log) as cases:
        as44 = Caller(settings, token)
        wait_until(lambda: as44.json("/v1/health")[0] == 200, service, service_log, "the register to catch up")
        ask = {"kind": "ship", "id": "CN20190001", "question": "该船是否仍在营运？", "case_no": "粤深交执2024009"}
        status, at_once = as44.json("/v1/assists", ask)
        assert status == 200 and at_once["answer"]["province"] == "CJ", at_once
        status, routed = as44.json("/v1/assists", {**ask, "ask_province": True})
        assert status == 202 and (routed["to_province"], routed["region"], routed["in_register"]) == (
            "CJ", "420100", True), routed
        status, named = as44.json("/v1/assists", {"kind": "operator", "id": USCC_11, "question": "是否有营运船舶？",
                                                  "to_party": "CJ"})
        assert status == 202 and (named["to_province"], named["region"], named["in_register"]) == (
            "CJ", "CJ0000", False), named  # a Beijing region is not Changjiang's: the administration as a whole

        sent = read(settings, settings.topics.province_inbound("CJ"))
        first = next(m for m in sent if headers(m)[th.ROUTED_CORRELATION_ID] == routed["assist_id"])
        request = AssistCodec(EmbeddedRegistry()).decode(first.value())
        assert (request["to_province"], request["entity_type"], request["entity_key"], headers(first)[th.ROUTED_TO]) \
            == ("CJ", "ship", "ship:CN20190001", "CJ")

        key = first.key().decode()
        receipt = reply(settings, routed["assist_id"], key, "receipt", frm="CJ")
        answer = reply(settings, routed["assist_id"], key, "answer", frm="CJ", outcome="action_taken", note="在航")

        def back():
            return [headers(m) for m in read(settings, settings.topics.province_inbound("44"))]

        wait_until(lambda: len(back()) >= 2, cases, cases_log, "CJ's replies at 44")
        assert [(h[th.REPLY_KIND], h[th.REPLY_ID], h[th.ROUTED_CORRELATION_ID]) for h in back()] == [
            ("receipt", receipt, routed["assist_id"]), ("answer", answer, routed["assist_id"])]
        assert read(settings, settings.topics.national_dlq) == []


@pytest.mark.parametrize("body, status, rule", [
    (b"not json", 400, "malformed_body"),
    ([1, 2], 400, "malformed_body"),
    ({"kind": "case", "id": "x", "question": "?"}, 400, "unknown_kind"),
    ({"kind": "operator", "id": "91110105MA00000010", "question": "?"}, 400, "invalid_uscc"),
    ({"kind": "operator", "id": "1'; DROP TABLE x; --", "question": "?"}, 400, "invalid_uscc"),
    ({"kind": "vehicle", "id": "../../etc/passwd", "question": "?"}, 400, "invalid_plate"),
    ({"kind": "operator", "id": USCC_11, "question": " "}, 400, "bad_question_text"),
    ({"kind": "operator", "id": USCC_11, "question": "x" * 1001}, 400, "bad_question_text"),
    ({"kind": "operator", "id": USCC_11, "question": "?", "case_no": ""}, 400, "bad_case_no"),
    ({"kind": "operator", "id": USCC_11, "question": "?", "ask_province": "yes"}, 400, "bad_ask_province"),
    ({"kind": "operator", "id": USCC_44, "question": "?", "ask_province": True}, 400, "own_entity"),
    ({"kind": "vehicle", "id": "粤B00001", "question": "?"}, 400, "own_entity"),
    ({"kind": "licence", "id": "京交运许可110105999999", "question": "?"}, 404, "no_province_to_ask"),
    ({"kind": "ship", "id": "CN20190009", "question": "?"}, 404, "no_province_to_ask"),
    ({"kind": "operator", "id": USCC_11, "question": "?", "to_party": "ZZ"}, 400, "unknown_party"),
    ({"kind": "operator", "id": USCC_11, "question": "?", "to_party": "CJ"}, 400, "unknown_party"),  # not taking part
    ({"kind": "operator", "id": USCC_11, "question": "?", "to_party": ["11"]}, 400, "unknown_party"),
    ({"kind": "operator", "id": USCC_11, "question": "?", "to_party": "44"}, 400, "asks_itself"),
])
def test_a_bad_assist_request_is_refused_with_its_rule(assist_service, body, status, rule):
    as44 = assist_service
    got, refusal = as44.json("/v1/assists", body if isinstance(body, bytes) else json.dumps(body).encode())
    assert (got, refusal["rule"]) == (status, rule), refusal


def test_an_assist_request_without_a_credential_is_refused(assist_service):
    status, refusal = assist_service.json("/v1/assists", {"kind": "operator", "id": USCC_11, "question": "?"},
                                          token=None)
    assert (status, refusal["rule"]) == (401, "no_credential")


@pytest.fixture(scope="module")
def assist_service(broker, tmp_path_factory):
    settings = new_settings(broker.bootstrap_servers, tmp_path_factory.mktemp("assists"))
    publish(settings, [change("operator", operator(USCC_11, "110105"), "11"),
                       change("operator", operator(USCC_44, "440300"), "44")])
    _c, token = Credentials.load(credentials_file(settings.data_dir)).issue("44", NOW, settings.provinces)
    log_path = settings.data_dir / "service.log"
    with running_service(settings, log_path) as proc:
        caller = Caller(settings, token)
        wait_until(lambda: caller.json("/v1/health")[0] == 200, proc, log_path, "the register to catch up")
        yield caller
