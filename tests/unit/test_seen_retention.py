"""Accepted event ids are remembered in their entity's state, and dropped from it after the
dedup retention at the entity's next write; a resend after that is still not applied twice."""

from __future__ import annotations

import uuid

from streams.pipeline import ENTITY, StageContext, process_batch
from streams.retention import SEEN, remember, remembered
from streams.state import StateStore

from test_pipeline import CODEC, KEYS, PROVINCES, TOPICS, event, inbound, operator, registered, signed, valid_uscc

HOUR = 3_600_000


def test_an_id_is_remembered_until_the_retention_has_passed_at_the_next_write():
    seen, forgotten = remember(None, "a", 100, HOUR)
    assert seen == {"a": 100} and forgotten == 0
    state = {"seq": 1, SEEN: seen}
    assert remembered(state, "a") and not remembered(state, "b") and not remembered(None, "a")
    seen, forgotten = remember(state, "b", 100 + HOUR - 1, HOUR)
    assert seen == {"a": 100, "b": 100 + HOUR - 1} and forgotten == 0  # not yet past the retention
    seen, forgotten = remember({SEEN: seen}, "c", 100 + HOUR, HOUR)
    assert seen == {"a": 100, "b": 100 + HOUR - 1, "c": 100 + HOUR} and forgotten == 0  # exactly at the cutoff: kept
    seen, forgotten = remember({SEEN: seen}, "d", 101 + HOUR, HOUR)
    assert seen == {"b": 100 + HOUR - 1, "c": 100 + HOUR, "d": 101 + HOUR} and forgotten == 1


def test_a_state_written_before_ids_were_kept_with_their_entity_holds_none():
    assert not remembered({"seq": 3, "hash": "h"}, "a")
    assert remember({"seq": 3, "hash": "h"}, "a", 5, HOUR) == ({"a": 5}, 0)
    assert remember({SEEN: {"a": "not a time"}}, "b", 5, HOUR) == ({"b": 5}, 1)


def _ctx(retention_ms):
    return StageContext(CODEC, TOPICS, registered(KEYS), PROVINCES, dedup_retention_ms=retention_ms)


def test_each_accepted_event_writes_one_state_record_holding_its_id():
    ctx = _ctx(HOUR)
    first, second = event("operator", operator()), event("operator", operator(name="新名称运输有限公司"))
    second["source"]["seq"] = 2
    state: dict = {}
    result = process_batch([inbound(signed(first)), inbound(signed(second), offset=1)], ctx, state, now_ms=10)
    key = ENTITY + first["entity_key"]
    assert [(i, k) for i, k, _ in result.changes] == [(0, key), (1, key)]
    assert state[key][SEEN] == {first["event_id"]: 10, second["event_id"]: 10}
    assert state[key]["seq"] == 2


def test_a_resend_after_the_retention_is_dropped_as_unchanged_and_the_old_id_forgotten():
    ctx = _ctx(HOUR)
    first = event("operator", operator())
    raw = signed(first)
    state: dict = {}
    process_batch([inbound(raw)], ctx, state, now_ms=0)
    same_again = {**first, "event_id": str(uuid.uuid4())}  # the same content under a new id, past the retention
    later = process_batch([inbound(signed(same_again), offset=1)], ctx, state, now_ms=2 * HOUR)
    assert later.counts == {("unchanged", "44"): 1} and later.forgotten == 1
    assert list(state[ENTITY + first["entity_key"]][SEEN]) == [same_again["event_id"]]
    resent = process_batch([inbound(raw, offset=2)], ctx, state, now_ms=2 * HOUR)
    assert resent.counts == {("unchanged", "44"): 1}  # no longer remembered, still not applied twice
    assert resent.outputs == []


def test_an_id_is_a_duplicate_only_for_the_entity_that_accepted_it():
    ctx = _ctx(HOUR)
    first = event("operator", operator())
    other = event("operator", operator(uscc=valid_uscc("91440300MA5F0001X")), event_id=first["event_id"])
    state: dict = {}
    process_batch([inbound(signed(first))], ctx, state, now_ms=0)
    again = process_batch([inbound(signed(first), offset=1)], ctx, state, now_ms=1)
    assert again.counts == {("duplicate", "44"): 1}
    assert other["entity_key"] != first["entity_key"]
    reused = process_batch([inbound(signed(other), offset=2)], ctx, state, now_ms=1)
    assert reused.counts == {("accepted", "44"): 1}


def test_items_from_stops_before_the_changelog_positions(tmp_path):
    store = StateStore(tmp_path / "state")
    try:
        store.apply({"entity:x": {"seq": 1}, "reg:y": "44/440300"}, {("44", 0): 3})
        assert [k for k, _ in store.items_from("")] == ["entity:x", "reg:y"]
    finally:
        store.close()
