"""The chaos run's check: the generator's truth against a snapshot of the store."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest

from deploy.chaos.check import (
    ChaosReport, StoreSnapshot, TopicSnapshot, build_truth, case_targets, check, format_report, normalise,
    truth_from_events,
)
from producers.synthetic.generator import Generated
from schemas.pii import PiiMasker

MASKER = PiiMasker(b"k" * 32)


def event(event_id, op, etype, key, after, province="44", before=None, seq=1):
    return {"event_id": event_id, "op": op, "entity_type": etype, "entity_key": key, "before": before,
            "after": after, "source": {"province": province, "system": "s", "table": "t", "seq": seq,
                                       "snapshot": False}, "ts_ms": 1_717_200_000_000 + seq}


OPERATOR = {"uscc": "91440300MA5F00001X", "name": "深圳运输", "region_code": "440300", "permit_no": None,
            "business_scope": None, "status": "active", "legal_rep_id_number": "11010519491231002X",
            "contact_phone": "13812345678"}
LICENCE = {"licence_no": "L1", "licence_type": "operating_permit", "holder_key": "operator:91440300MA5F00001X",
           "issuer_region_code": "440300", "valid_from": dt.date(2020, 1, 2), "valid_until": dt.date(2024, 1, 3),
           "status": "valid"}
CASE = {"case_no": "粤交执罚〔2024〕0000001号", "region_code": "440300", "stage": "filed", "violation_code": "V",
        "occurred_at": 1_717_000_000_000, "involved_plate": "京A12345", "involved_operator_uscc": None,
        "involved_id_number": "11010519491231002X", "penalty_cents": None}


def items():
    suspended = {**OPERATOR, "status": "suspended"}
    decided = {**CASE, "stage": "decided", "penalty_cents": 500_000}
    op_create = event("e1", "c", "operator", "operator:91440300MA5F00001X", OPERATOR, seq=1)
    return [
        Generated("44", op_create, "valid"),
        Generated("44", event("e2", "c", "licence", "licence:L1", LICENCE, seq=2), "valid"),
        Generated("44", op_create, "duplicate"),
        Generated("44", event("e3", "u", "operator", "operator:91440300MA5F00001X", suspended, before=OPERATOR,
                              seq=3), "valid"),
        Generated("44", event("e4", "c", "case", "case:C1", CASE, seq=4), "valid"),
        Generated("44", event("e5", "u", "case", "case:C1", decided, before=CASE, seq=5), "valid"),
        Generated("44", event("e6", "d", "licence", "licence:L1", None, before=LICENCE, seq=6), "valid"),
        Generated("44", event("e7", "c", "operator", "operator:BAD", {**OPERATOR, "uscc": "BAD"}, seq=7), "invalid"),
    ]


@pytest.fixture
def truth():
    return truth_from_events(items(), MASKER)


def store_row(expected, key):
    """A current-state row as the store returns it: typed values, version columns added."""
    row = {"entity_key": key, "last_op": "u", "seq": 9, "ts": dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)}
    for column, value in expected.items():
        if column == "occurred_at":
            value = dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
        elif column in ("valid_from", "valid_until") and value is not None:
            value = dt.date.fromisoformat(value)
        row[column] = value
    return row


def perfect_snapshot(truth):
    return StoreSnapshot(
        change_log={i: 1 for i in truth.valid_ids},
        routed={pair: 1 for pair in truth.routed},
        current={view: {key: store_row(expected, key) for key, expected in rows.items()}
                 for view, rows in truth.current.items()},
    )


def perfect_topics(truth):
    return TopicSnapshot(changes={i: 1 for i in truth.valid_ids}, routed={pair: 1 for pair in truth.routed})


def test_truth_keeps_valid_events_routes_and_the_latest_live_version(truth):
    assert truth.produced == 8 and truth.valid == 6 and truth.duplicates == 1 and truth.invalid == 1
    assert truth.valid_ids == {"e1", "e2", "e3", "e4", "e5", "e6"}
    assert truth.routed == {("e4", "11"), ("e5", "11")}
    assert truth.current["current_licences"] == {}  # deleted
    (operator,) = truth.current["current_operators"].values()
    assert operator["status"] == "suspended" and operator["province"] == "44"
    assert operator["legal_rep_id_number"] == "110105********002X"  # masked as the store masks it
    assert operator["contact_phone"] == "138****5678" and operator["contact_phone_token"]
    (case,) = truth.current["current_cases"].values()
    assert case["stage"] == "decided" and case["penalty_cents"] == 500_000


def test_case_targets_are_the_other_provinces_its_parties_belong_to():
    case = event("x", "c", "case", "case:C1", {**CASE, "involved_operator_uscc": "91440300MA5F00001X"})
    assert case_targets(case, {}) == {"11"}  # the Guangdong operator is the source province itself
    assert case_targets(event("y", "c", "operator", "operator:X", OPERATOR), {}) == set()
    ship_case = event("z", "c", "case", "case:C2", {**CASE, "involved_ship_id": "CN20190001"})
    assert case_targets(ship_case, {"CN20190001": "CJ"}) == {"11", "CJ"}  # the party that registered the ship


def test_a_store_matching_the_truth_passes(truth):
    result = check(truth, perfect_snapshot(truth))
    assert result.ok and result.problems == []
    counts = (result.lost, result.doubled, result.current_differ, result.routed_missing, result.routed_doubled)
    assert counts == (0, 0, 0, 0, 0)
    assert result.stored == 6 and result.current_rows == 2


def test_one_lost_and_one_doubled_event_fail_the_run_with_a_non_zero_status(truth):
    snapshot = perfect_snapshot(truth)
    del snapshot.change_log["e2"]
    snapshot.change_log["e3"] = 2
    result = check(truth, snapshot)
    assert result.lost == 1 and result.doubled == 1 and not result.ok
    assert any("e2" in p for p in result.problems) and any("e3" in p for p in result.problems)
    report = ChaosReport(check=result, kills={"sink": 1}, outages=1, outage_seconds=2.0, crashes={}, seconds=9.0)
    assert report.exit_status != 0
    text = format_report(report, rounds=1)
    assert "FAILED" in text and re.search(r"^  lost +1$", text, re.MULTILINE)


def test_an_event_that_should_have_been_rejected_is_reported(truth):
    snapshot = perfect_snapshot(truth)
    snapshot.change_log["e7"] = 1
    result = check(truth, snapshot)
    assert result.unexpected == 1 and not result.ok


def test_a_current_row_with_a_stale_value_is_reported_with_the_column(truth):
    snapshot = perfect_snapshot(truth)
    (key,) = snapshot.current["current_operators"]
    snapshot.current["current_operators"][key]["status"] = "active"
    result = check(truth, snapshot)
    assert result.current_differ == 1
    assert "status: stored 'active', expected 'suspended'" in result.problems[0]


def test_missing_and_extra_current_rows_are_reported(truth):
    snapshot = perfect_snapshot(truth)
    snapshot.current["current_cases"].clear()
    snapshot.current["current_licences"]["licence:L1"] = store_row({"licence_no": "L1"}, "licence:L1")
    result = check(truth, snapshot)
    assert result.current_differ == 2
    assert "missing" in result.problems[0] and "not in the register" in result.problems[0]


def test_routed_cases_missing_doubled_and_unexpected_are_counted(truth):
    snapshot = perfect_snapshot(truth)
    del snapshot.routed[("e4", "11")]
    snapshot.routed[("e5", "11")] = 3
    snapshot.routed[("e5", "12")] = 1
    result = check(truth, snapshot)
    assert (result.routed_missing, result.routed_doubled, result.routed_unexpected) == (1, 2, 1)
    assert len(result.problems) == 3


def test_a_passing_report_exits_zero_and_says_so(truth):
    report = ChaosReport(check=check(truth, perfect_snapshot(truth)), kills={"adapter": 2}, outages=1,
                         outage_seconds=3.0, crashes={}, seconds=30.0)
    assert report.exit_status == 0 and report.as_dict()["ok"] is True
    assert "PASSED" in format_report(report, rounds=1)


def test_a_stall_of_the_run_fails_it_even_when_the_store_matches(truth):
    report = ChaosReport(check=check(truth, perfect_snapshot(truth)), kills={}, outages=0, outage_seconds=0,
                         crashes={}, seconds=1.0, problems=["no progress for 90s while draining"])
    assert report.exit_status == 1 and "no progress" in format_report(report, rounds=1)


def test_store_values_are_normalised_to_the_truths_json_form():
    assert normalise(dt.date(2024, 1, 2)) == "2024-01-02"
    assert normalise(dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)) == 1_717_200_000_000
    assert normalise(dt.datetime(2024, 6, 1)) == 1_717_200_000_000  # naive means UTC
    assert normalise(("a", "b")) == ["a", "b"] and normalise(None) is None


def test_the_truth_of_a_generated_run_agrees_with_the_generators_own_counts():
    truth = build_truth(("11", "44", "31"), seed=5, events=3000, masker=MASKER)
    assert truth.produced == 3000 and truth.valid + truth.duplicates + truth.invalid == 3000
    assert len(truth.valid_ids) == truth.valid and truth.routed
    assert sum(len(rows) for rows in truth.current.values()) > 0


def test_the_truth_is_the_same_for_the_same_seed():
    first = build_truth(("11", "44"), seed=9, events=500, masker=MASKER)
    second = build_truth(("11", "44"), seed=9, events=500, masker=MASKER)
    assert first == second and copy.deepcopy(first.current) == second.current


def test_topics_holding_each_event_and_routed_case_once_pass_with_zero_topic_doubles(truth):
    result = check(truth, perfect_snapshot(truth), perfect_topics(truth))
    assert result.ok and result.problems == []
    assert (result.doubled_on_topic, result.routed_doubled_on_topic, result.undecodable_on_topic) == (0, 0, 0)
    text = format_report(ChaosReport(check=result, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=1.0),
                         rounds=1)
    assert re.search(r"^  doubled on national.changes +0$", text, re.MULTILINE)
    assert re.search(r"^  routed doubled on inbound topics +0$", text, re.MULTILINE)
    assert "undecodable" not in text and "PASSED" in text


def test_an_event_doubled_on_national_changes_fails_the_run_though_the_store_holds_it_once(truth):
    topics = perfect_topics(truth)
    topics.changes["e3"] = 3
    result = check(truth, perfect_snapshot(truth), topics)
    assert result.doubled == 0 and result.doubled_on_topic == 2 and not result.ok
    (problem,) = result.problems
    assert "national.changes" in problem and "'e3', 3" in problem
    report = ChaosReport(check=result, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=1.0)
    assert report.exit_status == 1
    assert re.search(r"^  doubled on national.changes +2$", format_report(report, rounds=1), re.MULTILINE)


def test_a_routed_case_doubled_on_its_inbound_topic_fails_the_run_naming_the_case_and_target(truth):
    topics = perfect_topics(truth)
    topics.routed[("e5", "11")] = 2
    result = check(truth, perfect_snapshot(truth), topics)
    assert result.routed_doubled == 0 and result.routed_doubled_on_topic == 1 and not result.ok
    (problem,) = result.problems
    assert "inbound topics" in problem and "('e5', '11'), 2" in problem
    report = ChaosReport(check=result, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=1.0)
    assert re.search(r"^  routed doubled on inbound topics +1$", format_report(report, rounds=1), re.MULTILINE)


def test_an_event_missing_from_national_changes_is_not_reported_twice(truth):
    snapshot, topics = perfect_snapshot(truth), perfect_topics(truth)
    del snapshot.change_log["e2"]
    del topics.changes["e2"]
    del topics.routed[("e4", "11")]
    result = check(truth, snapshot, topics)
    assert result.lost == 1 and result.doubled_on_topic == 0 and result.routed_doubled_on_topic == 0
    assert len(result.problems) == 1 and "not in change_log" in result.problems[0]


def test_undecodable_messages_on_the_output_topics_are_counted_and_fail_the_run(truth):
    topics = perfect_topics(truth)
    topics.undecodable["national.changes"] = 2
    result = check(truth, perfect_snapshot(truth), topics)
    assert result.undecodable_on_topic == 2 and not result.ok
    assert "{'national.changes': 2}" in result.problems[0]
    report = ChaosReport(check=result, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=1.0)
    assert re.search(r"^  undecodable on output topics +2$", format_report(report, rounds=1), re.MULTILINE)


def test_cases_routed_after_waiting_for_their_ship_are_reported_and_pass(truth):
    topics = perfect_topics(truth)
    topics.routed_late = 3
    result = check(truth, perfect_snapshot(truth), topics)
    assert result.ok and result.routed_late_on_topic == 3
    report = ChaosReport(check=result, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=1.0)
    assert re.search(r"^  routed after waiting +3  \(copies of cases", format_report(report, rounds=1), re.MULTILINE)
    quiet = ChaosReport(check=check(truth, perfect_snapshot(truth), perfect_topics(truth)), kills={}, outages=0,
                        outage_seconds=0, crashes={}, seconds=1.0)
    assert "routed after waiting" not in format_report(quiet, rounds=1)


def test_topics_that_were_not_read_show_as_such_and_the_report_still_serialises(truth):
    result = check(truth, perfect_snapshot(truth))
    assert result.doubled_on_topic is None and result.routed_doubled_on_topic is None
    report = ChaosReport(check=result, kills={}, outages=0, outage_seconds=0, crashes={}, seconds=1.0,
                         problems=["cannot read the output topics: broker down"])
    assert re.search(r"^  doubled on national.changes +not read$", format_report(report, rounds=1), re.MULTILINE)
    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["check"]["doubled_on_topic"] is None and as_json["ok"] is False
