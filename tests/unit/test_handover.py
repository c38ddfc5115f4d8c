"""The handover of a partition after its worker died mid-batch, as pure decisions: which
messages are done, which outputs were already written, which marks to write and when."""

from __future__ import annotations

import pytest

from schemas.settings import Settings
from streams import handover as ho
from streams.errors import WorkerError
from streams.pipeline import BatchResult, Inbound, Outbound
from streams.changes import state_changes
from streams.commit import write_then_commit
from streams.state import StateStore

from test_stream_runner import KnownPositions, RecordingConsumer, RecordingProducer

NAMES = Settings(topic_prefix="tx.", provinces=("11", "44")).topics
T44, T11 = NAMES.province_changes("44"), NAMES.province_changes("11")
CHANGES, QUALITY, INBOUND_11 = NAMES.national_changes, NAMES.national_quality, NAMES.province_inbound("11")


def msg(topic, partition, offset):
    return Inbound(topic, partition, offset, b"k", b"v")


def out(topic, origin):
    return Outbound(topic, b"k", b"v", [], origin)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_origin_labels_number_the_outputs_of_one_message_per_topic():
    batch = [msg(T44, 0, 7), msg(T44, 1, 3)]
    sends = ho.label_outputs(batch, [out(CHANGES, 0), out(QUALITY, 0), out(QUALITY, 0), out(CHANGES, 1)],
                             NAMES.province_of_changes_topic)
    assert [s.label for s in sends] == [f"{T44}:0:7:0", f"{T44}:0:7:0", f"{T44}:0:7:1", f"{T44}:1:3:0"]
    assert [s.scope for s in sends] == [("44", 0), ("44", 0), ("44", 0), ("44", 1)]
    assert ho.parse_origin(sends[2].label) == (T44, 0, 7)


@pytest.mark.parametrize("label", ["", "x", "a:b:c:d", "t:0:-1:0", "t:0:1", ":::", "t:x:1:0"])
def test_a_label_that_is_not_an_origin_is_ignored(label):
    assert ho.parse_origin(label) is None
    assert ho.written_origins([(CHANGES, label)], {("44", 0): -1}, NAMES.province_of_changes_topic) == {}


def test_an_output_without_its_message_is_an_error():
    with pytest.raises(WorkerError, match="names no message"):
        ho.label_outputs([msg(T44, 0, 1)], [out(CHANGES, -1)], NAMES.province_of_changes_topic)


def test_messages_up_to_the_done_mark_are_skipped_per_partition():
    consumed = [msg(T44, 0, 4), msg(T44, 0, 5), msg(T44, 1, 2), msg(T11, 0, 1), msg("other", 0, 0)]
    fresh = ho.not_done(consumed, {("44", 0): 4, ("11", 0): 9}, NAMES.province_of_changes_topic)
    assert [(m.topic, m.partition, m.offset) for m in fresh] == [(T44, 0, 5), (T44, 1, 2), ("other", 0, 0)]


def test_read_back_keeps_only_owned_partitions_past_their_done_mark():
    labels = [f"{T44}:0:4:0", f"{T44}:0:5:0", f"{T44}:0:5:1", f"{T44}:1:9:0", f"{T11}:0:2:0", "junk"]
    written = ho.written_origins([(QUALITY, label) for label in labels], {("44", 0): 4, ("11", 0): -1},
                                 NAMES.province_of_changes_topic)
    assert written == {("44", 0): {(QUALITY, f"{T44}:0:5:0"), (QUALITY, f"{T44}:0:5:1")},
                       ("11", 0): {(QUALITY, f"{T11}:0:2:0")}}


def new_handover(clock=None):
    return ho.Handover(NAMES, KnownPositions(), clock=clock or Clock())


def test_outputs_a_predecessor_wrote_are_left_out_and_counted():
    handover = new_handover()
    handover.take(("44", 0), 4, {CHANGES: [0, 0]})
    assert handover.found([(CHANGES, f"{T44}:0:5:0"), (CHANGES, f"{T44}:0:3:0")], [("44", 0)]) == 1
    sends = ho.label_outputs([msg(T44, 0, 5), msg(T44, 0, 6)], [out(CHANGES, 0), out(CHANGES, 1)],
                             handover.province_of)
    kept, left_out = handover.to_send(sends)
    assert [s.label for s in kept] == [f"{T44}:0:6:0"] and [s.label for s in left_out] == [f"{T44}:0:5:0"]


def test_a_since_mark_is_written_before_the_first_output_to_a_topic_and_not_again():
    handover = new_handover()
    handover.take(("44", 0), None, None)
    handover.positions.known[CHANGES] = [12, 30]
    first = ho.label_outputs([msg(T44, 0, 1)], [out(CHANGES, 0), out(INBOUND_11, 0)], handover.province_of)
    assert handover.marks_before(first) == {("44", 0): {CHANGES: [12, 30], INBOUND_11: [0, 0]}}
    again = ho.label_outputs([msg(T44, 0, 2)], [out(CHANGES, 0)], handover.province_of)
    assert handover.marks_before(again) == {}


def test_done_marks_follow_the_batch_and_since_marks_advance_only_when_due():
    clock = Clock()
    handover = new_handover(clock)
    handover.take(("44", 0), 1, {CHANGES: [0, 0]})
    handover.positions.of(CHANGES)
    handover.positions.observe(CHANGES, 1, 41)
    done, advanced = handover.marks_after([msg(T44, 0, 2), msg(T44, 0, 3), msg(T44, 1, 0)])
    assert done == {("44", 0): 3, ("44", 1): 0} and advanced == {}
    clock.now += ho.SINCE_REFRESH_SECONDS
    done, advanced = handover.marks_after([msg(T44, 0, 4)])
    assert done == {("44", 0): 4} and advanced == {("44", 0): {CHANGES: [0, 42]}}


def test_a_quiet_partition_s_since_mark_advances_now_and_then():
    clock = Clock()
    handover = new_handover(clock)
    handover.take(("44", 0), 1, {CHANGES: [0, 0]})
    handover.take(("44", 1), 7, {CHANGES: [0, 0]})
    handover.positions.of(CHANGES)
    handover.positions.observe(CHANGES, 0, 99)
    clock.now += ho.SINCE_REFRESH_SECONDS
    assert handover.marks_after([msg(T44, 0, 2)])[1] == {("44", 0): {CHANGES: [100, 0]}}
    clock.now += ho.IDLE_REFRESH_SECONDS
    done, advanced = handover.marks_after([msg(T44, 0, 3)])
    assert done == {("44", 0): 3} and advanced == {("44", 0): {CHANGES: [100, 0]}, ("44", 1): {CHANGES: [100, 0]}}
    assert handover.done[("44", 1)] == 7


def test_since_mark_stays_put_until_every_output_found_is_processed_again():
    clock = Clock()
    handover = new_handover(clock)
    handover.take(("44", 0), 1, {CHANGES: [0, 0]})
    handover.found([(CHANGES, f"{T44}:0:3:0"), (INBOUND_11, f"{T44}:0:6:0")], [("44", 0)])
    clock.now += 10 * ho.SINCE_REFRESH_SECONDS
    assert handover.marks_after([msg(T44, 0, 2), msg(T44, 0, 3)])[1] == {}
    assert ("44", 0) in handover.written
    assert handover.marks_after([msg(T44, 0, 6)])[1] == {("44", 0): {CHANGES: [0, 0]}}
    assert handover.written == {}


def test_a_revoked_partition_is_forgotten():
    handover = new_handover()
    handover.take(("44", 0), 3, {CHANGES: [1, 1]})
    handover.found([(CHANGES, f"{T44}:0:4:0")], [("44", 0)])
    handover.drop(("44", 0))
    assert handover.done == {} and handover.since == {} and handover.written == {}


def test_taken_over_batch_writes_only_the_outputs_not_yet_written(tmp_path):
    settings = Settings(topic_prefix="tx.", provinces=("44",))
    handover = ho.Handover(settings.topics, KnownPositions())
    handover.take(("44", 0), 4, {CHANGES: [0, 0]})
    handover.found([(CHANGES, f"{T44}:0:5:0")], [("44", 0)])
    batch = [msg(T44, 0, 5), msg(T44, 0, 6)]
    result = BatchResult(outputs=[out(CHANGES, 0), out(CHANGES, 1)],
                         changes=[(0, "entity:a", [1, "44", 0]), (1, "entity:b", [1, "44", 0])])
    producer, consumer = RecordingProducer(), RecordingConsumer()
    store = StateStore(tmp_path / "s")
    try:
        left_out = write_then_commit(producer, consumer, store, settings, batch, result,
                                     state_changes(batch, result, settings), handover)
        assert left_out == 1
        assert producer.calls.count(("produce", CHANGES)) == 1
        assert store.get("out.done:44:0") == 6 and handover.written == {}
        assert [(tp.partition, tp.offset) for tp in consumer.commits[0]] == [(0, 7)]
    finally:
        store.close()


def test_an_output_found_on_one_topic_does_not_stand_for_the_same_origin_on_another():
    """A worker killed mid-flush may leave a message's national.changes output on the broker and
    not its routed copy: both carry the origin label ``<topic>:<p>:<o>:0``, so the read-back must
    keep the topic with the label, or the routed case is left out as written and lost."""
    handover = new_handover()
    handover.take(("44", 0), 4, {CHANGES: [0, 0], INBOUND_11: [0, 0]})
    assert handover.found([(CHANGES, f"{T44}:0:5:0")], [("44", 0)]) == 1
    sends = ho.label_outputs([msg(T44, 0, 5)], [out(CHANGES, 0), out(INBOUND_11, 0), out(QUALITY, 0)],
                             handover.province_of)
    assert {s.label for s in sends} == {f"{T44}:0:5:0"}
    kept, left_out = handover.to_send(sends)
    assert [s.out.topic for s in kept] == [INBOUND_11, QUALITY] and [s.out.topic for s in left_out] == [CHANGES]
