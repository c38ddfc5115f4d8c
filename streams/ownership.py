"""Who owns which entity: the table of the province whose register holds each entity,
kept by every worker.

Workers write entries to the compacted ``roadx-registry`` topic as they accept register
events (``streams.commit``); each worker reads every partition of it into its local store
(``reg:<key>``), the way a global table is kept. Relational rules and routing look entries
up there. The topic name and the key prefix are the wire and state format and keep their
names.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from confluent_kafka import Consumer, KafkaError

from schemas.kafka import READ_CHUNK, assign_at, reader_conf, read_to_end, watermarks
from schemas.settings import Settings

from .errors import StateError
from .pipeline import OWNER
from .state import StateStore, decode_change

POSITION_SCOPE = "~registry"  # positions kept as (POSITION_SCOPE, partition)


class OwnershipReader:
    """Reads the ownership topic into the local store: to its end at start, then what waits."""

    def __init__(self, settings: Settings, store: StateStore,
                 on_applied: Callable[[Iterable[str]], None] | None = None) -> None:
        self.topic = settings.topics.ownership
        self.store = store
        self.on_applied = on_applied  # told the keys of each read's entries once they are in the store
        self.consumer = Consumer(reader_conf(settings.kafka_conf(), f"{settings.topics.streams_group}-registry"))
        self.partitions = assign_at(self.consumer, self.topic, lambda p: store.position(POSITION_SCOPE, p),
                                    error=StateError)

    def catch_up(self, timeout: float = 60.0) -> int:
        """Read every partition to its end (``schemas.kafka.read_to_end``); returns entries applied.

        Raises ``StateError`` when nothing comes for ``timeout`` seconds while a partition is
        short of the end the broker reported.
        """
        what = f"read the registry topic {self.topic}"
        parts = [(self.topic, p) for p in self.partitions]
        ends = {part: high for part, (_low, high) in watermarks(self.consumer, parts, error=StateError,
                                                                  what=what).items()}
        starts = {(self.topic, p): self.store.position(POSITION_SCOPE, p) for p in self.partitions}
        applied = 0
        for messages in read_to_end(self.consumer, starts, ends, error=StateError, what=what, stall_seconds=timeout):
            applied += self._apply(messages)
        return applied

    def drain(self) -> int:
        """Apply whatever entries are waiting, without blocking."""
        applied = 0
        while True:
            got = self._apply(self.consumer.consume(READ_CHUNK, 0))
            applied += got
            if got < READ_CHUNK:
                return applied

    def _apply(self, messages: list[Any]) -> int:
        values: dict[str, Any] = {}
        positions: dict[tuple[str, int], int] = {}
        for m in messages:
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise StateError(f"cannot read the registry topic {self.topic}: {m.error()}")
            values[OWNER + m.key().decode("utf-8")] = decode_change(m.value())
            positions[(POSITION_SCOPE, m.partition())] = m.offset() + 1
        if values or positions:
            self.store.apply(values, positions)
        if values and self.on_applied is not None:
            self.on_applied(key[len(OWNER):] for key in values)
        return len(values)

    def close(self) -> None:
        self.consumer.close()
