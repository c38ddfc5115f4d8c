"""Consumer lag: how far a consumer group is behind, seen from inside a consumer and from outside.

From inside, the ``roadx_consumer_lag{group, topic, partition}`` gauge of a running consumer
(``roadx worker streams|sink`` hand ``LagRecorder`` to the stream worker and the sink).
``lag_rows`` is pure: from a consumer's assignment, its positions, committed offsets and
the partitions' watermarks it gives the messages each partition still has to deliver.
``record_lag`` reads those from a confluent-kafka consumer and sets the gauge; it drops
the gauge's partitions the consumer no longer holds. ``LagRecorder`` calls it at most
once per interval from a consume loop.

A partition's lag is ``high watermark - position`` (the next offset this consumer reads),
else ``- committed offset`` before the consumer read from it, else ``- low watermark``
(a group with nothing committed starts at the earliest offset), clamped at 0. Tansu
reports the base offset of its last batch + 1 as the high watermark, so there the lag
under-reports by up to one batch.

From outside, ``GroupLag`` reads a group's committed offsets without joining it, against the
high watermarks: what ``roadx demo`` and ``roadx chaos`` wait on until the line has drained.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Gauge

from .errors import StackError
from .topics import client_conf

log = logging.getLogger("deploy.consumer_lag")

LAG = Gauge("roadx_consumer_lag", "Messages in the partition not yet read by the consumer group",
            ["group", "topic", "partition"])

WATERMARK_TIMEOUT = 2.0  # seconds per partition for a watermark query to the broker

Partition = tuple[str, int]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    lag: int


def lag_rows(assignment: Iterable[Partition], positions: Mapping[Partition, int],
             watermarks: Mapping[Partition, tuple[int, int]],
             committed: Mapping[Partition, int] | None = None) -> list[PartitionLag]:
    """Lag of each assigned partition whose high watermark is known, sorted by topic and partition.

    Offsets below 0 (librdkafka's "invalid"/"end"/"beginning" markers) count as unknown.
    """
    committed = committed or {}
    rows = []
    for tp in sorted(set(assignment)):
        low, high = watermarks.get(tp, (-1, -1))
        if high < 0:
            continue
        start = next((o for o in (positions.get(tp, -1), committed.get(tp, -1), low) if o >= 0), 0)
        rows.append(PartitionLag(tp[0], tp[1], max(high - start, 0)))
    return rows


_recorded: dict[str, set[tuple[str, str]]] = {}  # group -> (topic, partition) label values set
_recorded_lock = threading.Lock()


def record_lag(consumer: Any, group: str) -> None:
    """Set ``roadx_consumer_lag`` for every partition ``consumer`` holds in ``group``.

    Uses the watermarks cached from fetch replies; asks the broker only for partitions
    with none cached yet, and for committed offsets only of partitions not read yet.
    Broker errors are logged, never raised: metrics must not stop a worker.
    """
    try:
        assignment = [(tp.topic, tp.partition) for tp in consumer.assignment()]
        positions = _offsets(consumer.position([TopicPartition(t, p) for t, p in assignment]))
        watermarks = {tp: _watermarks(consumer, tp) for tp in assignment}
        unread = [TopicPartition(t, p) for t, p in assignment if positions.get((t, p), -1) < 0]
        committed = _offsets(consumer.committed(unread, timeout=WATERMARK_TIMEOUT)) if unread else {}
    except (KafkaException, RuntimeError) as exc:
        log.warning("cannot read the lag of group %s: %s", group, exc)
        return
    set_lag(group, lag_rows(assignment, positions, watermarks, committed))


def set_lag(group: str, rows: Iterable[PartitionLag]) -> None:
    """Put ``rows`` on the gauge as the whole of ``group``'s lag in this process."""
    labels = set()
    for row in rows:
        key = (row.topic, str(row.partition))
        LAG.labels(group, *key).set(row.lag)
        labels.add(key)
    with _recorded_lock:
        for topic, partition in _recorded.get(group, set()) - labels:
            try:
                LAG.remove(group, topic, partition)
            except KeyError:
                pass
        _recorded[group] = labels


def _offsets(partitions: Iterable[TopicPartition]) -> dict[Partition, int]:
    return {(tp.topic, tp.partition): tp.offset for tp in partitions if tp.error is None}


def _watermarks(consumer: Any, tp: Partition) -> tuple[int, int]:
    topic_partition = TopicPartition(*tp)
    cached = consumer.get_watermark_offsets(topic_partition, cached=True) or (-1, -1)
    if cached[1] >= 0:
        return cached
    return consumer.get_watermark_offsets(topic_partition, timeout=WATERMARK_TIMEOUT, cached=False) or (-1, -1)


class LagRecorder:
    """Calls ``record_lag`` from a consume loop at most once per ``interval`` seconds."""

    def __init__(self, consumer: Any, group: str, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer, self.group, self.interval, self._clock = consumer, group, interval, clock
        self._last: float | None = None

    def tick(self) -> bool:
        """Record the lag if the interval has passed since the last time; True if it did."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        record_lag(self.consumer, self.group)
        return True


# -- from outside: a group's committed offsets against the high watermarks ----------------------

class GroupLag:
    """Reads a group's committed offsets without joining it.

    ``servers`` is a bootstrap list or a client configuration such as ``settings.kafka_conf()``
    (which carries the TLS/SASL settings).
    """

    def __init__(self, servers: str | Mapping[str, Any], group: str) -> None:
        conf = {**client_conf(servers), "group.id": group, "enable.auto.commit": False}
        try:
            self._consumer = Consumer(conf)
        except KafkaException as exc:
            raise StackError(f"cannot read the offsets of group {group}: {exc}") from exc
        self.group = group

    def behind(self, topics: Iterable[str], timeout: float = 10) -> dict[str, int]:
        """Messages not yet committed by the group, per topic."""
        try:
            metadata = self._consumer.list_topics(timeout=timeout).topics
            partitions = [
                TopicPartition(topic, p)
                for topic in topics if topic in metadata
                for p in metadata[topic].partitions
            ]
            committed = self._consumer.committed(partitions, timeout=timeout)
            lag: dict[str, int] = {}
            for tp in committed:
                _low, high = self._consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                done = tp.offset if tp.offset >= 0 else 0
                lag[tp.topic] = lag.get(tp.topic, 0) + max(high - done, 0)
            return lag
        except KafkaException as exc:
            raise StackError(f"cannot read the offsets of group {self.group}: {exc}") from exc

    def ends(self, topics: Iterable[str], timeout: float = 10) -> dict[tuple[str, int], int]:
        """The end (high watermark) of every partition of ``topics`` now."""
        try:
            metadata = self._consumer.list_topics(timeout=timeout).topics
            return {(topic, p): self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout,
                                                                     cached=False)[1]
                    for topic in topics if topic in metadata for p in metadata[topic].partitions}
        except KafkaException as exc:
            raise StackError(f"cannot read the ends of {', '.join(topics)}: {exc}") from exc

    def reached(self, marks: Mapping[tuple[str, int], int], timeout: float = 10) -> bool:
        """Whether the group has committed every partition up to its mark (``ends`` taken earlier)."""
        try:
            committed = self._consumer.committed([TopicPartition(t, p) for t, p in marks], timeout=timeout)
        except KafkaException as exc:
            raise StackError(f"cannot read the offsets of group {self.group}: {exc}") from exc
        return all(max(tp.offset, 0) >= marks[(tp.topic, tp.partition)] for tp in committed)  # none yet: 0

    def close(self) -> None:
        self._consumer.close()
