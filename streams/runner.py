"""The stream worker's loop around the pure stage: consume → ``process_batch`` → write → commit.

Commit order per batch (``write_then_commit``): the since marks a batch needs first
(``streams.handover``), then every output, each stamped with its origin; then every state
change, followed by each source partition's done mark; then the state changes are applied
to the local store, and only then are the source offsets committed. Each step is flushed
and its deliveries checked before the next; a batch that cannot be written raises
``WorkerError`` before its offsets are committed.

A worker killed anywhere in that order leaves its partitions to another (or to itself
restarted), which restores their state from the changelogs, skips the messages up to each
done mark, reads back the outputs written since the since mark, and does not write those
again: each accepted event reaches ``national.changes`` once and each routed case its
province once. No transaction spans the steps (the embedded broker does not isolate
aborted ones).

Partitions are restored before they are processed: when the group gives this worker a
source partition, the matching changelog partition is replayed into the local store.

Each batch also carries the tombstones of accepted event ids older than the
deduplication retention (``streams.retention``) in the partitions this worker owns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, MutableMapping, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.codec import EventCodec
from schemas.registry import make_registry
from schemas.settings import Settings
from schemas.topics import ORIGIN

from . import metrics
from .errors import StateError, WorkerError
from .handover import (
    POSITIONS_REFRESH_SECONDS, Handover, OutputPositions, Scope, done_key, label_outputs, not_done, read_back, since_key,
)
from .pipeline import REGISTRY, BatchResult, Inbound, StageContext, process_batch
from .registry import RegistryReader
from .retention import KEYS_PER_EVENT, SeenSweep
from .state import StateStore, encode_change

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
FLUSH_SECONDS = 30.0
RESTORE_POLL_SECONDS = 0.1
TAIL_POLL_SECONDS = 0.3


def stage_context(settings: Settings) -> StageContext:
    try:
        keys = {p: settings.province_key(p) for p in settings.provinces}
        codec = EventCodec(make_registry(settings.schema_registry_url or None))
    except Exception as exc:
        raise WorkerError(f"cannot prepare the stream stage: {exc}") from exc
    return StageContext(codec, settings.topics, keys, frozenset(settings.provinces), uscc_allow=settings.uscc_allow())


class StateView(MutableMapping[str, Any]):
    """The state as ``process_batch`` sees it: the store, overlaid with this batch's writes."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self.pending:
            value = self.pending[key]
        else:
            value = self._store.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``Mapping.get``, without raising ``KeyError`` for the many keys not there."""
        value = self.pending[key] if key in self.pending else self._store.get(key)
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        self.pending[key] = None

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self.pending.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self.pending.values() if v is not None)


@dataclass
class StateChanges:
    """State changes of one batch, each bound to the changelog partition it belongs to,
    and the registry entries it set."""

    values: dict[str, Any] = field(default_factory=dict)
    scopes: dict[str, tuple[str, int]] = field(default_factory=dict)
    registry: dict[str, Any] = field(default_factory=dict)

    def put(self, scope: tuple[str, int], key: str, value: Any) -> None:
        self.values[key] = value
        self.scopes[key] = scope


def state_changes(batch: Sequence[Inbound], result: BatchResult, settings: Settings) -> StateChanges:
    """Bind what the batch wrote to the source partition of the message that wrote it."""
    changes = StateChanges()
    province_of = settings.topics.province_of_changes_topic
    for index, key, value in result.changes:
        message = batch[index]
        province = province_of(message.topic)
        if province is None:
            raise WorkerError(f"accepted an event from {message.topic!r}, which is not a province topic")
        changes.put((province, message.partition), key, value)
    for key, value in result.registry:
        changes.registry[key] = value
    return changes


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

    Outputs are delivered before the state changes that record them are sent, and the since
    marks they need before them. ``consumed`` (default ``batch``) is every message whose offset
    to commit, including those skipped as done. Returns how many outputs were left out as
    already written by a worker that died processing them.
    """
    names = settings.topics
    deliveries = Deliveries({names.stream_state(p): p for p in settings.provinces}, handover.positions)
    local: dict[str, bytes | None] = {}

    def record(scope: Scope, key: str, value: Any) -> None:
        local[key] = raw = encode_change(value)
        _produce(producer, names.stream_state(scope[0]), key.encode("utf-8"), raw, None, scope[1], deliveries)

    sends, left_out = handover.to_send(label_outputs(batch, result.outputs, handover.province_of))
    if left_out:
        log.info("left out %d outputs already written by the partitions' last owner: %s", len(left_out),
                 "; ".join(f"{s.out.topic} {s.label}" for s in left_out))
    try:
        before = handover.marks_before(sends)
        for scope, since in before.items():
            record(scope, since_key(scope), since)
        if before:
            _flush(producer, deliveries, len(batch), "output marks")
        for send in sends:
            out = send.out
            _produce(producer, out.topic, out.key, out.value, [*out.headers, (ORIGIN, send.label.encode("utf-8"))],
                     None, deliveries)
        _flush(producer, deliveries, len(batch), "outputs")
        for key, value in changes.values.items():
            record(changes.scopes[key], key, value)
        for key, value in changes.registry.items():
            local[REGISTRY + key] = raw = encode_change(value)
            _produce(producer, names.registry, key.encode("utf-8"), raw, None, None, deliveries)
        done, advanced = handover.marks_after(batch)
        for scope, offset in done.items():
            record(scope, done_key(scope), offset)
        for scope, since in advanced.items():  # after the done mark: never ahead of it
            record(scope, since_key(scope), since)
        _flush(producer, deliveries, len(batch), "state changes")
    except (KafkaException, BufferError) as exc:
        raise WorkerError(f"cannot write a batch of {len(batch)} events: {exc}") from exc
    store.apply_encoded(local, deliveries.positions)
    commit_offsets(consumer, consumed if consumed is not None else batch)
    return len(left_out)


def _flush(producer: Producer, deliveries: "Deliveries", events: int, what: str) -> None:
    remaining = producer.flush(FLUSH_SECONDS)
    if remaining or deliveries.failure:
        why = deliveries.failure or f"{remaining} messages still undelivered after {FLUSH_SECONDS:.0f}s"
        raise WorkerError(f"cannot write the {what} of a batch of {events} events: {why}")


def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes | None, headers: Any,
             partition: int | None, on_delivery: Callable) -> None:
    kwargs = {"partition": partition} if partition is not None else {}
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery, **kwargs)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


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


class StreamRunner:
    """One stream worker: its consumer, producer and state store; ``lag(consumer, group)`` records its lag."""

    def __init__(self, settings: Settings, store: StateStore, lag: Callable[[Any, str], Any] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.ctx = stage_context(settings)
        conf = settings.kafka_conf()
        self.consumer = Consumer({
            **conf,
            "group.id": settings.topics.streams_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": min(1000, settings.session_timeout_ms // 3),
            "max.poll.interval.ms": 600_000,
        })
        self.producer = Producer({
            **conf,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        })
        self.source_topics = [settings.topics.province_changes(p) for p in settings.provinces]
        self.registry = RegistryReader(settings, store)
        self.sweep = SeenSweep(int(settings.dedup_retention_hours * 3_600_000))
        self.owned: set[tuple[str, int]] = set()  # (province, partition) this worker is assigned
        self.handover = Handover(settings.topics, OutputPositions(AdminClient(conf)))
        self.positions_at = time.monotonic()
        self.lag = lag(self.consumer, settings.topics.streams_group) if lag is not None else None

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def start(self) -> None:
        """Read the registry up to now and join the group (partitions come with the next steps)."""
        self.registry.catch_up()
        names = self.settings.topics
        self.handover.positions.prime([names.national_changes, names.national_quality, names.national_dlq,
                                       *(names.province_inbound(p) for p in self.settings.provinces)])
        self.consumer.subscribe(self.source_topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def close(self) -> None:
        self.producer.flush(FLUSH_SECONDS)
        self.consumer.close()
        self.registry.close()

    def step(self) -> int:
        """Process one batch; returns how many messages it held."""
        messages = self.consumer.consume(self.settings.stream_batch_size, POLL_SECONDS)
        consumed = []
        for m in messages:
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", m.error())
                continue
            consumed.append(Inbound(m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        self.registry.drain()
        if self.lag is not None:
            self.lag.tick()
        if time.monotonic() - self.positions_at > POSITIONS_REFRESH_SECONDS:
            self.handover.positions.refresh()
            self.positions_at = time.monotonic()
        batch = not_done(consumed, self.handover.done, self.handover.province_of)
        if not batch:
            if consumed:  # every message was written in full before: move the offsets past them
                commit_offsets(self.consumer, consumed)
            self.producer.poll(0)
            return len(consumed)
        now_ms = int(time.time() * 1000)
        result = process_batch(batch, self.ctx, StateView(self.store), now_ms=now_ms)
        changes = state_changes(batch, result, self.settings)
        forgotten = 0
        for key, scope in self.sweep.next_chunk(self.store.items_from, now_ms, self.owned, KEYS_PER_EVENT * len(batch)):
            if key not in changes.values:
                changes.put(scope, key, None)
                forgotten += 1
        already_written = write_then_commit(self.producer, self.consumer, self.store, self.settings, batch, result,
                                            changes, self.handover, consumed)
        metrics.observe(result, forgotten, already_written)
        return len(consumed)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Restore each source partition's state, take over its marks and read back the outputs
        its last owner wrote past them. Every decision is logged: the next loss explains itself."""
        started = time.monotonic()
        taken: list[Scope] = []
        for tp in partitions:
            province = self.settings.topics.province_of_changes_topic(tp.topic)
            if province is not None:
                restored = restore_partition(self.settings, self.store, province, tp.partition)
                scope = (province, tp.partition)
                self.owned.add(scope)
                self.handover.take(scope, self.store.get(done_key(scope)), self.store.get(since_key(scope)))
                taken.append(scope)
                log.info("took %s[%d]: restored %d state changes, done mark %s, since marks %s", tp.topic,
                         tp.partition, restored, self.handover.done[scope], self.handover.since[scope])
        outputs = read_back(self.settings.kafka_conf(), self.settings.topics.streams_group,
                            {s: self.handover.since[s] for s in taken})
        written = self.handover.found(outputs, taken)
        for scope in taken:
            found = sorted(self.handover.written.get(scope, ()))
            if found:
                log.info("partition %s:%d: %d outputs past the done mark are already written, left out when "
                         "their messages come again: %s", *scope, len(found),
                         "; ".join(f"{topic} {label}" for topic, label in found))
        log.info("assigned %d partitions in %.1fs: read back %d outputs from the since marks, %d of them past "
                 "the done marks", len(partitions), time.monotonic() - started, len(outputs), written)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        given = []
        for tp in partitions:
            province = self.settings.topics.province_of_changes_topic(tp.topic)
            if province is not None:
                self.owned.discard((province, tp.partition))
                self.handover.drop((province, tp.partition))
                given.append(f"{tp.topic}[{tp.partition}]")
        log.info("gave up %d partitions: %s", len(given), ", ".join(given))


def restore_partition(settings: Settings, store: StateStore, province: str, partition: int) -> int:
    """Replay changelog ``state.<P>`` partition ``partition`` from the local position to its end.

    The broker's reported end may stop at the base offset of its last batch, so the
    replay reads on until a poll finds nothing more.
    """
    topic = settings.topics.stream_state(province)
    reader = Consumer({
        **settings.kafka_conf(),
        "group.id": f"{settings.topics.streams_group}-restore",
        "enable.auto.commit": False,
    })
    try:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high <= 0:
            return 0  # an empty changelog
        start = max(store.position(province, partition), low)
        reader.assign([TopicPartition(topic, partition, start if start > 0 else OFFSET_BEGINNING)])
        applied, position = 0, start
        while True:
            chunk = reader.consume(10_000, RESTORE_POLL_SECONDS if position < high else TAIL_POLL_SECONDS)
            values: dict[str, bytes | None] = {}
            for m in chunk:
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise StateError(f"cannot restore {topic}[{partition}]: {m.error()}")
                values[m.key().decode("utf-8")] = m.value()
                position = m.offset() + 1
            if not values:
                if position < high:
                    continue
                return applied
            store.apply_encoded(values, {(province, partition): position})
            applied += len(values)
    except KafkaException as exc:
        raise StateError(f"cannot restore {topic}[{partition}]: {exc}") from exc
    finally:
        reader.close()
