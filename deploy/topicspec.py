"""The declarative spec of every topic of the exchange.

``default_spec(settings)`` derives it from the settings: one ``prov.<P>.changes``, one
``xprov.<P>.inbound`` and one ``prov.<P>.replies`` per province,
``national.changes``/``quality``/``dlq``/``audit``/``alerts`` and the stream worker's
compacted state changelog of each province (``roadx-streams-state.<P>``);
``national.changes`` is compacted after a week of full history (``register_config``).
An operator may keep the spec in a TOML file instead (``dump_spec`` writes one, ``load_spec``
reads and validates it)::

    version = 1

    [[topic]]
    name = "prov.44.changes"
    partitions = 3
    replication_factor = 3
    config = { "cleanup.policy" = "delete", "min.insync.replicas" = "2", "retention.ms" = "604800000" }

A spec that breaks a rule is rejected as a whole, with every problem listed, before anything
is changed on a broker.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from schemas.settings import Settings

from .errors import TopicError

SPEC_VERSION = 1
DAY_MS = 24 * 3600 * 1000
# Retention per topic role: a week of raw province changes, a month of what operators replay
# or investigate (cases and the provinces' replies to them, overdue-case alerts, quality
# findings, dead letters, the information service's requests).
RETENTION_MS = {
    "province_changes": 7 * DAY_MS,
    "province_inbound": 30 * DAY_MS,
    "province_replies": 30 * DAY_MS,
    "national_changes": 7 * DAY_MS,
    "national_quality": 30 * DAY_MS,
    "national_dlq": 30 * DAY_MS,
    "national_audit": 30 * DAY_MS,
    "national_alerts": 30 * DAY_MS,
    "cases_ticks": DAY_MS // 24,  # a tick is read within seconds or never
    "province_manifests": 30 * DAY_MS,
    "province_receipts": 30 * DAY_MS,
    "national_submissions": 7 * DAY_MS,
    "national_evidence": -1,  # the evidence log is kept: the store holds it too, and verify reads either
}
MIN_INSYNC_REPLICAS = 2

ALLOWED_CONFIG = frozenset({
    "cleanup.policy", "retention.ms", "retention.bytes", "min.insync.replicas", "segment.ms",
    "segment.bytes", "max.message.bytes", "compression.type", "min.compaction.lag.ms",
    "delete.retention.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
})
_CLEANUP_POLICIES = frozenset({"delete", "compact", "compact,delete"})
_INT_CONFIG = frozenset(ALLOWED_CONFIG - {"cleanup.policy", "compression.type", "message.timestamp.type",
                                          "min.cleanable.dirty.ratio"})
_TOPIC_KEYS = frozenset({"name", "partitions", "replication_factor", "config"})
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it should be on the broker."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "partitions": self.partitions,
                "replication_factor": self.replication_factor, "config": dict(sorted(self.config.items()))}


def register_config() -> dict[str, str]:
    """``national.changes`` is the national register as well as its history: every change is
    kept for ``RETENTION_MS["national_changes"]`` (the sink and the subscribers read them), then
    compacted to each entity's newest, never deleted — so an information-service worker with no
    copy rebuilds the whole register from the topic."""
    return {"cleanup.policy": "compact", "min.compaction.lag.ms": str(RETENTION_MS["national_changes"])}


def default_spec(settings: Settings) -> list[TopicSpec]:
    """Every topic the exchange needs, with partitions, replication and configs from ``settings``."""
    names = settings.topics
    rf = settings.topic_replication_factor
    isr = str(min(MIN_INSYNC_REPLICAS, rf))

    def topic(name: str, partitions: int, **config: str) -> TopicSpec:
        return TopicSpec(name, partitions, rf, {"min.insync.replicas": isr, **config})

    def deleted_after(role: str) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(RETENTION_MS[role])}

    spec = []
    for wanted in names.exchange(settings.provinces):
        partitions = settings.national_partitions if wanted.national else settings.partitions
        if wanted.role == "national_changes":
            config = register_config()
        else:
            config = {"cleanup.policy": "compact"} if wanted.compacted else deleted_after(wanted.role)
        spec.append(topic(wanted.name, partitions, **config))
    return spec


def dump_spec(spec: Sequence[TopicSpec]) -> str:
    """The spec as a TOML file that ``load_spec`` reads back unchanged."""
    lines = ["# roadx topic spec: every topic of the exchange (roadx topics apply --spec FILE)",
             f"version = {SPEC_VERSION}"]
    for topic in spec:
        config = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(topic.config.items()))
        lines += ["", "[[topic]]", f"name = {json.dumps(topic.name)}", f"partitions = {topic.partitions}",
                  f"replication_factor = {topic.replication_factor}", f"config = {{ {config} }}"]
    return "\n".join(lines) + "\n"


def load_spec(path: Path, settings: Settings) -> list[TopicSpec]:
    """Read and validate a TOML spec file; ``TopicError`` lists every problem found."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopicError(f"cannot read topic spec {path}: {exc}") from exc
    return parse_spec(text, settings, source=str(path))


def parse_spec(text: str, settings: Settings, source: str = "topic spec") -> list[TopicSpec]:
    """Validate a TOML spec against the rules and the configured provinces."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopicError(f"{source}: not valid TOML: {exc}") from exc
    problems: list[str] = []
    unknown = sorted(set(document) - {"version", "topic"})
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: version, topic)")
    if document.get("version", SPEC_VERSION) != SPEC_VERSION:
        problems.append(f"version {document.get('version')!r} is not supported (use {SPEC_VERSION})")
    entries = document.get("topic", [])
    if not isinstance(entries, list) or not entries:
        problems.append("no [[topic]] entries")
        entries = []
    spec: list[TopicSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        label = f"topic #{index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']})"
        topic, errors = _parse_topic(entry, settings)
        problems += [f"{label}: {e}" for e in errors]
        if topic is not None:
            if topic.name in seen:
                problems.append(f"{label}: topic named twice")
            seen.add(topic.name)
            spec.append(topic)
    if problems:
        raise TopicError(f"{source} is invalid, nothing was changed:\n  " + "\n  ".join(problems))
    return spec


def _parse_topic(entry: Any, settings: Settings) -> tuple[TopicSpec | None, list[str]]:
    if not isinstance(entry, dict):
        return None, ["must be a table with name, partitions, replication_factor, config"]
    errors = []
    unknown = sorted(set(entry) - _TOPIC_KEYS)
    if unknown:
        errors.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_TOPIC_KEYS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        errors.append(f"name {name!r} is not a legal topic name ([A-Za-z0-9._-], 1-249 characters)")
    else:
        errors += _province_errors(name, settings)
    partitions = entry.get("partitions")
    rf = entry.get("replication_factor")
    for key, value in (("partitions", partitions), ("replication_factor", rf)):
        if not _positive_int(value):
            errors.append(f"{key} must be a whole number of at least 1, not {value!r}")
    raw_config = entry.get("config", {})
    if not isinstance(raw_config, dict):
        errors.append("config must be a table of topic configs")
        raw_config = {}
    config: dict[str, str] = {}
    for key, value in raw_config.items():
        problem = _config_error(key, value)
        if problem:
            errors.append(problem)
        else:
            config[key] = str(value)
    if "min.insync.replicas" in config and _positive_int(rf) and int(config["min.insync.replicas"]) > rf:
        errors.append(f"min.insync.replicas {config['min.insync.replicas']} exceeds replication_factor {rf}")
    if isinstance(name, str) and _is_state_topic(name, settings) and config.get("cleanup.policy") != "compact":
        errors.append("a state changelog topic must have cleanup.policy = \"compact\"")
    if errors:
        return None, errors
    return TopicSpec(name, partitions, rf, config), []


def _province_errors(name: str, settings: Settings) -> list[str]:
    code = settings.topics.party_in_name(name)
    if code is None:
        return []
    if code not in settings.parties():
        return [f"unknown party code {code!r} (roadx parties lists them: a province's two-digit GB/T 2260 code, "
                f"66, CJ, ZJ …)"]
    if code not in settings.provinces:
        return [f"party {code} is not one of the parties taking part (ROADX_PARTIES)"]
    return []


def _is_state_topic(name: str, settings: Settings) -> bool:
    return name.startswith(settings.topics.stream_state("")) or name == settings.topics.ownership


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _config_error(key: str, value: Any) -> str | None:
    if key not in ALLOWED_CONFIG:
        return f"unknown topic config {key!r} (allowed: {', '.join(sorted(ALLOWED_CONFIG))})"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"config {key} must be a string or number, not {value!r}"
    text = str(value)
    if key == "cleanup.policy" and normalize_policy(text) not in _CLEANUP_POLICIES:
        return f"cleanup.policy {text!r} must be one of delete, compact, \"compact,delete\""
    if key in _INT_CONFIG:
        try:
            number = int(text)
        except ValueError:
            return f"config {key} must be a whole number, not {text!r}"
        if number < -1 or (key == "min.insync.replicas" and number < 1):
            return f"config {key} = {number} is out of range"
    return None


def normalize_policy(text: str) -> str:
    """``delete,compact`` and ``compact, delete`` are the same policy."""
    return ",".join(sorted(part.strip() for part in text.split(",") if part.strip()))
