"""The case workflows (``roadx worker cases``) on the real broker: a case from 44 routed to 11,
11's signed receipt and answer going back to 44, bad replies refused to the DLQ (a reply that
comes before its case waits for it), a declined case re-routed, and a missed deadline
reported once."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from confluent_kafka import Producer

from deploy.topics import create_topics, exchange_topics
from schemas import contract
from schemas import topics as th
from schemas.codec import AlertCodec, EventCodec, ReplyCodec
from schemas.kafka import read_topics
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings

from parts import running_part

pytestmark = pytest.mark.integration

WAIT_SECONDS = 120


def case(case_no):
    record = {"case_no": case_no, "region_code": "440300", "stage": "filed", "violation_code": "V101",
              "occurred_at": 1_700_000_000_000, "involved_plate": "京A12345", "involved_operator_uscc": None,
              "involved_id_number": None, "penalty_cents": None}
    return {"event_id": str(uuid.uuid4()), "op": "c", "entity_type": "case",
            "entity_key": contract.entity_key("case", record), "before": None, "after": record,
            "source": {"province": "44", "system": "zhifa", "table": "case", "seq": 1, "snapshot": False},
            "ts_ms": 1_700_000_000_000}


@pytest.fixture
def exchange(bootstrap, unique, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"tc{unique}.",
                        provinces=("11", "31", "44"), partitions=2, case_check_seconds=0.5,
                        case_receipt_seconds=3.0, case_reply_grace_seconds=2.0)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


def running_cases(settings, log_path):
    return running_part("cases", settings, log_path)


class Exchange:
    def __init__(self, settings):
        self.settings = settings
        self.producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"})
        self.events = EventCodec(EmbeddedRegistry())
        self.replies = ReplyCodec(EmbeddedRegistry())

    def route(self, event, target, correlation, region=None):
        """A routed case as the stream worker writes it to the target's inbound topic (``region``:
        the responsible one; none as before routings named it)."""
        self.producer.produce(self.settings.topics.province_inbound(target), self.events.encode(event),
                              event["entity_key"].encode(), headers=[
                                  (th.ROUTED_FROM, b"44"), (th.ROUTED_TO, target.encode()),
                                  (th.ROUTED_REASON, b"involved_plate"), (th.ROUTED_CORRELATION_ID, correlation.encode()),
                                  (th.ROUTED_STAGE, b"filed"),
                                  *([(th.ROUTED_REGION, region.encode())] if region else [])])
        assert self.producer.flush(30) == 0

    def reply(self, event, correlation, kind, frm="11", topic_of=None, key_of=None, reply_id=None, **more):
        body = {"reply_id": reply_id or str(uuid.uuid4()), "correlation_id": correlation,
                "case_key": event["entity_key"], "from_province": frm, "kind": kind,
                "outcome": None, "reason": None, "redirect_to": None, "note": None,
                "ts": dt.datetime.now(dt.timezone.utc), **more}
        value = self.replies.encode(body, self.settings.province_key(key_of or frm))
        self.producer.produce(self.settings.topics.province_replies(topic_of or frm), value,
                              event["entity_key"].encode())
        assert self.producer.flush(30) == 0
        return body["reply_id"]

    def read(self, topic):
        return [m for batch in read_topics({"bootstrap.servers": self.settings.bootstrap_servers},
                                           f"r{uuid.uuid4().hex[:6]}", [topic], error=AssertionError, what=topic)
                for m in batch]


def wait_for(read, condition, proc, log_path, what):
    deadline = time.monotonic() + WAIT_SECONDS
    got = []
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        got = read()
        if condition(got):
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {got}\n{log_path.read_text()[-3000:]}")


def headers(message):
    return {k: v.decode() for k, v in (message.headers() or [])}


def test_a_routed_case_is_received_and_answered_and_the_origin_sees_each_reply(exchange):
    ex = Exchange(exchange)
    log_path = exchange.data_dir / "cases.log"
    event, correlation = case("粤深交执2024001"), str(uuid.uuid4())
    with running_cases(exchange, log_path) as proc:
        ex.route(event, "11", correlation)
        receipt = ex.reply(event, correlation, "receipt")
        ex.reply(event, correlation, "receipt", reply_id=receipt)  # the same receipt again: a repeat
        answer = ex.reply(event, correlation, "answer", outcome="penalty")
        ex.reply(event, correlation, "progress")  # after the answer: changes nothing
        ex.reply(event, correlation, "answer", outcome="closed")  # a second answer: refused
        ex.reply(event, correlation, "receipt", frm="31", topic_of="31")  # not the target
        ex.reply(event, correlation, "receipt", key_of="44")  # signed with another province's key
        ex.reply(event, str(uuid.uuid4()), "receipt")  # no such case
        inbound_44 = exchange.topics.province_inbound("44")
        back = wait_for(lambda: [headers(m) for m in ex.read(inbound_44)], lambda got: len(got) >= 2,
                        proc, log_path, "the replies to reach 44")
        dlq = wait_for(lambda: [headers(m) for m in ex.read(exchange.topics.national_dlq)],
                       lambda got: len(got) >= 4, proc, log_path, "the refused replies")
        # each reply above has been decided once its case came: the answer went back once
        back = [headers(m) for m in ex.read(inbound_44)]
    assert [(h["roadx.reply.kind"], h["roadx.reply.id"]) for h in back] == [("receipt", receipt), ("answer", answer)]
    assert all(h[th.ROUTED_CORRELATION_ID] == correlation for h in back)
    assert sorted(h[th.DLQ_RULE] for h in dlq) == sorted(
        ["workflow_closed", "not_the_target", "bad_signature", "unknown_correlation"])


def test_a_declined_case_goes_on_to_the_province_named_and_a_missed_receipt_is_alerted_once(exchange):
    ex = Exchange(exchange)
    log_path = exchange.data_dir / "cases.log"
    declined, silent = case("粤深交执2024002"), case("粤深交执2024003")
    c1, c2 = str(uuid.uuid4()), str(uuid.uuid4())
    with running_cases(exchange, log_path) as proc:
        ex.route(declined, "11", c1)
        ex.reply(declined, c1, "decline", reason="the vehicle moved to Shanghai", redirect_to="31")
        ex.route(silent, "11", c2, region="110108")
        inbound_31 = exchange.topics.province_inbound("31")
        moved = wait_for(lambda: ex.read(inbound_31), lambda got: len(got) >= 1, proc, log_path, "the re-routing")
        def alerts():
            return [AlertCodec(EmbeddedRegistry()).decode(m.value()) for m in ex.read(exchange.topics.national_alerts)]

        wait_for(alerts, lambda got: any(a["correlation_id"] == c2 for a in got), proc, log_path, "the alert")
        # a later case's alert comes after many more checks (every 0.5 s) of the first one
        later, c3 = case("粤深交执2024004"), str(uuid.uuid4())
        ex.route(later, "11", c3)
        more = wait_for(alerts, lambda got: any(a["correlation_id"] == c3 for a in got), proc, log_path,
                        "the later alert")
    assert headers(moved[0])[th.ROUTED_TO] == "31" and headers(moved[0])[th.ROUTED_CORRELATION_ID] == c1
    assert ex.events.decode(moved[0].value())[1]["entity_key"] == declined["entity_key"]
    mine = [a for a in more if a["correlation_id"] == c2]
    assert [a["deadline"] for a in mine] == ["receipt"] and mine[0]["target"] == "11" and mine[0]["region"] == "110108"
    # a case routed without a region (before routings named one): the case's own region
    assert [a["region"] for a in more if a["correlation_id"] == c3] == ["440300"]
    # declined at 11: closed, nothing due there; re-routed to 31: a new workflow, which 31 let lie
    assert [(a["target"], a["deadline"]) for a in more if a["correlation_id"] == c1] == [("31", "receipt")]


def test_the_subscriber_acknowledges_each_case_once_and_the_origin_sees_the_receipt(exchange):
    import threading

    from streams.subscribe import subscribe

    ex = Exchange(exchange)
    log_path = exchange.data_dir / "cases.log"
    event, correlation = case("粤深交执2024009"), str(uuid.uuid4())
    with running_cases(exchange, log_path) as proc:
        ex.route(event, "11", correlation)
        stop = threading.Event()
        shown = list(subscribe(exchange, "11", True, stop, idle_exit=2.0, receipts=True))
        again = list(subscribe(exchange, "11", True, stop, idle_exit=2.0, receipts=True))  # shown again
        assert [i["correlation_id"] for i in shown] == [correlation] and shown[0]["receipt"] == again[0]["receipt"]
        back = wait_for(lambda: [i for i in subscribe(exchange, "44", True, stop, idle_exit=1.0) if "reply" in i],
                        lambda got: len(got) >= 1, proc, log_path, "the receipt to reach 44")
        refused = [headers(m) for m in ex.read(exchange.topics.national_dlq)]
    assert [(r["reply"], r["reply_id"], r["from"]) for r in back] == [("receipt", shown[0]["receipt"], "11")]
    assert refused == []  # the second receipt was a repeat, not a refusal


def test_a_killed_cases_worker_loses_and_doubles_no_transition(exchange):
    """SIGKILL while receipts are being decided, as soon as one reached 44 (mostly before the
    worker's first commit); a restarted worker rebuilds the workflows from their changelog (to
    its true end, past the end the embedded broker reports), reads the replies again from where
    its group committed (from the beginning where it never did) and decides the answers: each
    receipt and answer reaches 44, none is refused as a case it forgot."""
    ex = Exchange(exchange)
    log_path = exchange.data_dir / "cases.log"
    cases = [(case(f"粤深交执2025{n:03d}"), str(uuid.uuid4())) for n in range(40)]
    for event, correlation in cases:
        ex.route(event, "11", correlation)
    inbound_44 = exchange.topics.province_inbound("44")
    with running_cases(exchange, log_path) as proc:
        receipts = {ex.reply(event, correlation, "receipt"): correlation for event, correlation in cases[:20]}
        wait_for(lambda: ex.read(inbound_44), lambda got: len(got) >= 1, proc, log_path, "a receipt at 44")
        proc.kill()
        proc.wait()
    with running_cases(exchange, log_path) as proc:
        answers = {ex.reply(event, correlation, "answer", outcome="action_taken"): correlation
                   for event, correlation in cases}
        back = wait_for(lambda: [headers(m) for m in ex.read(inbound_44)],
                        lambda got: {h["roadx.reply.id"] for h in got} >= {*receipts, *answers}, proc, log_path,
                        "every receipt and answer at 44")
        refused = [headers(m) for m in ex.read(exchange.topics.national_dlq)]
    assert refused == []
    forwarded = {h["roadx.reply.id"]: h[th.ROUTED_CORRELATION_ID] for h in back}
    assert forwarded == {**receipts, **answers}  # each to its own case, no other reply invented
    # one answer per case: a reply forwarded twice (at least once) is the same transition, never a second
    answered = {(h[th.ROUTED_CORRELATION_ID], h["roadx.reply.id"]) for h in back if h["roadx.reply.kind"] == "answer"}
    assert sorted(c for c, _ in answered) == sorted(c for _, c in cases)


def test_two_cases_workers_share_the_cases_and_one_goes_on_alone_when_the_other_is_killed(exchange):
    """Two workers in one group: the partitions move between them at each join and leave, each
    worker's streams going on where the group committed. Every receipt and answer reaches 44,
    none refused, each forwarded for its own case."""
    ex = Exchange(exchange)
    cases = [(case(f"粤深交执2026{n:03d}"), str(uuid.uuid4())) for n in range(30)]
    for event, correlation in cases:
        ex.route(event, "11", correlation)
    inbound_44 = exchange.topics.province_inbound("44")
    log_a, log_b = exchange.data_dir / "cases-a.log", exchange.data_dir / "cases-b.log"

    def replies_back():
        return [headers(m) for m in ex.read(inbound_44)]

    with running_cases(exchange, log_a) as a, running_cases(exchange, log_b) as b:
        receipts = {ex.reply(event, correlation, "receipt"): correlation for event, correlation in cases}
        wait_for(replies_back, lambda got: {h["roadx.reply.id"] for h in got} >= set(receipts), a, log_a,
                 "every receipt at 44")
        a.kill()
        a.wait()
        answers = {ex.reply(event, correlation, "answer", outcome="action_taken"): correlation
                   for event, correlation in cases}
        back = wait_for(replies_back, lambda got: {h["roadx.reply.id"] for h in got} >= {*receipts, *answers}, b,
                        log_b, "every answer at 44 from the worker left")
        refused = [headers(m) for m in ex.read(exchange.topics.national_dlq)]
    assert refused == []
    assert {h["roadx.reply.id"]: h[th.ROUTED_CORRELATION_ID] for h in back} == {**receipts, **answers}


def test_a_city_subscribes_to_its_own_cases_and_acknowledges_only_those(exchange):
    import threading

    from streams.errors import StreamError
    from streams.subscribe import subscribe

    ex = Exchange(exchange)
    haidian, chaoyang = case("粤深交执2024031"), case("粤深交执2024032")
    c_haidian, c_chaoyang = str(uuid.uuid4()), str(uuid.uuid4())
    ex.route(haidian, "11", c_haidian, region="110108")
    ex.route(chaoyang, "11", c_chaoyang, region="110105")
    stop = threading.Event()
    shown = list(subscribe(exchange, "11", True, stop, idle_exit=2.0, receipts=True, region="110108"))
    assert [(i["correlation_id"], i["region"]) for i in shown] == [(c_haidian, "110108")]
    everything = list(subscribe(exchange, "11", True, stop, idle_exit=2.0, region="11"))
    assert sorted(i["correlation_id"] for i in everything) == sorted([c_haidian, c_chaoyang])
    receipts = [ex.replies.decode(m.value())[1] for m in ex.read(exchange.topics.province_replies("11"))]
    assert [r["correlation_id"] for r in receipts] == [c_haidian]  # only the case shown was acknowledged
    for bad, message in (("4403", "not within the jurisdiction of party 11"), ("11010", "nor a region prefix"),
                         ("11'; --", "nor a region prefix"), ("ZZ", "is neither a party of the exchange")):
        with pytest.raises(StreamError, match=message):
            list(subscribe(exchange, "11", True, stop, idle_exit=1.0, region=bad))


def test_the_subscriber_shows_an_assist_request_decoded_and_acknowledges_it(exchange):
    import threading

    from schemas.codec import AssistCodec
    from streams.subscribe import format_line, subscribe

    ex = Exchange(exchange)
    plate = {"plate": "京A12345", "plate_color": 2}
    request = {"assist_id": str(uuid.uuid4()), "from_party": "44", "to_province": "11", "entity_type": "vehicle",
               "entity_key": contract.entity_key("vehicle", plate), "identifier": "京A12345",
               "question": "该车是否仍在营运?\n请核查", "case_no": "粤深交执2024041", "region": "110105",
               "in_register": True, "asked_at": dt.datetime(2024, 6, 3, 8, tzinfo=dt.timezone.utc)}
    inbound_11 = exchange.topics.province_inbound("11")

    def ask(value, reason=th.ASSIST):
        ex.producer.produce(inbound_11, value, request["entity_key"].encode(), headers=[
            (th.ROUTED_FROM, b"44"), (th.ROUTED_TO, b"11"), (th.ROUTED_REASON, reason.encode()),
            (th.ROUTED_CORRELATION_ID, request["assist_id"].encode()), (th.ROUTED_STAGE, b"requested"),
            (th.ROUTED_REGION, b"110105"), (th.ROUTED_KIND, th.ASSIST.encode())])
        assert ex.producer.flush(30) == 0

    ask(AssistCodec(EmbeddedRegistry()).encode(request))
    ask(b"\x00\x00\x00\x00\x07junk")  # undecodable
    stop = threading.Event()
    shown, junk = list(subscribe(exchange, "11", True, stop, idle_exit=2.0, receipts=True))
    assert {k: shown[k] for k in ("from", "to", "reason", "correlation_id", "stage", "region", "entity_key")} == {
        "from": "44", "to": "11", "reason": "assist", "correlation_id": request["assist_id"], "stage": "requested",
        "region": "110105", "entity_key": "vehicle:京A12345:2"}
    assert shown["assist"] == {name: request[name] for name in ("identifier", "entity_type", "question", "case_no",
                                                                "in_register", "asked_at")}
    assert format_line(shown) == (f"{request['assist_id']}  44→11  assist vehicle 京A12345: 该车是否仍在营运? 请核查  "
                                  "region=110105  case=粤深交执2024041")
    assert "error" in junk and "receipt" not in junk and format_line(junk).startswith(f"@{junk['offset']} undecodable")
    [receipt] = [ex.replies.decode(m.value())[1] for m in ex.read(exchange.topics.province_replies("11"))]
    assert (str(receipt["reply_id"]), receipt["correlation_id"], receipt["case_key"], receipt["kind"]) == (
        shown["receipt"], request["assist_id"], "vehicle:京A12345:2", "receipt")
    # as re-routed after a decline: the reason says so
    assert format_line({**shown, "reason": th.REDIRECTED}).endswith("case=粤深交执2024041  reason=redirected")


def test_a_cases_worker_that_cannot_reach_the_broker_stops_with_70_naming_why(tmp_path):
    from deploy.broker import free_port
    from deploy.worker import EXIT_FAILED

    settings = Settings(data_dir=tmp_path / "not" / "made" / "yet", bootstrap_servers=f"127.0.0.1:{free_port()}",
                        provinces=("11", "44"), partitions=2)
    log_path = tmp_path / "cases.log"
    with running_cases(settings, log_path) as proc:
        assert proc.wait(timeout=WAIT_SECONDS) == EXIT_FAILED
    log = log_path.read_text()
    assert "CRITICAL case workflows stopped: " in log and "could not start: KafkaConnectionError" in log
    assert "Traceback" not in log
