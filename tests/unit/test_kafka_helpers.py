"""The Kafka helpers every process shares (``schemas.kafka``), against fakes of the client."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from schemas import kafka


class Full(Exception):
    pass


class QueueFullOnce:
    """A producer whose local queue is full for the first ``full`` produce calls."""

    def __init__(self, full: int) -> None:
        self.full, self.produced, self.polls = full, [], 0

    def produce(self, topic, value, key, **kwargs):
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.produced.append((topic, value, key, kwargs))

    def poll(self, _timeout):
        self.polls += 1


def test_a_full_queue_is_drained_by_polling_and_the_message_goes_once():
    producer = QueueFullOnce(full=2)
    kafka.produce(producer, "t", b"v", b"k", partition=3, on_delivery=print)
    assert producer.polls == 2
    assert producer.produced == [("t", b"v", b"k", {"on_delivery": print, "partition": 3})]


class Msg:
    def __init__(self, topic, partition, offset, key=b"k", value=b"v", error=None):
        self._t, self._p, self._o, self._k, self._v, self._e = topic, partition, offset, key, value, error

    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
    def key(self): return self._k
    def value(self): return self._v
    def error(self): return self._e


class Eof:
    def code(self): return KafkaError._PARTITION_EOF


class Broken:
    def code(self): return KafkaError._TRANSPORT
    def __str__(self): return "transport"


class Polls:
    """A consumer answering each poll with the next prepared list (then nothing); records timeouts."""

    def __init__(self, *polls):
        self.polls, self.timeouts = list(polls), []

    def consume(self, _n, timeout):
        self.timeouts.append(timeout)
        return self.polls.pop(0) if self.polls else []


def test_the_read_goes_on_past_a_reported_end_until_a_poll_finds_nothing():
    consumer = Polls([Msg("t", 0, 0), Msg("t", 0, 1)], [Msg("t", 0, 2, error=Eof())], [Msg("t", 0, 2)], [])
    got = [m.offset() for chunk in kafka.read_to_end(consumer, {("t", 0): 0}, {("t", 0): 2}, error=Full, what="read t")
           for m in chunk]
    assert got == [0, 1, 2]  # offset 2 lay past the end the broker reported; the EOF is skipped
    assert consumer.timeouts[0] == kafka.READ_POLL_SECONDS and consumer.timeouts[-1] == kafka.TAIL_POLL_SECONDS


def test_a_partition_short_of_its_end_is_waited_for():
    consumer = Polls([], [], [Msg("t", 0, 4)], [])
    got = list(kafka.read_to_end(consumer, {("t", 0): 4}, {("t", 0): 5}, error=Full, what="read t"))
    assert [[m.offset() for m in chunk] for chunk in got] == [[4]]
    assert consumer.timeouts[:3] == [kafka.READ_POLL_SECONDS] * 3


def test_errors_are_raised_as_the_callers_error():
    with pytest.raises(Full, match="cannot read t: t\\[0\\]: transport"):
        list(kafka.read_to_end(Polls([Msg("t", 0, 0, error=Broken())]), {("t", 0): 0}, {("t", 0): 1},
                               error=Full, what="read t"))

    class Failing:
        def consume(self, _n, _timeout):
            raise KafkaException("gone")

    with pytest.raises(Full, match="cannot read t: ") as caught:
        list(kafka.read_to_end(Failing(), {("t", 0): 0}, {("t", 0): 1}, error=Full, what="read t"))
    assert isinstance(caught.value.__cause__, KafkaException)


def test_a_read_that_makes_no_progress_gives_up():
    with pytest.raises(Full, match="nothing came for 0s, 1 partitions short of their end"):
        list(kafka.read_to_end(Polls(), {("t", 0): 0}, {("t", 0): 1}, error=Full, what="read t", stall_seconds=0))
    with pytest.raises(Full, match="cannot read t within 0s: 1 partitions short of their end"):
        list(kafka.read_to_end(Polls(), {("t", 0): 0}, {("t", 0): 1}, error=Full, what="read t", total_seconds=0))


class Listing:
    """A consumer whose topic listing is given, recording what it is assigned."""

    def __init__(self, partitions=None, fail=False):
        self.partitions, self.fail, self.assigned = partitions, fail, None

    def list_topics(self, topic, timeout):
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        meta = type("T", (), {"error": None, "partitions": {p: None for p in self.partitions}})
        return type("M", (), {"topics": {topic: meta} if self.partitions else {}})

    def assign(self, parts):
        self.assigned = [(tp.topic, tp.partition, tp.offset) for tp in parts]


def test_assign_at_starts_each_partition_where_its_copy_stopped_or_at_the_beginning():
    from confluent_kafka import OFFSET_BEGINNING

    consumer = Listing([1, 0])
    assert kafka.assign_at(consumer, "t", {0: 0, 1: 7}.get, error=Full) == [0, 1]
    assert consumer.assigned == [("t", 0, OFFSET_BEGINNING), ("t", 1, 7)]
    with pytest.raises(Full, match="t does not exist"):
        kafka.assign_at(Listing([]), "t", lambda p: 0, error=Full)
    with pytest.raises(Full, match="cannot read t"):
        kafka.assign_at(Listing(fail=True), "t", lambda p: 0, error=Full)
