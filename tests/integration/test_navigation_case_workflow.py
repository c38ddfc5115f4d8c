"""A case involving a ship the Changjiang administration (CJ) registered, through the real stream
worker and case workflows: Guangdong (44) files it, the worker routes it to xprov.CJ.inbound, CJ
acknowledges and answers it on prov.CJ.replies, both reach 44 under the case's correlation id,
and the workflow is closed as a province's is: a second answer is refused (workflow_closed)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from confluent_kafka import Producer

from schemas import topics as th
from schemas.codec import EventCodec, ReplyCodec
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from deploy.topics import create_topics, exchange_topics
from parts import running_part
from test_party_worker import change, read_until
from test_water_worker import enterprise, ship, ship_case

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(bootstrap, unique, tmp_path):
    s = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"tn{unique}.",
                 provinces=("44", "CJ"), stream_batch_size=100, partitions=1, national_partitions=1,
                 case_check_seconds=0.5)
    create_topics(bootstrap, exchange_topics(s))
    return s


def test_a_case_about_a_changjiang_ship_is_routed_to_changjiang_which_answers_it_as_a_province_would(settings):
    names, codec = settings.topics, EventCodec(EmbeddedRegistry())
    replies = ReplyCodec(EmbeddedRegistry())
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True})
    cj = settings.province_key("CJ")
    for etype, record in (("shipping_enterprise", enterprise()), ("ship", ship())):
        event = change(etype, record, "CJ")
        producer.produce(names.province_changes("CJ"), codec.encode(event, cj), event["entity_key"].encode())
    assert producer.flush(30) == 0

    def reply(kind, correlation, key, **more):
        body = {"reply_id": str(uuid.uuid4()), "correlation_id": correlation, "case_key": key, "from_province": "CJ",
                "kind": kind, "outcome": None, "reason": None, "redirect_to": None, "note": None,
                "ts": dt.datetime.now(dt.timezone.utc), **more}
        producer.produce(names.province_replies("CJ"), replies.encode(body, cj), key.encode())
        assert producer.flush(30) == 0
        return body["reply_id"]

    worker_log, cases_log = settings.data_dir / "worker.log", settings.data_dir / "cases.log"
    with running_part("streams", settings, worker_log) as worker, running_part("cases", settings, cases_log) as cases:
        read_until(settings, {names.national_changes: 2}, worker, worker_log)
        case = change("case", ship_case(), "44")
        producer.produce(names.province_changes("44"), codec.encode(case, settings.province_key("44")),
                         case["entity_key"].encode())
        assert producer.flush(30) == 0
        (routed,) = read_until(settings, {names.province_inbound("CJ"): 1}, worker, worker_log)[
            names.province_inbound("CJ")]
        routed_headers = {k: v.decode() for k, v in routed.headers()}
        assert (routed_headers[th.ROUTED_FROM], routed_headers[th.ROUTED_TO], routed_headers[th.ROUTED_REASON],
                routed_headers[th.ROUTED_REGION]) == ("44", "CJ", "involved_ship_id", "420100")
        correlation, key = routed_headers[th.ROUTED_CORRELATION_ID], routed.key().decode()

        receipt = reply("receipt", correlation, key)
        answer = reply("answer", correlation, key, outcome="action_taken", note="已登轮检查，责令整改")
        back = read_until(settings, {names.province_inbound("44"): 2}, cases, cases_log)[names.province_inbound("44")]
        reply("answer", correlation, key, outcome="closed")  # a second answer: the workflow is closed
        dead = read_until(settings, {names.national_dlq: 1}, cases, cases_log)[names.national_dlq]

    forwarded = [{k: v.decode() for k, v in m.headers()} for m in back]
    assert [(h[th.REPLY_KIND], h[th.REPLY_ID], h[th.ROUTED_CORRELATION_ID]) for h in forwarded] == [
        ("receipt", receipt, correlation), ("answer", answer, correlation)]
    assert replies.decode(back[1].value())[1]["from_province"] == "CJ"
    assert [dict(m.headers())[th.DLQ_RULE] for m in dead] == [b"workflow_closed"]
