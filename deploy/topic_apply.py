"""Bring the broker's topics in line with the spec, and report what cannot be.

``plan_topics(spec, current)`` is pure: from the spec and what the broker has, it decides
which topics to create, which configs to set and which partition counts to raise, and what
drift no admin call can fix (fewer partitions or another replication factor than the spec
asks: that needs a new topic or a partition reassignment). ``apply_plan`` carries the plan
out with confluent-kafka's AdminClient; applying the same spec again plans nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic, ResourceType)

from schemas.settings import Settings

from .errors import TopicError
from .topicspec import TopicSpec, normalize_policy

CREATE = "create"
ALTER_CONFIG = "alter-config"
ADD_PARTITIONS = "add-partitions"


@dataclass(frozen=True)
class BrokerTopic:
    """A topic as the broker has it (only the configs that were read)."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicAction:
    kind: str
    topic: str
    detail: str
    spec: TopicSpec
    config_changes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class TopicPlan:
    actions: list[TopicAction] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # differences no admin call can fix
    unchanged: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)  # exchange-like topics the spec does not name

    @property
    def changes_nothing(self) -> bool:
        return not self.actions


def _same_value(key: str, wanted: str, actual: str | None) -> bool:
    if actual is None:
        return False
    if key == "cleanup.policy":
        return normalize_policy(wanted) == normalize_policy(actual)
    return wanted == actual


def plan_topics(spec: Sequence[TopicSpec], current: Mapping[str, BrokerTopic],
                managed_pattern: re.Pattern[str] | None = None) -> TopicPlan:
    """What to do to make ``current`` match ``spec`` (pure)."""
    plan = TopicPlan()
    for topic in spec:
        have = current.get(topic.name)
        if have is None:
            plan.actions.append(TopicAction(
                CREATE, topic.name,
                f"{topic.partitions} partitions, replication factor {topic.replication_factor}", topic))
            continue
        changed = False
        if have.partitions < topic.partitions:
            plan.actions.append(TopicAction(ADD_PARTITIONS, topic.name,
                                            f"partitions {have.partitions} -> {topic.partitions}", topic))
            changed = True
        elif have.partitions > topic.partitions:
            plan.drift.append(f"{topic.name}: has {have.partitions} partitions, the spec asks for "
                              f"{topic.partitions}; partitions cannot be removed (recreate the topic)")
            changed = True
        if have.replication_factor != topic.replication_factor:
            plan.drift.append(f"{topic.name}: replication factor is {have.replication_factor}, the spec asks "
                              f"for {topic.replication_factor}; change it with a partition reassignment")
            changed = True
        config = {k: v for k, v in sorted(topic.config.items()) if not _same_value(k, v, have.config.get(k))}
        if config:
            detail = ", ".join(f"{k}: {have.config.get(k, '(unset)')} -> {v}" for k, v in config.items())
            plan.actions.append(TopicAction(ALTER_CONFIG, topic.name, detail, topic, config))
            changed = True
        if not changed:
            plan.unchanged.append(topic.name)
    if managed_pattern is not None:
        named = {t.name for t in spec}
        plan.unmanaged = sorted(n for n in current if n not in named and managed_pattern.fullmatch(n))
    return plan


def managed_pattern(settings: Settings) -> re.Pattern[str]:
    """Names that look like the exchange's topics under this prefix."""
    return settings.topics.managed_pattern()


def format_plan(plan: TopicPlan) -> str:
    lines = [f"  {a.kind:<15}{a.topic}  ({a.detail})" for a in plan.actions]
    lines += [f"  drift          {d}" for d in plan.drift]
    lines += [f"  not in spec    {n} (left as it is)" for n in plan.unmanaged]
    summary = (f"{len(plan.actions)} change(s), {len(plan.drift)} drift(s) that need an operator, "
               f"{len(plan.unchanged)} topic(s) already as specified")
    return "\n".join([summary, *lines])


def open_admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_conf())


def read_broker_topics(admin: AdminClient, names: Sequence[str], also_matching: re.Pattern[str] | None = None,
                       timeout: float = 30) -> dict[str, BrokerTopic]:
    """Partitions, replication factor and configs of ``names`` (and names ``also_matching``) the broker has."""
    try:
        metadata = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TopicError(f"cannot list the broker's topics: {exc}") from exc
    present = [n for n in names if n in metadata]
    if also_matching is not None:
        present += sorted(n for n in metadata if n not in names and also_matching.fullmatch(n))
    configs = _describe_configs(admin, present, timeout)
    topics = {}
    for name in present:
        partitions = metadata[name].partitions
        replicas = max((len(p.replicas) for p in partitions.values()), default=0)
        topics[name] = BrokerTopic(name, len(partitions), replicas, configs.get(name, {}))
    return topics


def _describe_configs(admin: AdminClient, names: Sequence[str], timeout: float) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    out = {}
    try:
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            entries = future.result()
            out[resource.name] = {k: e.value for k, e in entries.items() if e.value is not None}
    except KafkaException as exc:
        raise TopicError(f"cannot read topic configs: {exc}") from exc
    return out


def apply_plan(admin: AdminClient, plan: TopicPlan, timeout: float = 30) -> list[str]:
    """Carry out every action; returns what was done. Failures are raised together at the end."""
    done: list[str] = []
    failed: list[str] = []
    creates = [a for a in plan.actions if a.kind == CREATE]
    if creates:
        new = [NewTopic(a.topic, a.spec.partitions, a.spec.replication_factor, config=dict(a.spec.config))
               for a in creates]
        _collect(admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout),
                 {a.topic: a for a in creates}, done, failed, timeout)
    partitions = [a for a in plan.actions if a.kind == ADD_PARTITIONS]
    if partitions:
        request = [NewPartitions(a.topic, a.spec.partitions) for a in partitions]
        _collect(admin.create_partitions(request, operation_timeout=timeout, request_timeout=timeout),
                 {a.topic: a for a in partitions}, done, failed, timeout)
    alters = [a for a in plan.actions if a.kind == ALTER_CONFIG]
    if alters:
        resources = [ConfigResource(ResourceType.TOPIC, a.topic, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in a.config_changes.items()])
            for a in alters]
        results = admin.incremental_alter_configs(resources, request_timeout=timeout)
        _collect({r.name: f for r, f in results.items()}, {a.topic: a for a in alters}, done, failed, timeout)
    if failed:
        raise TopicError("some topic changes failed:\n  " + "\n  ".join(failed)
                         + ("\ndone before the failure:\n  " + "\n  ".join(done) if done else ""))
    return done


def _collect(futures: Mapping[str, Any], actions: Mapping[str, TopicAction], done: list[str],
             failed: list[str], timeout: float) -> None:
    for name, future in futures.items():
        action = actions[name]
        try:
            future.result(timeout)
            done.append(f"{action.kind} {name} ({action.detail})")
        except KafkaException as exc:
            failed.append(f"{action.kind} {name}: {_error_text(exc)}")


def _error_text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if hasattr(error, "str") else str(exc)

