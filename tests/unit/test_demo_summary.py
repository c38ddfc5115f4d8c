"""The demo's summary as pure logic: reconciliation and the text an operator reads."""

from __future__ import annotations

from deploy.demo import DemoSummary, format_summary, reconcile


def summary(**overrides):
    base = dict(provinces=2, produced=100, injected_duplicates=3, injected_invalid=2, accepted=95,
                duplicates_dropped=3, rejected=2, rejected_by_rule={"invalid_uscc": 2},
                routed_by_target={"11": 4}, expected_routed_by_target={"11": 4}, stored_events=95,
                table_rows={"change_log": 95, "dlq": 2}, seconds=1.0, unchanged=1, stale=2,
                findings_by_dimension={"conformity": 2, "relational": 7})
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
