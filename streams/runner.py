"""The stream worker's loop around the pure stage: consume → ``process_batch`` → write → commit.

Each step takes a batch from the source topics, drops the messages up to each partition's
done mark (``streams.handover``), runs the stage on the rest over a view of the state
(``streams.changes``), and writes and commits the batch in the commit order (``streams.commit.write_then_commit``).

Partitions are restored before they are processed: when the group gives this worker a
source partition, the matching changelog partition is replayed into the local store
(``streams.state.restore_partition``), its marks are taken over and the outputs its last
owner wrote past them are read back (``streams.handover``). Every decision about a
partition taken or given up is logged at INFO. Before each batch, the cases waiting for a
register that the ownership table now places are routed (``streams.waiting``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.codec import EventCodec
from schemas.errors import KeyStoreError
from schemas.registry import make_registry
from schemas.settings import Settings

from . import metrics
from .changes import StateView, state_changes
from .commit import FLUSH_SECONDS, commit_offsets, write_in_order, write_then_commit
from .errors import WorkerError
from .handover import (
    POSITIONS_REFRESH_SECONDS, Handover, OutputPositions, Scope, done_key, not_done, read_back, since_key,
)
from .ownership import OwnershipReader
from .pipeline import OWNER, Inbound, StageContext, process_batch
from .state import StateStore, restore_partition
from .waiting import WaitingIndex, late_routes, stored_entries

log = logging.getLogger(__name__)

# The longest a batch waits to fill: the client's batch consume waits out its timeout unless the batch
# fills, so below the batch size every event waited for it. `roadx bench --phases end_to_end --events 50000
# --latency-seconds 10`, two runs each way, alternating: p99 1.62 / 1.42 s at 1,250 events/s, 2.20 / 2.86 s
# at 2,500 and 6.8 / 7.2 s at 5,000 with 0.2 s; 1.14 / 1.26, 2.00 / 2.66 and 5.6 / 5.9 s with 0.1 s; the
# broker's and the worker's CPU the same.
POLL_SECONDS = 0.1


KEYS_REFRESH_SECONDS = 5.0  # how often the registered keys are looked at again: a rotation never stops the line


def province_keys(settings: Settings) -> dict[str, tuple[bytes, ...]]:
    """Each province's event secrets the hub has registered and that are usable now."""
    hub, now = settings.hub_keys(), dt.datetime.now(dt.timezone.utc)
    return {p: hub.event_secrets(p, now) for p in settings.provinces}


def stage_context(settings: Settings) -> StageContext:
    try:
        if settings.auto_keys:
            for p in settings.provinces:
                settings.party_key(p)  # the embedded stack: every party has keys the hub knows
        keys = province_keys(settings)
        codec = EventCodec(make_registry(settings.schema_registry_url or None))
    except Exception as exc:
        raise WorkerError(f"cannot prepare the stream stage: {exc}") from exc
    return StageContext(codec, settings.topics, keys, frozenset(settings.provinces), uscc_allow=settings.uscc_allow(),
                        registers=settings.registers_of(),
                        dedup_retention_ms=int(settings.dedup_retention_hours * 3_600_000))


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
        self.waiting = WaitingIndex()
        self.ownership = OwnershipReader(settings, store, on_applied=self.waiting.registered)
        self.handover = Handover(settings.topics, OutputPositions(AdminClient(conf)))
        self.positions_at = time.monotonic()
        self.keys_at = time.monotonic()
        self.lag = lag(self.consumer, settings.topics.streams_group) if lag is not None else None

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def start(self) -> None:
        """Read the ownership table up to now and join the group (partitions come with the next steps)."""
        self.ownership.catch_up()
        names = self.settings.topics
        self.handover.positions.prime([names.national_changes, names.national_quality, names.national_dlq,
                                       names.national_submissions,
                                       *(names.province_inbound(p) for p in self.settings.provinces)])
        self.consumer.subscribe(self.source_topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def refresh_keys(self) -> None:
        """Take in keys registered, revoked, begun or expired since last looked at; a registry that
        cannot be read now leaves the keys as they were (and says why)."""
        self.keys_at = time.monotonic()
        try:
            self.settings.hub_keys().reload_if_changed()
        except KeyStoreError as exc:
            log.error("the key registry cannot be read, keeping the keys held: %s", exc)
            return
        keys = province_keys(self.settings)
        if keys != self.ctx.province_keys:
            self.ctx = replace(self.ctx, province_keys=keys)

    def close(self) -> None:
        self.producer.flush(FLUSH_SECONDS)
        self.consumer.close()
        self.ownership.close()

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
        self.ownership.drain()
        self.route_waiting()
        if self.lag is not None:
            self.lag.tick()
        if time.monotonic() - self.positions_at > POSITIONS_REFRESH_SECONDS:
            self.handover.positions.refresh()
            self.positions_at = time.monotonic()
        if time.monotonic() - self.keys_at > KEYS_REFRESH_SECONDS:
            self.refresh_keys()
        batch = not_done(consumed, self.handover.done, self.handover.province_of)
        if not batch:
            if consumed:  # every message was written in full before: move the offsets past them
                commit_offsets(self.consumer, consumed)
            self.producer.poll(0)
            return len(consumed)
        now_ms = int(time.time() * 1000)
        result = process_batch(batch, self.ctx, StateView(self.store), now_ms=now_ms)
        changes = state_changes(batch, result, self.settings)
        already_written = write_then_commit(self.producer, self.consumer, self.store, self.settings, batch, result,
                                            changes, self.handover, consumed)
        self.waiting.wrote(changes)
        metrics.observe(result, already_written)
        return len(consumed)

    def route_waiting(self) -> int:
        """Route the waiting cases now due (``streams.waiting``), before the next batch; returns how many were sent."""
        due = self.waiting.take_due()
        sent = 0
        if due:
            entries = [(key, entry) for key in due if (entry := self.store.get(key)) is not None]
            late = late_routes(entries, lambda key: self.store.get(OWNER + key), self.store.get, self.ctx)
            already_written = 0
            if late.changes.values:
                already_written = write_in_order(self.producer, self.store, self.settings, self.handover, late.sends,
                                                 late.changes, [], f"{len(late.sends)} late routes of waiting cases")
                self.waiting.wrote(late.changes)
            metrics.observe_late(late.routed, already_written)
            sent = len(late.sends)
            if sent:
                log.info("routed %d copies of waiting cases late: %s", sent, "; ".join(s.label for s in late.sends))
        self.handover.forget_late()  # every waiting case of the partitions taken has been looked at
        metrics.WAITING.set(len(self.waiting))
        return sent

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
                self.handover.take(scope, self.store.get(done_key(scope)), self.store.get(since_key(scope)))
                taken.append(scope)
                log.info("took %s[%d]: restored %d state changes, done mark %s, since marks %s", tp.topic,
                         tp.partition, restored, self.handover.done[scope], self.handover.since[scope])
        if taken:  # the registry up to now, so the waiting cases are routed where their last owner routed them
            self.ownership.catch_up()
            self.waiting.take(taken, stored_entries(self.store))
        outputs = read_back(self.settings.kafka_conf(), self.settings.topics.streams_group,
                            {s: self.handover.since[s] for s in taken})
        written = self.handover.found(outputs, taken)
        for scope in taken:
            found = sorted(self.handover.written.get(scope, ()))
            if found:
                log.info("partition %s:%d: %d outputs past the done mark or routed late (late/…) are already "
                         "written, left out when made again: %s", *scope, len(found),
                         "; ".join(f"{topic} {label}" for topic, label in found))
        log.info("assigned %d partitions in %.1fs: read back %d outputs from the since marks, %d of them past "
                 "the done marks", len(partitions), time.monotonic() - started, len(outputs), written)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        given = []
        for tp in partitions:
            province = self.settings.topics.province_of_changes_topic(tp.topic)
            if province is not None:
                self.handover.drop((province, tp.partition))
                self.waiting.drop((province, tp.partition))
                given.append(f"{tp.topic}[{tp.partition}]")
        log.info("gave up %d partitions: %s", len(given), ", ".join(given))
