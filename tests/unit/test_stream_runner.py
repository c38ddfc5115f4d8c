"""The thin parts around the pure stage: the state store, the seen view, state changes, metrics."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import REGISTRY

from deploy.settings import Settings
from streams import metrics
from streams.errors import StateError, WorkerError
from streams.pipeline import BatchResult, Inbound
from streams.runner import SEEN_PREFIX, SeenView, state_changes
from streams.state import StateStore, decode_change, encode_change


@pytest.fixture
def store(tmp_path):
    opened = StateStore(tmp_path / "state")
    yield opened
    opened.close()


def test_state_store_keeps_values_and_changelog_positions_across_reopen(tmp_path):
    first = StateStore(tmp_path / "s")
    first.apply({"seen:a": 1, "seen:b": {"x": [1, 2]}}, {("44", 2): 17})
    first.apply({"seen:a": None}, {})
    first.close()
    again = StateStore(tmp_path / "s")
    try:
        assert again.get("seen:a") is None and "seen:a" not in again
        assert again.get("seen:b") == {"x": [1, 2]}
        assert again.position("44", 2) == 17 and again.position("44", 1) == 0
        assert list(again.keys_with_prefix("seen:")) == ["seen:b"]
    finally:
        again.close()


def test_second_worker_on_one_machine_gets_its_own_state_slot(tmp_path):
    first = StateStore.open_free_slot(tmp_path)
    second = StateStore.open_free_slot(tmp_path)
    try:
        assert first.path.name == "w0" and second.path.name == "w1"
    finally:
        first.close()
        second.close()
    reopened = StateStore.open_free_slot(tmp_path)
    assert reopened.path.name == "w0"
    reopened.close()


def test_state_store_in_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((StateError, OSError)):
        StateStore(blocker / "state")


def test_changelog_values_round_trip_and_none_is_a_tombstone():
    assert decode_change(encode_change({"seq": 3})) == {"seq": 3}
    assert encode_change(None) is None and decode_change(None) is None


def test_seen_view_reads_the_store_and_holds_new_ids_until_written(store):
    store.apply({SEEN_PREFIX + "old": 5}, {})
    seen = SeenView(store)
    seen["new"] = 7
    assert "old" in seen and "new" in seen and "other" not in seen
    assert seen["old"] == 5 and seen["new"] == 7
    assert store.get(SEEN_PREFIX + "new") is None
    with pytest.raises(KeyError):
        seen["other"]
    with pytest.raises(WorkerError):
        del seen["new"]


def test_state_changes_go_to_the_changelog_partition_of_their_source(store):
    settings = Settings(topic_prefix="tx.", provinces=("11", "44"))
    batch = [
        Inbound("tx.prov.44.changes", 2, 10, b"k", b"v"),
        Inbound("tx.prov.11.changes", 0, 11, b"k", b"v"),
    ]
    seen = SeenView(store)
    seen["e1"], seen["e2"] = 100, 200
    changes = state_changes(batch, BatchResult(accepted=[(0, "e1"), (1, "e2")]), seen, settings)
    assert changes.values == {SEEN_PREFIX + "e1": 100, SEEN_PREFIX + "e2": 200}
    assert changes.scopes == {SEEN_PREFIX + "e1": ("44", 2), SEEN_PREFIX + "e2": ("11", 0)}


def test_an_accepted_event_from_a_foreign_topic_is_refused(store):
    settings = Settings(topic_prefix="tx.", provinces=("11",))
    seen = SeenView(store)
    seen["e1"] = 1
    with pytest.raises(WorkerError, match="not a province topic"):
        state_changes([Inbound("elsewhere", 0, 0, None, b"")], BatchResult(accepted=[(0, "e1")]), seen, settings)


def test_metrics_count_outcomes_rules_and_routes():
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("roadx_stream_events_total", outcome="accepted", province="44"),
        value("roadx_stream_rejected_total", rule="invalid_uscc", province="44"),
        value("roadx_stream_routed_total", source="44", target="11"),
    )
    metrics.observe(BatchResult(
        counts=Counter({("accepted", "44"): 3, ("rejected", "44"): 1}),
        rejects=Counter({("invalid_uscc", "44"): 1}),
        routed=Counter({("44", "11"): 2}),
    ))
    after = (
        value("roadx_stream_events_total", outcome="accepted", province="44"),
        value("roadx_stream_rejected_total", rule="invalid_uscc", province="44"),
        value("roadx_stream_routed_total", source="44", target="11"),
    )
    assert [a - b for a, b in zip(after, before)] == [3, 1, 2]
