"""Create the exchange's topics (idempotently) on the broker in use."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.settings import Settings

from .errors import TopicError


COMPACTED = {"cleanup.policy": "compact"}


def exchange_topics(settings: Settings) -> list[tuple]:
    """Every topic the exchange needs: (name, partition count[, topic config])."""
    wanted: list[tuple] = []
    for topic in settings.topics.exchange(settings.provinces):
        partitions = settings.national_partitions if topic.national else settings.partitions
        wanted.append((topic.name, partitions, COMPACTED) if topic.compacted else (topic.name, partitions))
    return wanted


def client_conf(servers: str | Mapping[str, Any]) -> dict[str, Any]:
    """Client settings from a bootstrap list, or a whole client configuration (``Settings.kafka_conf()``,
    which carries the TLS/SASL settings) taken as it is."""
    if isinstance(servers, str):
        return {"bootstrap.servers": servers}
    if not servers.get("bootstrap.servers"):
        raise TopicError("the Kafka client settings name no bootstrap.servers")
    return dict(servers)


def create_topics(servers: str | Mapping[str, Any], wanted: Iterable[tuple], timeout: float = 30) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are.

    ``servers`` is a bootstrap list or a client configuration such as ``settings.kafka_conf()``.
    """
    conf = client_conf(servers)
    bootstrap_servers = conf["bootstrap.servers"]
    try:
        admin = AdminClient(conf)
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
