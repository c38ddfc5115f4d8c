"""The workflow of a routed case at its target province: transitions, repeats, refusals and
deadlines, as pure decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.deadlines import Deadlines
from streams.cases.workflow import (ANSWERED, DECLINED, IN_PROGRESS, RECEIVED, ROUTED, Reply,
                                    Workflow, apply_reply, overdue, route)

PROVINCES = frozenset({"11", "12", "31", "44"})
CASE = Workflow("c-1", "case:粤深交执2024001", "44", "11", ("involved_plate",), "110105", routed_at=1_000.0)


def reply(kind, n=1, frm="11", at=2_000.0, **more):
    return Reply(f"r{n}", "c-1", frm, kind, at, **more)


def walk(*replies):
    held = route(None, CASE, "filed")
    decisions = []
    for r in replies:
        decision = apply_reply(held, r, PROVINCES)
        decisions.append(decision)
        held = decision.workflow or held
    return held, decisions


def test_receipt_progress_answer_each_move_the_workflow_once():
    held, decisions = walk(reply("receipt", 1), reply("progress", 2, at=3_000.0),
                           reply("answer", 3, at=4_000.0, outcome="penalty"))
    assert [d.moved for d in decisions] == [True, True, True]
    assert (held.state, held.received_at, held.answered_at, held.outcome) == (ANSWERED, 2_000.0, 4_000.0, "penalty")


def test_the_same_reply_twice_and_a_late_receipt_change_nothing():
    held, decisions = walk(reply("receipt", 1), reply("receipt", 1), reply("progress", 2), reply("receipt", 3))
    assert [d.moved for d in decisions] == [True, False, True, False]
    assert not any(d.refused for d in decisions)
    assert held.state == IN_PROGRESS


def test_an_answer_before_the_receipt_counts_as_received_and_the_receipt_then_changes_nothing():
    held, decisions = walk(reply("answer", 1, at=5_000.0, outcome="decision"), reply("receipt", 2, at=6_000.0),
                           reply("progress", 3, at=7_000.0))
    assert held.state == ANSWERED and held.received_at == 5_000.0 and held.answered_at == 5_000.0
    assert [(d.moved, d.refused) for d in decisions[1:]] == [(False, False), (False, False)]


def test_a_second_answer_or_a_decline_after_the_answer_is_refused():
    for late in (reply("answer", 2, outcome="closed"), reply("decline", 2, reason="not ours after all")):
        _held, decisions = walk(reply("answer", 1, outcome="penalty"), late)
        assert decisions[1].rule == "workflow_closed"


@pytest.mark.parametrize("bad, rule", [
    (Reply("r9", "c-unknown", "11", "receipt", 1.0), "unknown_correlation"),
    (reply("receipt", frm="31"), "not_the_target"),
    (reply("shrug"), "unknown_reply_kind"),
    (reply("answer", outcome="nothing"), "bad_outcome"),
    (reply("decline", reason=" "), "decline_without_reason"),
    (reply("decline", reason="moved away", redirect_to="99"), "bad_redirect"),
    (reply("decline", reason="moved away", redirect_to="44"), "bad_redirect"),
])
def test_bad_replies_are_refused_naming_the_rule(bad, rule):
    held = route(None, CASE, "filed")
    decision = apply_reply(None if rule == "unknown_correlation" else held, bad, PROVINCES)
    assert decision.refused and decision.rule == rule and decision.workflow is None and decision.detail


def test_a_reply_from_a_province_the_case_was_not_routed_to_is_not_the_targets():
    decision = apply_reply(None, reply("receipt", frm="31"), PROVINCES, targets=("11",))
    assert decision.rule == "not_the_target" and "routed to 11, not 31" in decision.detail


def test_a_decline_with_the_right_province_reroutes_and_closes():
    held, decisions = walk(reply("decline", 1, reason="the vehicle left for Shanghai", redirect_to="31"),
                           reply("answer", 2, outcome="closed"))
    assert held.state == DECLINED and decisions[0].reroute_to == "31"
    assert decisions[1].rule == "workflow_closed"


def test_a_later_stage_joins_the_same_workflow_once():
    held = route(None, CASE, "filed")
    held = route(held, CASE, "decided")
    assert route(held, CASE, "decided") == held
    assert held.stages == ("filed", "decided") and held.state == ROUTED


def test_each_missed_deadline_is_reported_once():
    deadlines = Deadlines(receipt_seconds=10, answer_seconds=100, by_reason={"involved_plate": (5, 50)})
    held = route(None, CASE, "filed")
    assert overdue(held, CASE.routed_at + 4, deadlines)[1] == []
    held, missed = overdue(held, CASE.routed_at + 6, deadlines)
    assert missed == ["receipt"]
    assert overdue(held, CASE.routed_at + 7, deadlines)[1] == []
    held, missed = overdue(held, CASE.routed_at + 51, deadlines)
    assert missed == ["answer"] and overdue(held, CASE.routed_at + 999, deadlines)[1] == []
    received = replace(route(None, CASE, "filed"), state=RECEIVED)
    assert overdue(received, CASE.routed_at + 6, deadlines)[1] == []  # the receipt came
    answered = replace(received, state=ANSWERED)
    assert overdue(answered, CASE.routed_at + 999, deadlines)[1] == []  # closed: nothing is due
