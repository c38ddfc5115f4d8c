"""Case workflows in the store, against the real embedded broker and a real chDB store.

Routed cases and the replies the case workflows forward to the originating province share the
inbound topics: each lands in its own table (``routed_cases``, ``case_replies``) once; the
workflows' alerts on ``national.alerts`` land in ``case_alerts``, an alert published twice
stored once; a bad reply or alert is a dead letter naming what is wrong while the rest of the
batch is stored; ``case_workflows`` gives each workflow's state, and the monthly report the
timeliness per target province. An assist request (协查) routed, or re-routed after a decline,
is a routed case in the store, its workflow and timeliness counted like one.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from confluent_kafka import Producer

from deploy.topics import create_topics, exchange_topics
from schemas import contract, topics as th
from schemas.codec import AlertCodec, AssistCodec, EventCodec, ReplyCodec
from schemas.pii import PiiMasker
from schemas.registry import EmbeddedRegistry
from schemas.settings import Settings
from schemas.deadlines import Deadlines
from sinks.cases import find_workflows, list_workflows
from sinks.report import load_report
from sinks.report_html import render_html

from test_sink import scalar, sink_until_drained, store_of  # noqa: F401

pytestmark = pytest.mark.integration

EVENTS = EventCodec(EmbeddedRegistry())
REPLIES = ReplyCodec(EmbeddedRegistry())
ALERTS = AlertCodec(EmbeddedRegistry())
ASSISTS = AssistCodec(EmbeddedRegistry())
UTC = dt.timezone.utc
JUNE = dt.date(2024, 6, 1)
DEADLINES = Deadlines(86_400.0, 30 * 86_400.0)


def at(month, day, hour=8):
    return dt.datetime(2024, month, day, hour, tzinfo=UTC)


def case(case_no, source="44"):
    record = {"case_no": case_no, "region_code": "440300", "stage": "filed", "violation_code": "V101",
              "occurred_at": 1_700_000_000_000, "involved_plate": "京A12345", "involved_operator_uscc": None,
              "involved_id_number": None, "penalty_cents": None}
    return {"event_id": str(uuid.uuid4()), "op": "c", "entity_type": "case",
            "entity_key": contract.entity_key("case", record), "before": None, "after": record,
            "source": {"province": source, "system": "zhifa", "table": "case", "seq": 1, "snapshot": False},
            "ts_ms": 1_700_000_000_000}


def assist(entity_type, record, asked_at, to="11", region="110105", case_no=None):
    """An assist request from 44 as the information service writes it."""
    entity_key = contract.entity_key(entity_type, record)
    return {"assist_id": str(uuid.uuid4()), "from_party": "44", "to_province": to, "entity_type": entity_type,
            "entity_key": entity_key, "identifier": entity_key.split(":")[1], "question": "请核查该对象的登记状态",
            "case_no": case_no, "region": region, "in_register": True, "asked_at": asked_at}


@pytest.fixture
def exchange(bootstrap, unique, tmp_path):
    settings = Settings(data_dir=tmp_path, bootstrap_servers=bootstrap, topic_prefix=f"tk{unique}.",
                        provinces=("44", "11", "31"), partitions=1, national_partitions=1, sink_flush_seconds=0.3)
    create_topics(bootstrap, exchange_topics(settings))
    return settings


class Publisher:
    def __init__(self, settings):
        self.settings = settings
        self.producer = Producer(settings.kafka_conf(**{"enable.idempotence": True}))
        self.sent = 0

    def send(self, topic, value, key, headers=None, when=None):
        self.producer.produce(topic, value, key=key.encode(), headers=headers or [],
                              timestamp=int(when.timestamp() * 1000) if when else 0)
        self.sent += 1

    def route(self, event, target, correlation, when, origin="44", region=None):
        """A routed case as the stream worker writes it, stamped ``when`` (``region``: none before it was sent)."""
        self.send(self.settings.topics.province_inbound(target), EVENTS.encode(event), event["entity_key"], [
            (th.ROUTED_FROM, origin.encode()), (th.ROUTED_TO, target.encode()), (th.ROUTED_REASON, b"involved_plate"),
            (th.ROUTED_CORRELATION_ID, correlation.encode()), (th.ROUTED_STAGE, b"filed"),
            *([(th.ROUTED_REGION, region.encode())] if region is not None else [])], when)

    def ask(self, request, target, when, reason=th.ASSIST, region=True, value=None):
        """An assist request on ``target``'s inbound topic, as the information service writes it (``reason``
        redirected: as the case workflows re-route it after a decline, naming no region)."""
        self.send(self.settings.topics.province_inbound(target), value or ASSISTS.encode(request),
                  request["entity_key"], [
                      (th.ROUTED_FROM, request["from_party"].encode()), (th.ROUTED_TO, target.encode()),
                      (th.ROUTED_REASON, reason.encode()), (th.ROUTED_CORRELATION_ID, request["assist_id"].encode()),
                      (th.ROUTED_STAGE, b"requested"), (th.ROUTED_KIND, th.ASSIST.encode()),
                      *([(th.ROUTED_REGION, request["region"].encode())] if region else [])], when)

    def forward(self, event, correlation, frm, kind, when, origin="44", **more):
        """A reply as the case workflows forward it to the originating province's inbound topic."""
        body = {"reply_id": str(uuid.uuid4()), "correlation_id": correlation, "case_key": event["entity_key"],
                "from_province": frm, "kind": kind, "outcome": None, "reason": None, "redirect_to": None,
                "note": None, "ts": when, **more}
        value = REPLIES.encode(body, self.settings.province_key(frm))
        self.send(self.settings.topics.province_inbound(origin), value, event["entity_key"], reply_headers(
            kind, body["reply_id"], correlation, frm, origin))
        return body["reply_id"]

    def alert(self, correlation, event, target, deadline, routed, when, state="routed", as_json=False, **override):
        """A missed deadline as the case workflows publish it (``as_json``: as they did before alerts were Avro)."""
        alert = {"alert_id": f"{correlation}/{target}/{deadline}", "deadline": deadline, "correlation_id": correlation,
                 "case_key": event["entity_key"], "origin": "44", "target": target, "region": "440300",
                 "state": state, "routed_at": routed, "at": when, **override}
        value = (json.dumps({**alert, "routed_at": routed.timestamp(), "at": when.timestamp()}).encode() if as_json
                 else ALERTS.encode(alert))
        self.send(self.settings.topics.national_alerts, value, event["entity_key"])

    def flush(self):
        assert self.producer.flush(30) == 0


def reply_headers(kind, reply_id, correlation, frm, origin):
    return [(th.REPLY_KIND, kind.encode()), (th.REPLY_ID, reply_id.encode()),
            (th.ROUTED_CORRELATION_ID, correlation.encode()), (th.ROUTED_FROM, frm.encode()),
            (th.ROUTED_TO, origin.encode())]


def test_replies_routed_cases_and_alerts_land_once_in_their_tables_and_the_report_counts_timeliness(
        exchange, store_of):
    pub = Publisher(exchange)
    quick, late, silent, theirs = case("粤深交执2024101"), case("粤深交执2024102"), case("粤深交执2024103"), \
        case("京交执2024001", source="11")
    c_quick, c_late, c_silent, c_theirs = (str(uuid.uuid4()) for _ in range(4))
    # 11 acknowledges within the hour and answers in two days; 31 is three days late with its
    # receipt and answers after 46 days; the third case, at 31, is never answered.
    pub.route(quick, "11", c_quick, at(6, 3), region="110105")
    pub.route(late, "31", c_late, at(6, 4), region="310115")
    pub.route(silent, "31", c_silent, at(6, 10), region="310104")
    pub.route(theirs, "44", c_theirs, at(6, 12), origin="11")  # a case routed to 44, on 44's inbound topic
    receipt = pub.forward(quick, c_quick, "11", "receipt", at(6, 3, 9))
    answer = pub.forward(quick, c_quick, "11", "answer", at(6, 5), outcome="penalty")
    pub.forward(late, c_late, "31", "receipt", at(6, 7))
    pub.forward(late, c_late, "31", "progress", at(6, 20))
    pub.forward(late, c_late, "31", "answer", at(7, 20), outcome="closed")
    inbound_44 = exchange.topics.province_inbound("44")
    pub.send(inbound_44, b"\x00\x00\x00\x00\x07junk", quick["entity_key"],
             reply_headers("receipt", str(uuid.uuid4()), c_quick, "11", "44"))  # undecodable
    mislabelled = REPLIES.encode({"reply_id": str(uuid.uuid4()), "correlation_id": c_quick,
                                  "case_key": quick["entity_key"], "from_province": "11", "kind": "progress",
                                  "outcome": None, "reason": None, "redirect_to": None, "note": None, "ts": at(6, 4)},
                                 exchange.province_key("11"))
    pub.send(inbound_44, mislabelled, quick["entity_key"],
             reply_headers("answer", str(uuid.uuid4()), c_quick, "11", "44"))  # header and body disagree
    pub.alert(c_late, late, "31", "receipt", at(6, 4), at(6, 5, 9), region="310115")
    pub.alert(c_silent, silent, "31", "receipt", at(6, 10), at(6, 11, 9), region="310104")
    pub.alert(c_silent, silent, "31", "receipt", at(6, 10), at(6, 11, 9), region="310104")  # again, restarted
    pub.alert(c_silent, silent, "31", "answer", at(6, 10), at(7, 10, 9), state="routed", region="310104",
              as_json=True)  # written before alerts were Avro: still read
    pub.send(exchange.topics.national_alerts, b"not json", silent["entity_key"])
    pub.alert(c_silent, silent, "31", "answer", at(6, 10), at(7, 10), alert_id="x/31/answer", region=None,
              as_json=True)
    pub.flush()

    sink_until_drained(exchange, pub.sent)
    store = store_of(exchange)
    db = exchange.clickhouse_database

    routed = store.query(f"SELECT correlation_id, target_province, topic FROM {db}.routed_cases FINAL "
                         "ORDER BY routed_at").result_rows
    assert routed == [(c_quick, "11", exchange.topics.province_inbound("11")),
                      (c_late, "31", exchange.topics.province_inbound("31")),
                      (c_silent, "31", exchange.topics.province_inbound("31")), (c_theirs, "44", inbound_44)]
    replies = store.query(f"SELECT reply_id, correlation_id, from_province, to_province, kind, outcome "
                          f"FROM {db}.case_replies FINAL WHERE correlation_id = '{c_quick}' ORDER BY ts").result_rows
    assert [(str(r), c, f, t, k, o) for r, c, f, t, k, o in replies] == [
        (receipt, c_quick, "11", "44", "receipt", None), (answer, c_quick, "11", "44", "answer", "penalty")]
    assert scalar(store, f"SELECT count() FROM {db}.case_replies FINAL") == 5
    alerts = store.query(f"SELECT alert_id, deadline, target, state, at FROM {db}.case_alerts FINAL "
                         "ORDER BY alert_id").result_rows
    assert sorted(a[0] for a in alerts) == sorted([f"{c_late}/31/receipt", f"{c_silent}/31/receipt",
                                                   f"{c_silent}/31/answer"])
    dead = store.query(f"SELECT rule, origin_topic, reason FROM {db}.dlq FINAL ORDER BY origin_topic, reason").result_rows
    assert sorted((rule, topic) for rule, topic, _ in dead) == sorted([
        ("sink_invalid_event", exchange.topics.national_alerts), ("sink_undecodable", exchange.topics.national_alerts),
        ("sink_invalid_event", inbound_44), ("sink_undecodable", inbound_44)])
    reasons = " | ".join(reason for _, _, reason in dead)
    assert "field region is NoneType" in reasons and "not Confluent-framed Avro" in reasons
    assert "is not the header roadx.reply.kind 'answer'" in reasons

    # A new consumer group reads everything again: no table gains a row.
    sink_until_drained(exchange, pub.sent, group_id=f"{exchange.topic_prefix}replay")
    for table, count in (("routed_cases", 4), ("case_replies", 5), ("case_alerts", 3), ("dlq", 4)):
        assert scalar(store, f"SELECT count() FROM {db}.{table} FINAL") == count, table

    now = dt.datetime(2024, 8, 1, tzinfo=UTC)
    at_31 = {w.correlation_id: w for w in list_workflows(store, db, DEADLINES, target="31", now=now)}
    assert (at_31[c_late].state, at_31[c_late].outcome, at_31[c_late].overdue) == ("answered", "closed", False)
    assert at_31[c_late].received_at == at(6, 7) and at_31[c_late].answered_at == at(7, 20)
    assert (at_31[c_silent].state, at_31[c_silent].overdue, at_31[c_silent].alerts) == ("routed", True,
                                                                                        ("answer", "receipt"))
    assert [w.correlation_id for w in list_workflows(store, db, DEADLINES, target="31", overdue_only=True,
                                                     now=now)] == [c_silent]
    assert list_workflows(store, db, DEADLINES, target="11", open_only=True, now=now) == []
    [mine] = find_workflows(store, db, c_quick, DEADLINES, now=now)
    assert (mine.target, mine.origin, mine.state, mine.outcome, mine.replies) == ("11", "44", "answered", "penalty", 2)
    assert mine.routed_at == at(6, 3)

    june = load_report(store, db, JUNE, exchange.provinces, as_of=now, case_deadlines=DEADLINES)
    eleven, thirty_one = june.timeliness["11"], june.timeliness["31"]
    assert (eleven.routed, eleven.received_on_time, eleven.answered_on_time, eleven.open, eleven.overdue) == \
        (1, 1, 1, 0, 0)
    assert eleven.median_answer_ms == 2 * 86_400_000 and eleven.alerts == {}
    assert (thirty_one.routed, thirty_one.received_on_time, thirty_one.answered_on_time, thirty_one.open,
            thirty_one.overdue) == (2, 0, 0, 1, 1)
    assert thirty_one.median_answer_ms == (at(7, 20) - at(6, 4)).total_seconds() * 1000
    assert thirty_one.alerts == {"receipt": 2}
    assert june.timeliness["44"].routed == 1 and june.timeliness["44"].open == 1
    # by city: the responsible regions' cities; a case routed without a region stands apart
    cities = {unit: (t.routed, t.received_on_time, t.open, t.overdue, t.alerts)
              for unit, t in june.timeliness_by_city.items()}
    assert cities == {("11", "110100"): (1, 1, 0, 0, {}), ("31", "310100"): (2, 0, 1, 1, {"receipt": 2}),
                      ("44", ""): (1, 0, 1, 1, {})}
    [(region,)] = store.query(f"SELECT region FROM {db}.case_workflows WHERE correlation_id = '{c_late}'").result_rows
    assert region == "310115"
    section = render_html(june).split('<section class="case-timeliness">')[1].split("</section>")[0]
    assert "跨省协同 Cross-province cases" in section and "31 上海 Shanghai" in section
    assert "2.0 d" in section and "46.0 d" in section and "310100" in section and "按地市 by city" in section

    july = load_report(store, db, dt.date(2024, 7, 1), exchange.provinces, as_of=now, case_deadlines=DEADLINES)
    assert {t: (x.routed, x.alerts) for t, x in july.timeliness.items()} == {"31": (0, {"answer": 1})}
    august = load_report(store, db, dt.date(2024, 8, 1), exchange.provinces, as_of=now, case_deadlines=DEADLINES)
    assert august.timeliness == {}
    assert "本月无跨省协同案件 no cross-province cases this month" in render_html(august)


def test_assist_requests_are_routed_cases_with_workflows_and_timeliness_and_an_undecodable_one_a_dead_letter(
        exchange, store_of):
    pub = Publisher(exchange)
    plate = assist("vehicle", {"plate": "京A12345", "plate_color": 2}, at(6, 3), case_no="粤深交执2024201")
    person = assist("practitioner", {"id_number": "11010519491231002X"}, at(6, 4), region="110108")
    # 11 acknowledges the vehicle within the hour and answers the next day; it declines the
    # practitioner, re-routed to 31, which lets it lie.
    pub.ask(plate, "11", at(6, 3, 9))
    pub.ask(person, "11", at(6, 4, 9))
    pub.forward(plate, plate["assist_id"], "11", "receipt", at(6, 3, 10))
    pub.forward(plate, plate["assist_id"], "11", "answer", at(6, 4, 10), outcome="action_taken")
    pub.forward(person, person["assist_id"], "11", "decline", at(6, 5), reason="registered in Shanghai",
                redirect_to="31")
    pub.ask(person, "31", at(6, 5), reason=th.REDIRECTED, region=False)
    inbound_11 = exchange.topics.province_inbound("11")
    pub.ask(plate, "11", at(6, 6), value=b"\x00\x00\x00\x00\x07junk")  # undecodable
    pub.flush()

    sink_until_drained(exchange, pub.sent)
    store = store_of(exchange)
    db = exchange.clickhouse_database
    pii = PiiMasker(exchange.pii_key())

    routed = store.query(f"SELECT event_id, entity_key, case_no, source_province, target_province, reason, stage, "
                         f"topic, ts, correlation_id, routed_at, region FROM {db}.routed_cases FINAL "
                         "ORDER BY routed_at").result_rows
    assert [(str(row[0]), *(v.replace(tzinfo=UTC) if isinstance(v, dt.datetime) else v for v in row[1:]))
            for row in routed] == [
        (plate["assist_id"], "vehicle:京A12345:2", "粤深交执2024201", "44", "11", "assist", "requested", inbound_11,
         at(6, 3), plate["assist_id"], at(6, 3, 9), "110105"),
        (person["assist_id"], pii.entity_key(person["entity_key"]), "", "44", "11", "assist", "requested",
         inbound_11, at(6, 4), person["assist_id"], at(6, 4, 9), "110108"),
        (person["assist_id"], pii.entity_key(person["entity_key"]), "", "44", "31", "redirected", "requested",
         exchange.topics.province_inbound("31"), at(6, 4), person["assist_id"], at(6, 5), ""),
    ]
    assert "11010519491231002X" not in str(routed)
    dead = store.query(f"SELECT rule, origin_topic, reason FROM {db}.dlq FINAL").result_rows
    assert [(rule, topic) for rule, topic, _ in dead] == [("sink_undecodable", inbound_11)]
    assert scalar(store, f"SELECT count() FROM {db}.case_replies FINAL") == 3

    now = dt.datetime(2024, 7, 1, tzinfo=UTC)
    [answered] = find_workflows(store, db, plate["assist_id"], DEADLINES, now=now)
    assert (answered.target, answered.origin, answered.state, answered.outcome, answered.replies, answered.region,
            answered.case_no, answered.stages) == ("11", "44", "answered", "action_taken", 2, "110105",
                                                   "粤深交执2024201", ("requested",))
    assert answered.received_at == at(6, 3, 10) and answered.answered_at == at(6, 4, 10)
    declined, moved = find_workflows(store, db, person["assist_id"], DEADLINES, now=now)
    assert (declined.target, declined.state, declined.redirect_to) == ("11", "declined", "31")
    assert (moved.target, moved.reasons, moved.state, moved.overdue) == ("31", "redirected", "routed", True)

    june = load_report(store, db, JUNE, exchange.provinces, as_of=now, case_deadlines=DEADLINES)
    eleven, thirty_one = june.timeliness["11"], june.timeliness["31"]
    assert (eleven.routed, eleven.received_on_time, eleven.answered_on_time, eleven.open) == (2, 2, 2, 0)
    assert (thirty_one.routed, thirty_one.received_on_time, thirty_one.open, thirty_one.overdue) == (1, 0, 1, 1)


def test_another_provinces_filing_of_a_practitioner_is_kept_apart_from_the_home_record(exchange, store_of):
    pub = Publisher(exchange)
    id_11 = "110105199001011232"
    home = {"id_number": id_11, "name": "张三", "qualification_cert_no": "Q-11", "qualification_types": [],
            "region_code": "110105", "employer_uscc": "91110105MA0000001X", "status": "active"}
    filing = {**home, "employer_uscc": "91440300MA5F0000XX"}

    def practitioner(record, province, seq, op="c"):
        return {"event_id": str(uuid.uuid4()), "op": op, "entity_type": "practitioner",
                "entity_key": contract.entity_key("practitioner", record), "before": record if op == "d" else None,
                "after": None if op == "d" else record,
                "source": {"province": province, "system": "x", "table": "practitioner", "seq": seq,
                           "snapshot": False}, "ts_ms": at(6, 3)}

    changes = exchange.topics.national_changes
    for event in (practitioner(home, "11", 5), practitioner(filing, "44", 9),  # 44's seq is its own: higher
                  practitioner(filing, "31", 1), practitioner(filing, "31", 2, op="d")):  # 31 filed, then ended
        pub.send(changes, EVENTS.encode(event), event["entity_key"])
    pub.flush()
    sink_until_drained(exchange, pub.sent)
    store, db = store_of(exchange), exchange.clickhouse_database
    current = store.query(f"SELECT province, employer_uscc FROM {db}.current_practitioners").result_rows
    assert current == [("11", "91110105MA0000001X")]  # the home record, whatever the filings' seq
    filings = store.query(f"SELECT province, employer_uscc, home_region, home_province "
                          f"FROM {db}.practitioner_filings").result_rows
    assert filings == [("44", "91440300MA5F0000XX", "110105", "11")]  # 31's filing ended
    assert scalar(store, f"SELECT count() FROM {db}.change_log FINAL WHERE entity_type = 'practitioner'") == 4
