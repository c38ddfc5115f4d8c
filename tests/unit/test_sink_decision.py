"""The exactly-once decision table, one case per row, and the writer applying it."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from sinks.decision import Action, Decision, decide
from sinks.inserts import TableInsert, keep_rows
from sinks.writer import NoLedger, decided, is_refusal, is_retriable

COLUMNS = ("event_id", "offset")


def test_nothing_stored_inserts_everything():
    assert decide(10, 19, None) == Decision(Action.INSERT, 10)


def test_stored_offsets_below_the_range_insert_everything():
    assert decide(10, 19, 9) == Decision(Action.INSERT, 10)


def test_range_entirely_stored_is_skipped():
    assert decide(10, 19, 19) == Decision(Action.SKIP, None)
    assert decide(10, 19, 500) == Decision(Action.SKIP, None)


def test_range_partly_stored_is_trimmed_to_the_offsets_after_the_stored_ones():
    decision = decide(10, 19, 14)
    assert decision == Decision(Action.TRIM, 15)
    assert [o for o in range(10, 20) if decision.keeps(o)] == [15, 16, 17, 18, 19]


def test_range_starting_at_the_stored_offset_is_trimmed_to_the_next_one():
    assert decide(14, 19, 14) == Decision(Action.TRIM, 15)


@pytest.mark.parametrize("first, last", [(-1, 3), (5, 4)])
def test_a_non_range_is_refused(first, last):
    with pytest.raises(ValueError, match="not a range"):
        decide(first, last, None)


class Ledger(NoLedger):
    """A store holding ``rows`` {(table, topic, partition): {offset: identity}}."""

    def __init__(self, rows):
        self.rows = rows

    def stored_max(self, table, topic, partition):
        held = self.rows.get((table, topic, partition))
        return max(held) if held else None

    def stored_rows(self, table, topic, partition, first, last):
        held = self.rows.get((table, topic, partition), {})
        return {(o, i) for o, i in held.items() if first <= o <= last}


def group(offsets, ids=None):
    ids = ids or [f"e{o}" for o in offsets]
    return TableInsert("change_log", "t", 0, min(offsets), max(offsets),
                       [(i, o) for i, o in zip(ids, offsets)], [f"msg{o}" for o in offsets])


def test_writer_skips_a_replayed_group_the_store_holds():
    ledger = Ledger({("change_log", "t", 0): {o: f"e{o}" for o in range(0, 10)}})
    assert decided(group([3, 4, 5]), ledger, COLUMNS) is None


def test_writer_trims_a_group_to_what_is_not_stored_with_a_new_token():
    ledger = Ledger({("change_log", "t", 0): {o: f"e{o}" for o in range(0, 5)}})
    original = group([3, 4, 5, 6])
    kept = decided(original, ledger, COLUMNS)
    assert [row[1] for row in kept.rows] == [5, 6] and kept.messages == ["msg5", "msg6"]
    assert (kept.first_offset, kept.last_offset) == (5, 6) and kept.token != original.token


def test_writer_inserts_rows_whose_offsets_are_stored_but_hold_other_events():
    # The store kept offsets 0..9 of an earlier incarnation of the topic (different events).
    ledger = Ledger({("change_log", "t", 0): {o: f"old{o}" for o in range(0, 10)}})
    kept = decided(group([0, 1, 2]), ledger, COLUMNS)
    assert [row[0] for row in kept.rows] == ["e0", "e1", "e2"]


def test_keep_rows_returns_none_when_nothing_is_left():
    assert keep_rows(group([1, 2]), [1, 2], lambda i, o: False) is None


@pytest.mark.parametrize("exc", [DataError("Unable to create native array"), ValueError("invalid literal"),
                                 DatabaseError("Code: 53. DB::Exception: Type mismatch")])
def test_value_errors_are_refusals_not_retried(exc):
    assert is_refusal(exc)


@pytest.mark.parametrize("exc, retriable", [
    (OperationalError("connection reset"), True),
    (DatabaseError("Code: 241. MEMORY_LIMIT_EXCEEDED"), True),
    (DatabaseError("Code: 252. TOO_MANY_PARTS"), True),
    (DatabaseError("Code: 60. UNKNOWN_TABLE"), False),
])
def test_overload_and_connection_errors_are_retriable_others_are_not(exc, retriable):
    assert is_retriable(exc) is retriable
