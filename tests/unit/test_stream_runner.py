"""The thin parts around the pure stage: the state store, the seen view, state changes, metrics."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import REGISTRY

from schemas.settings import Settings
from streams import metrics
from streams.errors import StateError, WorkerError
from streams.pipeline import ENTITY, BatchResult, Inbound
from streams.changes import StateView, state_changes
from streams.state import StateStore, decode_change, encode_change


@pytest.fixture
def store(tmp_path):
    opened = StateStore(tmp_path / "state")
    yield opened
    opened.close()


def test_state_store_keeps_values_and_changelog_positions_across_reopen(tmp_path):
    first = StateStore(tmp_path / "s")
    first.apply({"entity:a": 1, "entity:b": {"x": [1, 2]}}, {("44", 2): 17})
    first.apply({"entity:a": None}, {})
    first.close()
    again = StateStore(tmp_path / "s")
    try:
        assert again.get("entity:a") is None
        assert again.get("entity:b") == {"x": [1, 2]}
        assert again.position("44", 2) == 17 and again.position("44", 1) == 0
        assert [key for key, _ in again.items_from("entity:")] == ["entity:b"]
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


def test_state_view_reads_the_store_and_holds_writes_until_applied(store):
    store.apply({ENTITY + "old": 5}, {})
    view = StateView(store)
    view[ENTITY + "new"] = 7
    assert view.get(ENTITY + "old") == 5 and view.get(ENTITY + "new") == 7
    assert view.get(ENTITY + "other") is None
    assert store.get(ENTITY + "new") is None
    del view[ENTITY + "old"]
    assert view.get(ENTITY + "old") is None and store.get(ENTITY + "old") == 5
    assert view.pending == {ENTITY + "new": 7, ENTITY + "old": None}


def test_state_changes_go_to_the_changelog_partition_of_their_source():
    settings = Settings(topic_prefix="tx.", provinces=("11", "44"))
    batch = [
        Inbound("tx.prov.44.changes", 2, 10, b"k", b"v"),
        Inbound("tx.prov.11.changes", 0, 11, b"k", b"v"),
    ]
    result = BatchResult(changes=[(0, "entity:e1", 100), (1, "entity:e2", 200)], ownership=[("operator:X", "11")])
    changes = state_changes(batch, result, settings)
    assert changes.values == {"entity:e1": 100, "entity:e2": 200}
    assert changes.scopes == {"entity:e1": ("44", 2), "entity:e2": ("11", 0)}
    assert changes.ownership == {"operator:X": "11"}


def test_an_accepted_event_from_a_foreign_topic_is_refused():
    settings = Settings(topic_prefix="tx.", provinces=("11",))
    with pytest.raises(WorkerError, match="not a province topic"):
        state_changes([Inbound("elsewhere", 0, 0, None, b"")], BatchResult(changes=[(0, "entity:e1", 1)]), settings)


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


class RecordingProducer:
    """Records produce and flush calls; deliveries succeed, or fail for ``failing_topic``."""

    def __init__(self, failing_topic=None):
        self.calls, self.queued, self.failing_topic = [], [], failing_topic

    def produce(self, topic, value, key, headers=None, on_delivery=None, partition=0):
        self.calls.append(("produce", topic))
        self.queued.append((topic, partition, on_delivery))

    def flush(self, _timeout):
        self.calls.append(("flush", None))
        for offset, (topic, partition, on_delivery) in enumerate(self.queued):
            on_delivery(FailedDelivery() if topic == self.failing_topic else None, Delivered(topic, partition, offset))
        self.queued = []
        return 0

    def poll(self, _timeout):
        return 0


class Delivered:
    def __init__(self, topic, partition, offset):
        self._t, self._p, self._o = topic, partition, offset

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o


class FailedDelivery:
    def str(self):
        return "broker refused"


class RecordingConsumer:
    def __init__(self):
        self.commits = []

    def commit(self, offsets, asynchronous):
        self.commits.append(offsets)


class KnownPositions:
    """Output positions as a worker knows them: every partition of every topic at 0, then as delivered."""

    def __init__(self):
        self.known = {}

    def of(self, topic):
        return list(self.known.setdefault(topic, [0, 0]))

    def observe(self, topic, partition, offset):
        if topic in self.known:
            self.known[topic][partition] = max(self.known[topic][partition], offset + 1)


def handover(settings):
    from streams.handover import Handover
    return Handover(settings.topics, KnownPositions())


def _one_accepted_batch(settings):
    from streams.pipeline import Outbound
    batch = [Inbound(settings.topics.province_changes("44"), 0, 5, b"k", b"v")]
    result = BatchResult(outputs=[Outbound(settings.topics.national_changes, b"k", b"v", [], 0)],
                         changes=[(0, "entity:e1", [1, "44", 0])])
    return batch, result, state_changes(batch, result, settings)


def test_outputs_are_delivered_before_their_state_changes_are_sent(store):
    from streams.commit import write_then_commit
    settings = Settings(topic_prefix="tx.", provinces=("44",))
    producer, consumer = RecordingProducer(), RecordingConsumer()
    batch, result, changes = _one_accepted_batch(settings)
    write_then_commit(producer, consumer, store, settings, batch, result, changes, handover(settings))
    state = "tx.roadx-streams-state.44"
    assert producer.calls == [("produce", state), ("flush", None),  # the since mark naming national.changes
                              ("produce", "tx.national.changes"), ("flush", None),
                              ("produce", state), ("produce", state), ("flush", None)]  # seen id, then done mark
    assert store.get("entity:e1") == [1, "44", 0] and len(consumer.commits) == 1
    assert store.get("out.done:44:0") == 5 and store.get("out.since:44:0") == {"tx.national.changes": [0, 0]}


def test_an_output_not_delivered_sends_no_state_and_commits_nothing(store):
    from streams.commit import write_then_commit
    settings = Settings(topic_prefix="tx.", provinces=("44",))
    producer, consumer = RecordingProducer(failing_topic="tx.national.changes"), RecordingConsumer()
    batch, result, changes = _one_accepted_batch(settings)
    with pytest.raises(WorkerError, match="outputs"):
        write_then_commit(producer, consumer, store, settings, batch, result, changes, handover(settings))
    assert producer.calls.count(("produce", "tx.roadx-streams-state.44")) == 1  # the since mark only
    assert store.get("entity:e1") is None and store.get("out.done:44:0") is None and consumer.commits == []


def test_the_stream_stage_is_given_the_configured_uscc_allow_list(tmp_path):
    from streams.runner import stage_context

    allow = tmp_path / "pilot-codes.txt"
    allow.write_text("# early Fujian pilot codes\n91350100M000100Y44\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path, provinces=("35",), uscc_allow_file=allow)
    assert stage_context(settings).uscc_allow == {"91350100M000100Y44"}
    assert stage_context(Settings(data_dir=tmp_path, provinces=("35",))).uscc_allow == frozenset()
