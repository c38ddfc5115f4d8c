"""Accepted event ids are forgotten after the dedup retention, with a tombstone per id."""

from __future__ import annotations

import pytest

from streams.retention import SEEN, SeenSweep, expired, seen_scope, seen_value
from streams.state import StateStore

HOUR = 3_600_000


def test_seen_value_records_time_and_source_partition():
    assert seen_scope(seen_value(5, "44", 2)) == (5, ("44", 2))


@pytest.mark.parametrize("value", [1_700_000_000_000, None, [1, 2], ["x", "44", 1], [1, 44, 1]])
def test_seen_value_without_a_scope_is_not_parsed(value):
    assert seen_scope(value) is None


def test_only_ids_older_than_the_cutoff_in_owned_partitions_expire():
    entries = [
        (SEEN + "old", seen_value(100, "44", 0)),
        (SEEN + "new", seen_value(900, "44", 0)),
        (SEEN + "not-mine", seen_value(100, "11", 0)),
        (SEEN + "legacy", 100),
    ]
    assert expired(entries, cutoff_ms=500, owned={("44", 0)}) == [(SEEN + "old", ("44", 0))]


def test_an_id_exactly_at_the_cutoff_is_kept():
    assert expired([(SEEN + "a", seen_value(500, "44", 0))], cutoff_ms=500, owned={("44", 0)}) == []


def test_retention_must_be_positive():
    with pytest.raises(ValueError, match="retention"):
        SeenSweep(0)


def _store(tmp_path, ids):
    store = StateStore(tmp_path / "state")
    store.apply({SEEN + i: seen_value(t, "44", 0) for i, t in ids.items()} | {"entity:x": {"seq": 1}}, {("44", 0): 3})
    return store


def test_sweep_walks_the_seen_keys_in_chunks_and_wraps_around(tmp_path):
    ids = {f"id{n:02d}": (0 if n % 2 else 10 * HOUR) for n in range(10)}
    store = _store(tmp_path, ids)
    try:
        sweep = SeenSweep(HOUR)
        now = 10 * HOUR
        found = []
        for _ in range(4):  # 10 keys in chunks of 3: the fourth chunk ends the pass
            found += [k for k, _ in sweep.next_chunk(store.items_from, now, {("44", 0)}, 3)]
        assert sorted(found) == [SEEN + f"id{n:02d}" for n in range(10) if n % 2]
        assert len(found) == len(set(found))
        assert sweep.cursor == SEEN  # wrapped around
        again = sweep.next_chunk(store.items_from, now, {("44", 0)}, 3)
        assert [k for k, _ in again] == [SEEN + "id01"]
    finally:
        store.close()


def test_sweep_of_an_empty_store_finds_nothing(tmp_path):
    store = StateStore(tmp_path / "state")
    try:
        assert SeenSweep(HOUR).next_chunk(store.items_from, 10 * HOUR, {("44", 0)}, 100) == []
    finally:
        store.close()


def test_items_from_stops_before_the_changelog_positions(tmp_path):
    store = _store(tmp_path, {"a": 1})
    try:
        assert [k for k, _ in store.items_from("")] == ["entity:x", SEEN + "a"]
    finally:
        store.close()
