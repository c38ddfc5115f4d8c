"""How far a consumer group is behind: committed offsets against high watermarks."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

from .errors import StackError
from .topics import client_conf


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

    def close(self) -> None:
        self._consumer.close()
