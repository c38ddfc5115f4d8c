"""How far a consumer group is behind: committed offsets against high watermarks."""

from __future__ import annotations

from typing import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from .errors import StackError


class GroupLag:
    """Reads a group's committed offsets without joining it."""

    def __init__(self, bootstrap_servers: str, group: str) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers, "group.id": group,
            "enable.auto.commit": False,
        })
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
