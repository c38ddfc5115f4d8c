"""The demo's summary as pure logic: reconciliation and the text an operator reads."""

from __future__ import annotations

from deploy.demo import DemoSummary, format_summary, reconcile
from deploy.case_check import CaseCheck
from deploy.service_check import ServiceCheck


def summary(**overrides):
    base = dict(provinces=2, produced=100, injected_duplicates=3, injected_invalid=2, accepted=95,
                duplicates_dropped=3, rejected=2, rejected_by_rule={"invalid_uscc": 2},
                routed_by_target={"11": 4}, expected_routed_by_target={"11": 4}, stored_events=95,
                table_rows={"change_log": 95, "dlq": 2}, seconds=1.0, unchanged=1, stale=2,
                findings_by_dimension={"conformity": 2, "relational": 7},
                service=ServiceCheck(party="11", checked=200, agreed=200, caught_up_seconds=0.4),
                cases=CaseCheck(workflows=4, replies_sent=6, received=4, answered=2, expected_answered=2))
    return DemoSummary(**{**base, **overrides})


def test_counts_that_add_up_reconcile_and_the_text_shows_findings_unchanged_and_stale():
    s = summary()
    assert reconcile(s) == []
    text = format_summary(s)
    assert "quality findings             9  conformity=2, relational=7" in text
    assert "unchanged / stale            1 / 2" in text
    assert "reconciled: produced = stored" in text


def test_counts_that_do_not_add_up_are_named():
    s = summary(stored_events=90)
    s.problems = reconcile(s)
    assert any("produced 100 != stored 90" in p for p in s.problems)
    assert "NOT reconciled" in format_summary(s)


def test_a_service_that_disagrees_with_the_store_or_was_not_asked_is_named():
    wrong = summary(service=ServiceCheck(party="11", checked=200, agreed=199,
                                         disagreements=["licence X: the store says 'valid', the service 'expired'"]))
    assert any("agrees with the store on 199 of 200" in p and "licence X" in p for p in reconcile(wrong))
    assert any("was not checked" in p for p in reconcile(summary(service=ServiceCheck())))
    assert "200 of 200 answers agree with the store" in format_summary(summary())


def test_routed_cases_without_workflows_or_with_replies_missing_are_named():
    assert any("no case workflow" in p for p in reconcile(summary(cases=CaseCheck())))
    short = CaseCheck(workflows=4, received=3, answered=2, expected_answered=2,
                      problems=["the store shows 3 received of 4 and 2 answered of 2"])
    assert any(p.startswith("case workflows: the store shows 3 received") for p in reconcile(summary(cases=short)))
    assert "case workflows               4  received 4, answered 2" in format_summary(summary())
