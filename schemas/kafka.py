"""Kafka plumbing every process shares, written once: produce with back-pressure, read
partitions to their end, restore a changelog.

- ``produce`` — one message; while the producer's local queue is full (``BufferError``)
  it polls, so deliveries drain the queue, and tries again.
- ``assign_at`` — assign every partition of a topic where a local copy stopped (the ownership
  table, the service's register).
- ``watermarks`` / ``read_to_end`` — read assigned partitions from where they start to
  their end. The end is the high watermark the broker reports when asked, and the
  embedded broker (Tansu) may report less than the true end (the base offset of its last
  batch): so the read goes on past the reported ends until a poll of ``TAIL_POLL_SECONDS``
  finds nothing more. Partition-EOF events are skipped; any other error message fails.
- ``true_ends`` — where each partition really ends: read on from the reported high
  watermark until a poll finds nothing (for a reader that trusts watermarks, faust's table
  recovery).
- ``committed_offsets`` — where a consumer group will go on reading each partition (the
  offset it committed; ``None`` where it committed none).
- ``restore_changelog`` — replay one partition of a compacted changelog (key → raw value)
  from a position to its end, a chunk at a time.

Errors: each helper takes ``error``, an exception class of the calling package's own tree
(``streams.errors.StateError`` …), and raises it — ``from`` the library's exception when
there is one — naming what could not be read or written. The helpers raise nothing of
``schemas``' tree, so each package keeps wrapping library errors in its own.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

READ_POLL_SECONDS = 0.1  # a poll while partitions are short of their reported end
TAIL_POLL_SECONDS = 0.3  # a poll once they all reached it: nothing in it ends the read
READ_CHUNK = 10_000  # messages taken per poll
FULL_QUEUE_POLL_SECONDS = 0.1  # how long ``produce`` lets deliveries drain a full local queue

Part = tuple[str, int]  # (topic, partition)


def produce(producer: Producer, topic: str, value: bytes | None, key: bytes | None = None, *,
            headers: Any = None, partition: int | None = None, on_delivery: Callable | None = None,
            wait: float = FULL_QUEUE_POLL_SECONDS) -> None:
    """Queue one message; while the local queue is full, poll ``wait`` seconds (serving
    delivery reports, which frees room) and try again. Other errors are the caller's."""
    kwargs: dict[str, Any] = {}
    if headers is not None:
        kwargs["headers"] = headers
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    if partition is not None:
        kwargs["partition"] = partition
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(wait)


def reader_conf(conf: Mapping[str, Any], group: str) -> dict[str, Any]:
    """Consumer settings of a reader that assigns partitions itself and never commits."""
    return {**conf, "group.id": group, "enable.auto.commit": False, "enable.partition.eof": False}


def assign_at(consumer: Consumer, topic: str, position: Callable[[int], int], *,
              error: type[Exception]) -> list[int]:
    """Assign every partition of ``topic`` at ``position(partition)`` (0: its beginning); returns
    the partitions. ``error`` when the broker cannot say or the topic does not exist."""
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    except KafkaException as exc:
        raise error(f"cannot read {topic}: {exc}") from exc
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise error(f"{topic} does not exist: create the exchange's topics first (roadx topics apply)")
    partitions = sorted(metadata.partitions)
    consumer.assign([TopicPartition(topic, p, position(p) or OFFSET_BEGINNING) for p in partitions])
    return partitions


def watermarks(consumer: Consumer, parts: Iterable[Part], *, error: type[Exception],
               what: str) -> dict[Part, tuple[int, int]]:
    """(low, high) of each partition as the broker reports it now (the high one may be short
    of the true end); raises ``error`` "cannot <what>: …" when the broker cannot say."""
    try:
        return {part: consumer.get_watermark_offsets(TopicPartition(*part), timeout=10) for part in parts}
    except KafkaException as exc:
        raise error(f"cannot {what}: {exc}") from exc


def read_to_end(consumer: Consumer, starts: Mapping[Part, int], ends: Mapping[Part, int], *,
                error: type[Exception], what: str, total_seconds: float | None = None,
                stall_seconds: float | None = None) -> Iterator[list[Message]]:
    """Yield the messages of ``consumer``'s assigned partitions, a poll at a time, until each
    partition in ``starts`` reached its reported end in ``ends`` and then a poll finds nothing
    more. The consumer is assigned by the caller, at ``starts``.

    ``error(...)`` is raised for an error message other than partition EOF, a failed poll,
    when ``total_seconds`` passed before the partitions reached their ends, or when no
    message came for ``stall_seconds`` while some were short of them.
    """
    pending = {part for part, start in starts.items() if start < ends.get(part, 0)}
    started = progressed = time.monotonic()
    while True:
        now = time.monotonic()
        if total_seconds is not None and now > started + total_seconds:
            raise error(f"cannot {what} within {total_seconds:.0f}s: {len(pending)} partitions short of their end")
        if stall_seconds is not None and pending and now > progressed + stall_seconds:
            raise error(f"cannot {what}: nothing came for {stall_seconds:.0f}s, "
                        f"{len(pending)} partitions short of their end")
        try:
            polled = consumer.consume(READ_CHUNK, READ_POLL_SECONDS if pending else TAIL_POLL_SECONDS)
        except KafkaException as exc:
            raise error(f"cannot {what}: {exc}") from exc
        messages = []
        for m in polled:
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise error(f"cannot {what}: {m.topic()}[{m.partition()}]: {m.error()}")
            if m.offset() + 1 >= ends.get((m.topic(), m.partition()), 0):
                pending.discard((m.topic(), m.partition()))
            messages.append(m)
        if messages:
            progressed = time.monotonic()
            yield messages
        elif not polled and not pending:
            return


def read_topics(conf: Mapping[str, Any], group: str, topics: Iterable[str], *, error: type[Exception],
                what: str, total_seconds: float | None = None, require_all: bool = False) -> Iterator[list[Message]]:
    """Every message of ``topics`` (those on the broker; all of them with ``require_all``), from
    the beginning to the end (``read_to_end``), a poll at a time."""
    topics = list(topics)
    reader = Consumer({**reader_conf(conf, group), "fetch.max.bytes": 52_428_800})
    try:
        try:
            metadata = reader.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise error(f"cannot {what}: {exc}") from exc
        absent = [t for t in topics if t not in metadata]
        if absent and require_all:
            raise error(f"cannot {what}: {absent} not on the broker")
        parts = [(t, p) for t in topics if t in metadata for p in sorted(metadata[t].partitions)]
        marks = watermarks(reader, parts, error=error, what=what)
        reader.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in parts])
        yield from read_to_end(reader, {part: low for part, (low, _high) in marks.items()},
                               {part: high for part, (_low, high) in marks.items()},
                               error=error, what=what, total_seconds=total_seconds)
    finally:
        reader.close()


def true_ends(conf: Mapping[str, Any], group: str, parts: Iterable[Part], *, error: type[Exception],
              what: str) -> dict[Part, int]:
    """The offset after the last message of each partition: its reported high watermark, or
    past it when messages follow (the embedded broker reports the base offset of its last
    batch). Reads only what lies beyond the reported ends."""
    reader = Consumer(reader_conf(conf, group))
    try:
        ends = {part: max(high, 0) for part, (_low, high) in watermarks(reader, parts, error=error, what=what).items()}
        if not ends:
            return ends
        reader.assign([TopicPartition(t, p, high or OFFSET_BEGINNING) for (t, p), high in ends.items()])
        for messages in read_to_end(reader, dict(ends), ends, error=error, what=what):
            for m in messages:
                part = (m.topic(), m.partition())
                ends[part] = max(ends[part], m.offset() + 1)
        return ends
    finally:
        reader.close()


def committed_offsets(conf: Mapping[str, Any], group: str, parts: Iterable[Part], *, error: type[Exception],
                      what: str) -> dict[Part, int | None]:
    """The offset ``group`` committed for each partition, ``None`` where it committed none."""
    parts = list(parts)
    if not parts:
        return {}
    reader = Consumer(reader_conf(conf, group))
    try:
        try:
            committed = reader.committed([TopicPartition(*part) for part in parts], timeout=10)
        except KafkaException as exc:
            raise error(f"cannot {what}: {exc}") from exc
        failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in committed if tp.error is not None]
        if failed:
            raise error(f"cannot {what}: {'; '.join(failed)}")
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in committed}
    finally:
        reader.close()


def restore_changelog(conf: Mapping[str, Any], group: str, topic: str, partition: int, position: int,
                      apply: Callable[[dict[str, bytes | None], int], None], *, error: type[Exception]) -> int:
    """Replay ``topic[partition]`` from ``position`` (or its low watermark, if later) to its end.

    Each poll's messages go to ``apply(values, next_position)`` as key → raw value (a later
    value of a key in one poll replaces the earlier; ``None`` is a tombstone). Returns how
    many values were applied; an empty changelog is not read at all.
    """
    what = f"restore {topic}[{partition}]"
    reader = Consumer(reader_conf(conf, group))
    try:
        low, high = watermarks(reader, [(topic, partition)], error=error, what=what)[(topic, partition)]
        if high <= 0:
            return 0  # an empty changelog
        start = max(position, low)
        reader.assign([TopicPartition(topic, partition, start if start > 0 else OFFSET_BEGINNING)])
        applied = 0
        for messages in read_to_end(reader, {(topic, partition): start}, {(topic, partition): high},
                                    error=error, what=what):
            values = {m.key().decode("utf-8"): m.value() for m in messages}
            apply(values, messages[-1].offset() + 1)
            applied += len(values)
        return applied
    except KafkaException as exc:
        raise error(f"cannot {what}: {exc}") from exc
    finally:
        reader.close()
