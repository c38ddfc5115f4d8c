"""The commit order of one batch of the stream worker: ``write_then_commit``.

First the since marks the batch needs (``streams.handover``), then every output, each
stamped with its origin; then every state change, followed by each source partition's
done mark; then the state changes are applied to the local store, and only then are the
source offsets committed. Each step is flushed and its deliveries checked (``Deliveries``)
before the next; a batch that cannot be written raises ``WorkerError`` before its offsets
are committed. The cases routed late (``streams.waiting``) are written in the same order
(``write_in_order``), with no source offsets to mark or commit.

A worker killed anywhere in that order leaves its partitions to another (or to itself
restarted), which restores their state from the changelogs, skips the messages up to each
done mark, reads back the outputs written since the since mark, and does not write those
again: each accepted event reaches ``national.changes`` once and each routed case its
province once. No transaction spans the steps (the embedded broker does not isolate
aborted ones).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from schemas.kafka import produce
from schemas.settings import Settings
from schemas.topics import ORIGIN

from .changes import StateChanges
from .errors import WorkerError
from .handover import Handover, OutputPositions, Scope, Send, done_key, label_outputs, since_key
from .pipeline import OWNER, BatchResult, Inbound
from .state import StateStore, encode_change

# The worker's log lines keep the loop's logger name: "left out …" is read back by roadx chaos.
log = logging.getLogger("streams.runner")

FLUSH_SECONDS = 30.0


class Deliveries:
    """Delivery reports of one batch: the first failure, how far each changelog partition got,
    and (to ``outputs``) how far each output partition got."""

    def __init__(self, state_topics: dict[str, str], outputs: OutputPositions | None = None) -> None:
        self._state_topics = state_topics  # changelog topic -> province
        self._outputs = outputs
        self.failure: str | None = None
        self.positions: dict[tuple[str, int], int] = {}

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failure = self.failure or f"{msg.topic()}: {err.str()}"
            return
        if self._outputs is not None:
            self._outputs.observe(msg.topic(), msg.partition(), msg.offset())
        province = self._state_topics.get(msg.topic())
        if province is not None:
            scope = (province, msg.partition())
            self.positions[scope] = max(self.positions.get(scope, 0), msg.offset() + 1)


def write_then_commit(producer: Producer, consumer: Consumer, store: StateStore, settings: Settings,
                      batch: Sequence[Inbound], result: BatchResult, changes: StateChanges,
                      handover: Handover, consumed: Sequence[Inbound] | None = None) -> int:
    """The commit order of one batch; raises ``WorkerError`` before committing if anything was not written.

    ``consumed`` (default ``batch``) is every message whose offset to commit, including those
    skipped as done. Returns how many outputs were left out as already written by a worker that
    died processing them.
    """
    sends = label_outputs(batch, result.outputs, handover.province_of)
    left_out = write_in_order(producer, store, settings, handover, sends, changes, batch,
                              f"a batch of {len(batch)} events")
    commit_offsets(consumer, consumed if consumed is not None else batch)
    return left_out


def write_in_order(producer: Producer, store: StateStore, settings: Settings, handover: Handover, sends: list[Send],
                   changes: StateChanges, batch: Sequence[Inbound], subject: str) -> int:
    """Write ``sends`` and ``changes`` in the commit order, up to the local store; raises
    ``WorkerError`` naming ``subject`` if anything was not written. ``batch`` (empty for the
    cases routed late, ``streams.waiting``) sets the done marks.

    Outputs are delivered before the state changes that record them are sent, and the since
    marks they need before them. Returns how many were left out as already written.
    """
    names = settings.topics
    deliveries = Deliveries({names.stream_state(p): p for p in settings.provinces}, handover.positions)
    local: dict[str, bytes | None] = {}

    def record(scope: Scope, key: str, value: Any) -> None:
        local[key] = raw = encode_change(value)
        produce(producer, names.stream_state(scope[0]), raw, key.encode("utf-8"), partition=scope[1],
                on_delivery=deliveries)

    sends, left_out = handover.to_send(sends)
    if left_out:
        log.info("left out %d outputs already written by the partitions' last owner: %s", len(left_out),
                 "; ".join(f"{s.out.topic} {s.label}" for s in left_out))
    try:
        before = handover.marks_before(sends)
        for scope, since in before.items():
            record(scope, since_key(scope), since)
        if before:
            _flush(producer, deliveries, subject, "output marks")
        for send in sends:
            out = send.out
            produce(producer, out.topic, out.value, out.key,
                    headers=[*out.headers, (ORIGIN, send.label.encode("utf-8"))], on_delivery=deliveries)
        _flush(producer, deliveries, subject, "outputs")
        for key, value in changes.values.items():
            record(changes.scopes[key], key, value)
        for key, value in changes.ownership.items():
            local[OWNER + key] = raw = encode_change(value)
            produce(producer, names.ownership, raw, key.encode("utf-8"), on_delivery=deliveries)
        done, advanced = handover.marks_after(batch)
        for scope, offset in done.items():
            record(scope, done_key(scope), offset)
        for scope, since in advanced.items():  # after the done mark: never ahead of it
            record(scope, since_key(scope), since)
        _flush(producer, deliveries, subject, "state changes")
    except (KafkaException, BufferError) as exc:
        raise WorkerError(f"cannot write {subject}: {exc}") from exc
    store.apply_encoded(local, deliveries.positions)
    return len(left_out)


def _flush(producer: Producer, deliveries: Deliveries, subject: str, what: str) -> None:
    remaining = producer.flush(FLUSH_SECONDS)
    if remaining or deliveries.failure:
        why = deliveries.failure or f"{remaining} messages still undelivered after {FLUSH_SECONDS:.0f}s"
        raise WorkerError(f"cannot write the {what} of {subject}: {why}")


def commit_offsets(consumer: Consumer, batch: Sequence[Inbound]) -> None:
    """Commit, synchronously, the offset after the last message of each partition in ``batch``.

    A commit refused because the group is rebalancing is not an error: the batch's output
    and state are written, so the partition's next owner drops the repeats.
    """
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        last[(message.topic, message.partition)] = max(last.get((message.topic, message.partition), -1), message.offset)
    offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        log.warning("offset commit refused (%s); the next owner of these partitions repeats the batch, "
                    "and the stored state drops its events", exc)
