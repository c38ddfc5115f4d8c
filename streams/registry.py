"""The shared registry: which province's register holds each entity, read by every worker.

Workers write entries to the compacted ``roadx-registry`` topic as they accept register
events; each worker reads every partition of it into its local store (``reg:<key>``), the
way a global table is kept. Relational rules and routing look entries up there.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.settings import Settings

from .errors import StateError
from .pipeline import REGISTRY
from .state import StateStore, decode_change

POSITION_SCOPE = "~registry"  # positions kept as (POSITION_SCOPE, partition)
CHUNK = 10_000


class RegistryReader:
    def __init__(self, settings: Settings, store: StateStore) -> None:
        self.topic = settings.topics.registry
        self.store = store
        self.consumer = Consumer({
            **settings.kafka_conf(),
            "group.id": f"{settings.topics.streams_group}-registry",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        })
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        except KafkaException as exc:
            raise StateError(f"cannot read the registry topic {self.topic}: {exc}") from exc
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise StateError(f"the registry topic {self.topic} does not exist: create the exchange's topics first")
        self.partitions = sorted(metadata.partitions)
        self.consumer.assign([
            TopicPartition(self.topic, p, store.position(POSITION_SCOPE, p) or OFFSET_BEGINNING)
            for p in self.partitions
        ])

    def catch_up(self, timeout: float = 60.0) -> int:
        """Read until every partition's end as it was when called; returns entries applied."""
        ends = {}
        for p in self.partitions:
            try:
                ends[p] = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            except KafkaException as exc:
                raise StateError(f"cannot read the registry topic {self.topic}: {exc}") from exc
        applied = 0
        while any(self.store.position(POSITION_SCOPE, p) < end for p, end in ends.items()):
            got = self._apply(self.consumer.consume(CHUNK, 1.0))
            applied += got
            timeout -= 1.0 if not got else 0
            if timeout <= 0:
                raise StateError(f"the registry topic {self.topic} could not be read to its end")
        return applied

    def drain(self) -> int:
        """Apply whatever entries are waiting, without blocking."""
        applied = 0
        while True:
            got = self._apply(self.consumer.consume(CHUNK, 0))
            applied += got
            if got < CHUNK:
                return applied

    def _apply(self, messages: list[Any]) -> int:
        values: dict[str, Any] = {}
        positions: dict[tuple[str, int], int] = {}
        for m in messages:
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise StateError(f"cannot read the registry topic {self.topic}: {m.error()}")
            values[REGISTRY + m.key().decode("utf-8")] = decode_change(m.value())
            positions[(POSITION_SCOPE, m.partition())] = m.offset() + 1
        if values or positions:
            self.store.apply(values, positions)
        return len(values)

    def close(self) -> None:
        self.consumer.close()
