"""Create the exchange's topics (idempotently) on the broker in use."""

from __future__ import annotations

from typing import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import TopicError
from .settings import Settings


COMPACTED = {"cleanup.policy": "compact"}


def exchange_topics(settings: Settings) -> list[tuple]:
    """Every topic the exchange needs: (name, partition count[, topic config])."""
    names = settings.topics
    wanted = [(names.province_changes(p), settings.partitions) for p in settings.provinces]
    wanted += [(names.province_inbound(p), settings.partitions) for p in settings.provinces]
    wanted += [
        (names.national_changes, settings.national_partitions),
        (names.national_quality, settings.national_partitions),
        (names.national_dlq, settings.partitions),
    ]
    wanted += [(names.stream_state(p), settings.partitions, COMPACTED) for p in settings.provinces]
    wanted.append((names.registry, settings.partitions, COMPACTED))
    return wanted


def create_topics(bootstrap_servers: str, wanted: Iterable[tuple], timeout: float = 30) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics on {bootstrap_servers}: {exc}") from exc
    new = [
        NewTopic(name, partitions, 1, config=dict(config[0]) if config else {})
        for name, partitions, *config in wanted
        if name not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args and getattr(exc.args[0], "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue
            raise TopicError(f"cannot create topic {name}: {exc}") from exc
    return created
