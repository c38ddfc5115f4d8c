"""``roadx cases`` against a running stack (``roadx up``): a case from 44 routed to 11, 11's
receipt and answer sent with ``roadx cases``, the case workflows forwarding both to 44 and
the sink storing them, ``roadx cases show`` and ``list`` reading the result; bad input refused.

Every command runs as a subprocess with no ``ROADX_*`` variable but those a test sets.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Producer

from schemas import topics as th
from schemas.codec import EventCodec, ReplyCodec
from schemas.kafka import read_topics
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from test_cases import case
from test_cli_stack import roadx, wait_until_gone

pytestmark = pytest.mark.integration

WAIT_SECONDS = 120


@pytest.fixture
def stack(tmp_path):
    data_dir = tmp_path / "roadx"
    up = roadx("up", "--data-dir", str(data_dir))
    try:
        assert up.returncode == 0, up.stderr
        yield data_dir
    finally:
        down = roadx("down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stderr
        assert wait_until_gone(data_dir) == []


def until(what, ask, ok):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        got = ask()
        if ok(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {got}")
        time.sleep(0.5)


def test_a_province_replies_with_roadx_cases_and_the_origin_and_the_store_see_it(stack):
    data_dir = stack
    info = json.loads((data_dir / "stack.json").read_text("utf-8"))
    settings = Settings(data_dir=data_dir, bootstrap_servers=info["bootstrap_servers"])
    event, correlation = case("粤深交执2024777"), str(uuid.uuid4())
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"})
    producer.produce(settings.topics.province_inbound("11"), EventCodec(EmbeddedRegistry()).encode(event),
                     event["entity_key"].encode(), headers=[
                         (th.ROUTED_FROM, b"44"), (th.ROUTED_TO, b"11"), (th.ROUTED_REASON, b"involved_plate"),
                         (th.ROUTED_CORRELATION_ID, correlation.encode()), (th.ROUTED_STAGE, b"filed"),
                         (th.ROUTED_REGION, b"110105")])
    assert producer.flush(30) == 0
    d = ("--data-dir", str(data_dir))

    def show():
        return roadx("cases", "show", correlation, "--json", *d)

    shown = until("the routed case in the store", show, lambda r: r.returncode == 0)
    [routed] = json.loads(shown.stdout)
    assert (routed["target"], routed["origin"], routed["state"], routed["case_key"]) == (
        "11", "44", "routed", event["entity_key"])

    for args, message in (
            (("answer", correlation, "--province", "11"), "an answer says its outcome"),
            (("decline", correlation, "--province", "11"), "a decline says why"),
            (("receipt", correlation, "--province", "31"), "was routed to 11, not 31"),
            (("receipt", correlation, "--province", "99"), "--party '99' is not a party of the exchange"),
            (("receipt", str(uuid.uuid4()), "--province", "11"), "unknown correlation id"),
            (("show", str(uuid.uuid4())), "unknown correlation id"),
            (("list", "--party", "xx"), "is not a party"),
            (("list", "--province", "11", "--region", "4403"),
             "--region: invalid_region_code: '4403' is not within the jurisdiction of party 11"),
            (("list", "--province", "11", "--region", "11'--"), "nor a region prefix"),
            (("list", "--province", "11", "--region", "ZZ"), "'ZZ' is neither a party of the exchange"),
            # CJ is a party, but not one taking part in this exchange
            (("list", "--province", "11", "--region", "CJ"), "'CJ' is neither a party of the exchange")):
        refused = roadx("cases", *args, *d)
        assert refused.returncode == 2 and refused.stderr.startswith("roadx: error: ") and message in refused.stderr, \
            (args, refused.stderr)

    receipt = roadx("cases", "receipt", correlation, "--province", "11", "--json", *d)
    assert receipt.returncode == 0, receipt.stderr
    answer = roadx("cases", "answer", correlation, "--province", "11", "--outcome", "penalty",
                   "--note", "罚款已执行", "--json", *d)
    assert answer.returncode == 0, answer.stderr
    sent = [json.loads(receipt.stdout)["reply_id"], json.loads(answer.stdout)["reply_id"]]
    assert json.loads(answer.stdout)["topic"] == settings.topics.province_replies("11")

    shown = until("the answer in the store", show,
                  lambda r: r.returncode == 0 and json.loads(r.stdout)[0]["state"] == "answered")
    [done] = json.loads(shown.stdout)
    assert (done["outcome"], done["replies"], done["overdue"]) == ("penalty", 2, False)
    assert done["received_at"] <= done["answered_at"]
    text = roadx("cases", "show", correlation, *d)
    assert text.returncode == 0 and "answered" in text.stdout and "outcome: penalty" in text.stdout
    listed = roadx("cases", "list", "--province", "11", "--json", *d)
    assert [(w["correlation_id"], w["region"]) for w in json.loads(listed.stdout)] == [(correlation, "110105")]
    city = roadx("cases", "list", "--province", "11", "--region", "1101", *d)
    assert city.returncode == 0 and correlation in city.stdout and "110105" in city.stdout
    whole = roadx("cases", "list", "--party", "11", "--region", "11", *d)  # the party's own code: all of it
    assert whole.returncode == 0 and correlation in whole.stdout
    other_city = roadx("cases", "list", "--province", "11", "--region", "1102", *d)
    assert other_city.returncode == 0 and other_city.stdout.strip() == "no cases routed to 11"
    still_open = roadx("cases", "list", "--province", "11", "--open", *d)
    assert still_open.returncode == 0 and still_open.stdout.strip() == "no open cases routed to 11"

    inbound_44 = [m for batch in read_topics({"bootstrap.servers": settings.bootstrap_servers},
                                             f"r{uuid.uuid4().hex[:6]}", [settings.topics.province_inbound("44")],
                                             error=AssertionError, what="xprov.44.inbound") for m in batch]
    back = [({k: v.decode() for k, v in m.headers() or []}, m.value()) for m in inbound_44]
    assert [(h[th.REPLY_KIND], h[th.REPLY_ID], h[th.ROUTED_CORRELATION_ID], h[th.ROUTED_FROM])
            for h, _ in back] == [("receipt", sent[0], correlation, "11"), ("answer", sent[1], correlation, "11")]
    codec = ReplyCodec(EmbeddedRegistry())
    assert all(codec.signed_with(value, settings.province_key("11")) for _, value in back)
    assert codec.decode(back[1][1])[1]["note"] == "罚款已执行"
