"""Each service worker's copy of the national register, read from ``national.changes``.

``national.changes`` already is the register, keyed by entity key, written once by the
stream worker: the service does not write it again. Every service worker reads every
partition of it into its own RocksDB store (``streams.state.StateStore``) from the
position its copy stopped at, as a faust GlobalTable would — so any worker answers any
key, and a killed worker's questions are answered by the others while it catches up.
Positions are written in the same RocksDB batch as the entries, so a restarted worker
replays only the tail; a worker with no copy reads the topic from its beginning.

``RegisterReplica.catch_up`` reads to the end the broker reports at start (the worker is
ready then); ``follow`` keeps reading until stopped, on its own thread, so a question is
never held up by a write.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from prometheus_client import Counter, Gauge

from schemas.codec import EventCodec
from schemas.errors import DecodeError
from schemas.kafka import assign_at, read_to_end, reader_conf, watermarks
from schemas.pii import PiiMasker
from schemas.registry import make_registry
from schemas.settings import Settings
from schemas.topics import STALE

from ..errors import ServiceError
from ..state import StateStore
from .register import Change, millis, plan_changes

log = logging.getLogger("streams.service")

APPLIED = Counter("roadx_service_changes_applied", "Changes of national.changes read into the service's register")
UNREADABLE = Counter("roadx_service_changes_unreadable", "Messages of national.changes the service could not decode")
READY = Gauge("roadx_service_ready", "1 once this worker's register has caught up with national.changes, "
              "0 before it has or while the reader cannot read")
LAST_CHANGE = Gauge("roadx_service_last_change_timestamp_seconds",
                    "Source commit time of the newest change the service's register holds")
# Following the topic: a poll returns after this long even when fewer messages came (the floor of
# freshness), and takes at most this many (the longest a batch holds the interpreter from answers).
POLL_SECONDS = 0.05
FOLLOW_CHUNK = 500
SCOPE = "national"  # positions kept as (SCOPE, partition)


class RegisterReplica:
    """Reads ``national.changes`` into ``store``; ``ready`` once caught up with the end seen at start."""

    def __init__(self, settings: Settings, store: StateStore) -> None:
        self.topic = settings.topics.national_changes
        self.store = store
        self.codec = EventCodec(make_registry(settings.schema_registry_url or None))
        self.masker = PiiMasker(settings.pii_key())
        self.ready = threading.Event()
        self.newest_ts_ms = 0
        self._consumer = Consumer(reader_conf(settings.kafka_conf(), settings.topics.service_group))
        self.partitions = assign_at(self._consumer, self.topic, lambda p: store.position(SCOPE, p), error=ServiceError)

    def catch_up(self, stall_seconds: float = 60.0) -> int:
        """Read every partition to the end reported now; returns the changes applied."""
        what = f"read {self.topic} into the service's register"
        parts = [(self.topic, p) for p in self.partitions]
        ends = {part: high for part, (_low, high) in
                watermarks(self._consumer, parts, error=ServiceError, what=what).items()}
        starts = {(self.topic, p): self.store.position(SCOPE, p) for p in self.partitions}
        applied = sum(self._apply(batch) for batch in
                      read_to_end(self._consumer, starts, ends, error=ServiceError, what=what,
                                  stall_seconds=stall_seconds))
        self.ready.set()
        READY.set(1)
        log.info("register caught up: %d changes applied, %d partitions of %s", applied, len(parts), self.topic)
        return applied

    def follow(self, stop: threading.Event) -> None:
        """Apply what arrives until ``stop`` is set."""
        while not stop.is_set():
            try:
                messages = self._consumer.consume(FOLLOW_CHUNK, POLL_SECONDS)
            except KafkaException as exc:
                log.warning("cannot read %s: %s", self.topic, exc)
                READY.set(0)
                time.sleep(POLL_SECONDS)
                continue
            READY.set(1)
            self._apply([m for m in messages if not _skippable(m)])

    def close(self) -> None:
        self._consumer.close()

    def _apply(self, messages: list[Message]) -> int:
        changes = list(self._decoded(messages))
        positions = {(SCOPE, m.partition()): m.offset() + 1 for m in messages}
        if not positions:
            return 0
        writes = plan_changes(changes, self.store.get, self.masker.token)
        self.store.apply(writes, positions)
        APPLIED.inc(len(changes))
        if changes:
            self.newest_ts_ms = max(self.newest_ts_ms, *(millis(c.envelope["ts_ms"]) for c in changes))
            LAST_CHANGE.set(self.newest_ts_ms / 1000)
        return len(changes)

    def _decoded(self, messages: list[Message]) -> Iterator[Change]:
        for m in messages:
            if m.error() is not None:
                raise ServiceError(f"cannot read {m.topic()}[{m.partition()}]: {m.error()}")
            try:
                _schema_id, event = self.codec.decode(m.value())
            except DecodeError as exc:
                UNREADABLE.inc()
                log.warning("%s[%d]@%d left out of the register: %s", m.topic(), m.partition(), m.offset(), exc)
                continue
            stale = any(name == STALE for name, _value in (m.headers() or ()))
            yield Change(m.partition(), m.offset(), event, stale)


def _skippable(message: Message) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF
