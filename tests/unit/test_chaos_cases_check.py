"""The chaos run's case workflows: the provinces' reply plan and the check of the workflows against the replies sent."""

from __future__ import annotations

import re
from collections import Counter

from deploy.chaos.cases import (
    CaseStore, CaseTruth, Routing, SentReply, StoredWorkflow, check_cases, expected_of, plan_replies,
    redirect_candidates, routing_of,
)
from deploy.chaos.check import ChaosReport, StoreSnapshot, TopicSnapshot, check, format_report, truth_from_events
from deploy.chaos.run import ChaosOptions
from producers.synthetic.generator import Generated
from schemas import topics as th
from schemas.codes import ANSWER, DECLINE, PROGRESS, RECEIPT
from schemas.pii import PiiMasker
from streams.cases.replies import receipt_id
from streams.routing import correlation_id

PROVINCES = ("11", "12", "13", "14", "44")


def routing(cid="c1", target="11", redirected=False):
    return Routing(cid, target, "44", f"case:{cid}", redirected)


def reply(cid, target, kind, reply_id, outcome=None, redirect_to=None):
    return SentReply(cid, target, kind, reply_id, outcome, redirect_to)


# c1 at 11: answered; c2 at 12: declined to 13, whose new workflow is only received; c3 at 14: no reply.
SENT = [
    reply("c1", "11", RECEIPT, "r1"), reply("c1", "11", RECEIPT, "r1"), reply("c1", "11", PROGRESS, "p1"),
    reply("c1", "11", ANSWER, "a1", outcome="penalty"),
    reply("c2", "12", RECEIPT, "r2"), reply("c2", "12", DECLINE, "d2", redirect_to="13"),
    reply("c2", "13", RECEIPT, "r3"),
]


def truth():
    return CaseTruth(routed=frozenset({("c1", "11"), ("c2", "12"), ("c3", "14")}), sent=list(SENT))


def perfect_store():
    replies = {r.reply_id: (r.correlation_id, r.target, r.kind) for r in SENT}
    return CaseStore(workflows={("c1", "11"): StoredWorkflow("answered", outcome="penalty"),
                                ("c2", "12"): StoredWorkflow("declined", redirect_to="13"),
                                ("c2", "13"): StoredWorkflow("received"),
                                ("c3", "14"): StoredWorkflow("routed")}, replies=replies)


def perfect_topics():
    return TopicSnapshot(changes={}, routed={}, replies={r.reply_id: 1 for r in SENT},
                         rerouted={("c2", "13"): 1})


def test_a_store_and_topics_as_the_replies_say_pass_with_every_count_zero():
    result = check_cases(truth(), perfect_store(), perfect_topics())
    assert result.ok and result.problems == []
    assert (result.missing, result.unexpected, result.state_differ, result.replies_lost, result.closing_not_one,
            result.replies_refused, result.second_transitions) == (0, 0, 0, 0, 0, 0, 0)
    assert result.workflows == 4 and result.rerouted == 1
    assert result.states == {"answered": 1, "declined": 1, "received": 1, "routed": 1}
    assert (result.replies_sent, result.repeats_sent) == (6, 1)


def test_without_the_topics_only_the_store_is_judged():
    result = check_cases(truth(), perfect_store())
    assert result.ok and result.replies_refused is None and result.second_transitions is None


def test_a_re_routing_missing_and_a_workflow_nobody_routed_are_counted():
    store = perfect_store()
    del store.workflows[("c2", "13")]
    store.workflows[("c9", "11")] = StoredWorkflow("routed")
    result = check_cases(truth(), store, perfect_topics())
    assert (result.missing, result.unexpected) == (1, 1) and not result.ok
    assert any("('c2', '13')" in p for p in result.problems) and any("c9" in p for p in result.problems)


def test_a_workflow_in_another_state_or_outcome_than_its_replies_say_differs():
    store = perfect_store()
    store.workflows[("c1", "11")] = StoredWorkflow("answered", outcome="closed")
    store.workflows[("c3", "14")] = StoredWorkflow("received")
    result = check_cases(truth(), store, perfect_topics())
    assert result.state_differ == 2 and not result.ok


def test_a_reply_never_forwarded_is_lost_once_whether_the_store_or_the_topic_misses_it():
    store, topics = perfect_store(), perfect_topics()
    del store.replies["p1"]
    del topics.replies["p1"]
    del topics.replies["r3"]  # on the topic no more, still stored: lost all the same
    result = check_cases(truth(), store, topics)
    assert result.replies_lost == 2 and not result.ok
    assert any("progress p1 of c1 by 11" in p for p in result.problems)


def test_a_refused_reply_a_reply_forwarded_twice_and_a_case_sent_on_twice_fail_the_run():
    topics = perfect_topics()
    topics.refused = {"workflow_closed": 1}
    topics.replies["a1"] = 2
    topics.rerouted[("c2", "13")] = 2
    result = check_cases(truth(), perfect_store(), topics)
    assert result.replies_refused == 1 and result.second_transitions == 2 and not result.ok
    assert any("workflow_closed" in p for p in result.problems)
    assert any("answer a1 of c1 by 11" in p for p in result.problems)


def test_a_second_answer_stored_or_an_answer_to_an_open_workflow_is_not_one_closing():
    store = perfect_store()
    store.replies["a9"] = ("c1", "11", ANSWER)
    store.replies["a8"] = ("c3", "14", ANSWER)
    result = check_cases(truth(), store, perfect_topics())
    assert result.closing_not_one == 2 and not result.ok


def test_the_expected_state_is_the_furthest_reply_sent():
    assert expected_of([]).state == "routed"
    assert expected_of([reply("c", "11", RECEIPT, "r")]).state == "received"
    assert expected_of([reply("c", "11", RECEIPT, "r"), reply("c", "11", PROGRESS, "p")]).state == "in_progress"
    answered = expected_of([reply("c", "11", RECEIPT, "r"), reply("c", "11", ANSWER, "a", outcome="decision")])
    assert (answered.state, answered.outcome) == ("answered", "decision")
    declined = expected_of([reply("c", "11", DECLINE, "d", redirect_to="12")])
    assert (declined.state, declined.redirect_to) == ("declined", "12")


def test_the_plan_is_the_same_for_the_same_seed_and_case():
    candidates = redirect_candidates(PROVINCES, "44", ["11"])
    assert plan_replies(7, routing(), ["11"], candidates) == plan_replies(7, routing(), ["11"], candidates)
    plans = {tuple(plan_replies(seed, routing(), ["11"], candidates)) for seed in range(20)}
    assert len(plans) > 3


def planned(n=400, **kwargs):
    """(routing, its plan) of ``n`` cases routed from 44 to 11."""
    cases = [routing(cid=f"c{i}", **kwargs) for i in range(n)]
    return [(r, plan_replies(2024, r, ["11"], redirect_candidates(PROVINCES, "44", ["11"]))) for r in cases]


def plans(n=400, **kwargs):
    return [plan for _routing, plan in planned(n, **kwargs)]


def test_most_cases_are_answered_some_declined_some_acknowledged_only_and_some_left_open():
    states = Counter(expected_of(reply("c", "11", s.kind, s.reply_id, s.outcome, s.redirect_to) for s in plan).state
                     for plan in plans())
    assert states["answered"] > states["declined"] > 0
    assert states["received"] > 0 and states["in_progress"] > 0 and states["routed"] > 0


def test_every_plan_starts_with_the_cases_one_receipt_id_and_closes_at_most_once():
    for r, plan in planned():
        if not plan:
            continue
        assert plan[0].kind == RECEIPT and {s.reply_id for s in plan if s.kind == RECEIPT} == {
            receipt_id(r.correlation_id, r.target)}
        assert sum(s.kind in (ANSWER, DECLINE) for s in plan) <= 1
        assert len({s.reply_id for s in plan if s.kind != RECEIPT}) == sum(s.kind != RECEIPT for s in plan)
        assert [s.after for s in plan] == sorted(s.after for s in plan)


def test_a_decline_goes_to_a_province_the_case_does_not_involve_and_only_from_its_first_target():
    declines = [s for plan in plans() for s in plan if s.kind == DECLINE]
    assert declines and {s.redirect_to for s in declines} <= {"12", "13", "14"}
    second_target = [plan_replies(2024, routing(cid=f"c{i}", target="12"), ["11", "12"], ["13", "14"])
                     for i in range(400)]
    assert not any(s.kind == DECLINE for plan in second_target for s in plan)
    assert not any(s.kind == DECLINE for plan in plans(redirected=True) for s in plan)
    no_province_left = [plan_replies(2024, routing(cid=f"c{i}"), ["11"], []) for i in range(400)]
    assert not any(s.kind == DECLINE for plan in no_province_left for s in plan)


def test_the_case_workflows_are_among_the_parts_killed():
    assert "cases" in ChaosOptions().targets


def test_a_message_on_an_inbound_topic_is_a_routed_case_a_re_routing_or_not_a_case():
    headers = {th.ROUTED_CORRELATION_ID: "c1", th.ROUTED_FROM: "44", th.ROUTED_REASON: "involved_plate"}
    assert routing_of("11", headers, b"case:X") == Routing("c1", "11", "44", "case:X", False)
    assert routing_of("13", {**headers, th.ROUTED_REASON: "redirected"}, b"case:X").redirected
    assert routing_of("44", {**headers, th.REPLY_KIND: "answer"}, b"case:X") is None  # a reply going home
    assert routing_of("11", {th.ROUTED_FROM: "44"}, b"case:X") is None


CASE = {"case_no": "粤交执罚〔2024〕0000001号", "region_code": "440300", "stage": "filed", "violation_code": "V",
        "occurred_at": 1_717_000_000_000, "involved_plate": "京A12345", "involved_operator_uscc": None,
        "involved_id_number": "13010519491231002X", "penalty_cents": None}


def test_the_generators_truth_names_each_cases_workflows_by_its_correlation_id():
    event = {"event_id": "e1", "op": "c", "entity_type": "case", "entity_key": "case:C1", "before": None,
             "after": CASE, "source": {"province": "44", "system": "s", "table": "t", "seq": 1, "snapshot": False},
             "ts_ms": 1_717_200_000_000}
    truth = truth_from_events([Generated("44", event, "valid")], PiiMasker(b"k" * 32))
    cid = correlation_id("44", "case:C1")
    assert truth.cases == {cid: frozenset({"11", "13"})}
    assert truth.workflows == {(cid, "11"), (cid, "13")}


def test_the_summary_shows_the_case_counts_and_fails_on_any_of_them():
    topics = perfect_topics()
    topics.replies["a1"] = 2
    base = check(truth_from_events([], PiiMasker(b"k" * 32)), StoreSnapshot(change_log={}, routed={}, current={}))
    passed = ChaosReport(check=base, kills={"cases": 1}, outages=1, outage_seconds=2.0, crashes={}, seconds=5.0,
                         cases=check_cases(truth(), perfect_store(), perfect_topics()))
    text = format_report(passed, rounds=1)
    assert passed.exit_status == 0 and "PASSED" in text
    assert re.search(r"^  case workflows +4  \(answered 1, declined 1, received 1, no reply 1; 1 re-routed", text,
                     re.MULTILINE)
    for label in ("workflows missing", "workflow states differing", "replies lost", "replies refused to national.dlq",
                  "second transitions", "closings not exactly one"):
        assert re.search(rf"^  {label} +0\b", text, re.MULTILINE), text
    failed = ChaosReport(check=base, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=5.0,
                         cases=check_cases(truth(), perfect_store(), topics))
    text = format_report(failed, rounds=1)
    assert failed.exit_status == 1 and "FAILED" in text and re.search(r"^  second transitions +1$", text, re.MULTILINE)

