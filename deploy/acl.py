"""Kafka ACLs of the exchange, generated from the parties taking part (``schemas.parties``).

Party ``P`` (a province, the Corps, a navigation administration; principal ``User:prov-P``) may write only ``prov.P.changes``, its replies to
the cases routed to it, ``prov.P.replies``, and the manifests closing its submissions,
``prov.P.manifests``; it may read only ``xprov.P.inbound`` and the hub's receipts for its
submissions, ``xprov.P.receipts`` (with consumer groups named ``prov-P-...``). The hub's
principals get what their process uses: ``User:roadx-streams`` reads every province's changes
and writes the national topics but ``national.audit``, ``national.alerts`` and
``national.evidence`` (its tallies of each submission's events go to ``national.submissions``),
the inbound topics and its state changelogs; ``User:roadx-service`` (the information service)
reads ``national.changes``, the register it keeps, and writes only ``national.audit``, its record
of every request answered, which no party may read; ``User:roadx-cases`` (the case workflows)
reads every province's replies and the inbound topics, writes the inbound topics (a reply goes
on to the province the case came from) and ``national.alerts`` (overdue cases);
``User:roadx-sink`` reads the national and inbound topics it stores and, as the hub's
submission check, every party's manifests and the stream worker's tallies, answering each
manifest on the party's ``xprov.P.receipts`` and appending both to ``national.evidence``, the
log it alone writes (and reads back, to continue its chain). Analysts get nothing on Kafka:
they query ClickHouse. Output is either ``kafka-acls.sh`` command lines or Strimzi
``KafkaUser`` resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from schemas.errors import SettingsError
from schemas.settings import Settings


STREAMS_PRINCIPAL = "roadx-streams"
SINK_PRINCIPAL = "roadx-sink"
SERVICE_PRINCIPAL = "roadx-service"
CASES_PRINCIPAL = "roadx-cases"
LITERAL = "literal"
PREFIXED = "prefixed"
READ = ("Read", "Describe")
WRITE = ("Write", "Describe")


@dataclass(frozen=True)
class AclRule:
    """Allow ``principal`` the ``operations`` on one topic or group name (or name prefix)."""

    principal: str  # user name, without the ``User:`` type
    resource_type: str  # "topic" or "group"
    name: str
    operations: tuple[str, ...]
    pattern: str = LITERAL


def province_principal(province: str) -> str:
    return f"prov-{province}"


def select_provinces(settings: Settings, text: str | None) -> tuple[str, ...]:
    """Parties named in ``text`` (``11,12,CJ``), or all taking part; unknown codes are an error."""
    if text is None:
        return tuple(settings.provinces)
    codes = tuple(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    if not codes:
        raise SettingsError("--parties names no party (use codes like 11,12,CJ)")
    parties = settings.parties()
    unknown = [c for c in codes if c not in parties]
    if unknown:
        raise SettingsError(f"unknown party code(s) {', '.join(unknown)}: the parties are {', '.join(parties)} "
                            f"(roadx parties)")
    missing = [c for c in codes if c not in settings.provinces]
    if missing:
        raise SettingsError(f"party(ies) {', '.join(missing)} do not take part (ROADX_PARTIES)")
    return codes


def exchange_acls(settings: Settings, provinces: Sequence[str]) -> list[AclRule]:
    """Every ACL the exchange needs for ``provinces``, provinces first, then the hub."""
    names = settings.topics
    prefix = settings.topic_prefix
    rules: list[AclRule] = []
    for p in provinces:
        who = province_principal(p)
        rules += [
            AclRule(who, "topic", names.province_changes(p), WRITE),
            AclRule(who, "topic", names.province_replies(p), WRITE),
            AclRule(who, "topic", names.province_manifests(p), WRITE),
            AclRule(who, "topic", names.province_inbound(p), READ),
            AclRule(who, "topic", names.province_receipts(p), READ),
            AclRule(who, "group", f"{prefix}{who}-", ("Read",), PREFIXED),
        ]
    national = (names.national_changes, names.national_quality, names.national_dlq)
    rules += [AclRule(STREAMS_PRINCIPAL, "topic", names.province_changes(p), READ) for p in provinces]
    rules += [AclRule(STREAMS_PRINCIPAL, "topic", t, WRITE) for t in national]
    rules.append(AclRule(STREAMS_PRINCIPAL, "topic", names.national_submissions, WRITE))
    rules += [AclRule(STREAMS_PRINCIPAL, "topic", names.province_inbound(p), WRITE) for p in provinces]
    rules += [AclRule(STREAMS_PRINCIPAL, "topic", names.stream_state(p), ("Read", "Write", "Describe"))
              for p in provinces]
    rules.append(AclRule(STREAMS_PRINCIPAL, "topic", names.ownership, ("Read", "Write", "Describe")))
    # Its consumer group and those its state readers name (roadx-streams-restore, -registry).
    rules.append(AclRule(STREAMS_PRINCIPAL, "group", names.streams_group, ("Read",), PREFIXED))
    rules.append(AclRule(SERVICE_PRINCIPAL, "topic", names.national_audit, WRITE))
    # The register it keeps: national.changes, read by its own readers (no offsets committed).
    rules.append(AclRule(SERVICE_PRINCIPAL, "topic", names.national_changes, READ))
    rules.append(AclRule(SERVICE_PRINCIPAL, "group", names.service_group, ("Read",), PREFIXED))
    rules += [AclRule(CASES_PRINCIPAL, "topic", names.province_replies(p), READ) for p in provinces]
    rules += [AclRule(CASES_PRINCIPAL, "topic", names.province_inbound(p), ("Read", "Write", "Describe"))
              for p in provinces]
    rules.append(AclRule(CASES_PRINCIPAL, "topic", names.national_alerts, WRITE))
    rules.append(AclRule(CASES_PRINCIPAL, "topic", names.national_dlq, WRITE))  # refused replies
    # Its own topics: the ticks, and those faust makes for its table's changelog and its leader.
    rules.append(AclRule(CASES_PRINCIPAL, "topic", f"{names.cases_group}-", ("Read", "Write", "Describe", "Create"),
                         PREFIXED))
    rules.append(AclRule(CASES_PRINCIPAL, "group", names.cases_group, ("Read",), PREFIXED))
    rules += [AclRule(SINK_PRINCIPAL, "topic", t, READ)
              for t in (*national, names.national_audit, names.national_alerts)]
    rules += [AclRule(SINK_PRINCIPAL, "topic", names.province_inbound(p), READ) for p in provinces]
    # The submission check: manifests and tallies in, receipts and the evidence log out.
    rules += [AclRule(SINK_PRINCIPAL, "topic", names.province_manifests(p), READ) for p in provinces]
    rules.append(AclRule(SINK_PRINCIPAL, "topic", names.national_submissions, READ))
    rules += [AclRule(SINK_PRINCIPAL, "topic", names.province_receipts(p), WRITE) for p in provinces]
    rules.append(AclRule(SINK_PRINCIPAL, "topic", names.national_evidence, ("Read", "Write", "Describe")))
    # Its consumer group and the one its evidence reader names (roadx-sink-evidence, no offsets committed).
    rules.append(AclRule(SINK_PRINCIPAL, "group", names.sink_group, ("Read",), PREFIXED))
    return rules


def _header(provinces: Sequence[str]) -> list[str]:
    return [
        f"# roadx ACLs for provinces {', '.join(provinces)}",
        "# analysts: no Kafka ACLs (they query ClickHouse)",
    ]


def kafka_acl_commands(rules: Sequence[AclRule], provinces: Sequence[str]) -> list[str]:
    """One ``kafka-acls.sh --add`` line per rule; $BOOTSTRAP and $ADMIN_CONFIG come from the shell."""
    lines = _header(provinces)
    for rule in rules:
        ops = " ".join(f"--operation {op}" for op in rule.operations)
        lines.append(
            f'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add '
            f"--allow-principal User:{rule.principal} {ops} --{rule.resource_type} {rule.name} "
            f"--resource-pattern-type {rule.pattern}")
    return lines


def strimzi_users(rules: Sequence[AclRule], provinces: Sequence[str], cluster: str) -> str:
    """One Strimzi ``KafkaUser`` (SCRAM-SHA-512, simple authorization) per principal."""
    by_principal: dict[str, list[AclRule]] = {}
    for rule in rules:
        by_principal.setdefault(rule.principal, []).append(rule)
    docs = []
    for principal, own in by_principal.items():
        lines = [
            "apiVersion: kafka.strimzi.io/v1beta2",
            "kind: KafkaUser",
            "metadata:",
            f"  name: {principal}",
            "  labels:",
            f"    strimzi.io/cluster: {cluster}",
            "spec:",
            "  authentication:",
            "    type: scram-sha-512",
            "  authorization:",
            "    type: simple",
            "    acls:",
        ]
        for rule in own:
            lines += [
                "      - resource:",
                f"          type: {rule.resource_type}",
                f'          name: "{rule.name}"',
                f"          patternType: {'prefix' if rule.pattern == PREFIXED else 'literal'}",
                f"        operations: [{', '.join(rule.operations)}]",
                '        host: "*"',
            ]
        docs.append("\n".join(lines))
    return "\n".join(_header(provinces)) + "\n---\n" + "\n---\n".join(docs) + "\n"
