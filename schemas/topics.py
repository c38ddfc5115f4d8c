"""Topic and consumer-group names: the addresses every part of the exchange agrees on.

A deployment may put a prefix before every name (tests use a fresh one each, so one
broker serves many isolated exchanges). Each name is written once, as a template
(``CHANGES_TOPIC`` …); the names, the list of every topic of the exchange
(``TopicNames.exchange``) and the patterns that recognise them are made from the templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

# "{}" is the party (``schemas.parties``): a two-digit GB/T 2260 code for a province, "66" for the
# Xinjiang Production and Construction Corps, letters for a navigation administration ("CJ", "ZJ").
CHANGES_TOPIC = "prov.{}.changes"
REPLIES_TOPIC = "prov.{}.replies"
INBOUND_TOPIC = "xprov.{}.inbound"
MANIFESTS_TOPIC = "prov.{}.manifests"
RECEIPTS_TOPIC = "xprov.{}.receipts"
STATE_TOPIC = "roadx-streams-state.{}"
NATIONAL_TOPIC = "national.{}"
# Every party code, whatever its kind: 2 to 8 capitals or digits (no dot, so it cannot run into the
# name's other parts). The patterns below accept any configured party; which parties take part is
# the settings' selection, checked where it matters (the stage's unknown_province, topic specs, ACLs).
PARTY_CODE = "[0-9A-Z]{2,8}"
PROVINCE_CODE = PARTY_CODE  # its first name, from when every party was a province

# Kafka Connect-style headers that travel with a dead letter or a routed case.
DLQ_REASON = "roadx.error.reason"
DLQ_RULE = "roadx.error.rule"
DLQ_TOPIC = "roadx.error.topic"
DLQ_PARTITION = "roadx.error.partition"
DLQ_OFFSET = "roadx.error.offset"
DLQ_ENTITY_KEY = "roadx.error.entity_key"
DLQ_EVENT_ID = "roadx.error.event_id"
# Set when the raw value was cut to DLQ_MAX_VALUE_BYTES: the original size in bytes.
# The whole message stays in its source topic at the origin the other headers name.
DLQ_VALUE_BYTES = "roadx.error.value_bytes"
DLQ_MAX_VALUE_BYTES = 900_000
ROUTED_FROM = "roadx.routed.from"
ROUTED_REASON = "roadx.routed.reason"
ROUTED_TO = "roadx.routed.to"
ROUTED_CORRELATION_ID = "roadx.routed.correlation_id"
ROUTED_STAGE = "roadx.routed.stage"
REDIRECTED = "redirected"  # ROUTED_REASON of a case a decline sent on to the province it named
# What a routed message is when it is not a change event (the stream stage's routed cases carry
# no such header): ``assist``, a roadx.AssistRequest the information service routed.
ROUTED_KIND = "roadx.routed.kind"
ASSIST = "assist"
ROUTED_REGION = "roadx.routed.region"  # the responsible county or city: the involved entity's registration region
# On a province's reply forwarded by the case workflows to the originating province's inbound
# topic (with ROUTED_CORRELATION_ID, ROUTED_FROM = the replying province, ROUTED_TO = the origin):
# its kind (receipt, progress, answer, decline) and id. The value is the signed roadx.CaseReply.
REPLY_KIND = "roadx.reply.kind"
REPLY_ID = "roadx.reply.id"
# On national.changes: an event older (source.seq) than its entity's last applied one.
STALE = "roadx.stale"
# On every output of the stream stage: "<source topic>:<partition>:<offset>:<n>", the n-th
# output of that source message to that topic. A worker taking over a partition finds by it
# the outputs its killed predecessor had already written.
ORIGIN = "roadx.origin"


@dataclass(frozen=True)
class ExchangeTopic:
    """One topic the exchange needs: its name, its role, whether it has the national partition
    count (``ROADX_NATIONAL_PARTITIONS``) rather than the province one, whether it is compacted."""

    name: str
    role: str  # province_changes | province_inbound | province_replies | province_manifests | province_receipts
    #            | national_changes | national_quality | national_dlq | national_audit | national_alerts
    #            | national_submissions | national_evidence | stream_state | registry | cases_ticks
    national: bool = False
    compacted: bool = False


def pattern(template: str, party: str) -> str:
    """Regular-expression text of a name ``template`` with ``party`` (a regex) for its ``{}``."""
    return party.join(re.escape(part) for part in template.split("{}"))


# A prov.<P>.changes topic under any prefix; group 1 is the party.
ANY_PREFIX_CHANGES = re.compile(pattern(CHANGES_TOPIC, f"({PARTY_CODE})") + "$")


@dataclass(frozen=True)
class TopicNames:
    prefix: str = ""

    @property
    def national_changes(self) -> str:
        return self.prefix + NATIONAL_TOPIC.format("changes")

    @property
    def national_quality(self) -> str:
        return self.prefix + NATIONAL_TOPIC.format("quality")

    @property
    def national_dlq(self) -> str:
        return self.prefix + NATIONAL_TOPIC.format("dlq")

    @property
    def national_audit(self) -> str:
        """One ``roadx.ServiceRequest`` per request the information service answered; written by the hub only."""
        return self.prefix + NATIONAL_TOPIC.format("audit")

    @property
    def national_alerts(self) -> str:
        """Alerts on routed cases whose target province is overdue with its receipt or answer; written by the hub."""
        return self.prefix + NATIONAL_TOPIC.format("alerts")

    @property
    def national_submissions(self) -> str:
        """The stream worker's tallies of the submissions' events (``roadx.SubmissionTally``), keyed by
        ``<party>/<submission id>``; the hub's submission check reads them beside the manifests."""
        return self.prefix + NATIONAL_TOPIC.format("submissions")

    @property
    def national_evidence(self) -> str:
        """The evidence log (``schemas.evidence``): every manifest and receipt, hash-chained, all
        under one key so they keep their order; written by the hub's submission check only."""
        return self.prefix + NATIONAL_TOPIC.format("evidence")

    @property
    def streams_group(self) -> str:
        """Consumer group of the stream worker."""
        return f"{self.prefix}roadx-streams"

    @property
    def sink_group(self) -> str:
        return f"{self.prefix}roadx-sink"

    @property
    def cases_group(self) -> str:
        """Consumer group of the hub's case workflows (it reads the replies and the inbound topics)."""
        return f"{self.prefix}roadx-cases"

    @property
    def service_group(self) -> str:
        """Group id of the information service's register readers (they assign and never commit)."""
        return f"{self.prefix}roadx-service"

    def province_changes(self, province: str) -> str:
        """Where province ``P`` publishes its register changes."""
        return self.prefix + CHANGES_TOPIC.format(province)

    def province_replies(self, province: str) -> str:
        """Where province ``Q`` replies to the cases routed to it (``roadx.CaseReply``), keyed like
        ``xprov.<Q>.inbound`` by the case's entity key."""
        return self.prefix + REPLIES_TOPIC.format(province)

    def province_manifests(self, party: str) -> str:
        """Where party ``P`` closes each submission with its SM2-signed manifest (JSON), keyed by submission id."""
        return self.prefix + MANIFESTS_TOPIC.format(party)

    def province_receipts(self, party: str) -> str:
        """Where the hub answers each of ``P``'s manifests with its SM2-signed receipt (JSON), keyed by submission id."""
        return self.prefix + RECEIPTS_TOPIC.format(party)

    def province_inbound(self, province: str) -> str:
        """Where the cases province ``Q`` must act on are delivered."""
        return self.prefix + INBOUND_TOPIC.format(province)

    def stream_state(self, province: str) -> str:
        """Compacted changelog of the stream stage's state for ``prov.<P>.changes``, partition for partition."""
        return self.prefix + STATE_TOPIC.format(province)

    @property
    def cases_ticks(self) -> str:
        """The case workflows' clock: a tick to each partition every ``ROADX_CASE_CHECK_SECONDS``,
        on which the workflows of that partition are checked against their deadlines."""
        return f"{self.prefix}roadx-cases-ticks"

    @property
    def ownership(self) -> str:
        """Compacted: entity key (and ``plate:<plate>``) → the province whose register holds it
        (the topic keeps its first name, ``roadx-registry``)."""
        return f"{self.prefix}roadx-registry"

    def exchange(self, provinces: Sequence[str]) -> list[ExchangeTopic]:
        """Every topic the exchange of ``provinces`` needs, in the order they are created."""
        topics = [ExchangeTopic(self.province_changes(p), "province_changes") for p in provinces]
        topics += [ExchangeTopic(self.province_inbound(p), "province_inbound") for p in provinces]
        # Same partition count and key as xprov.<Q>.inbound: a case's replies share its partition.
        topics += [ExchangeTopic(self.province_replies(p), "province_replies") for p in provinces]
        topics += [ExchangeTopic(self.province_manifests(p), "province_manifests") for p in provinces]
        topics += [ExchangeTopic(self.province_receipts(p), "province_receipts") for p in provinces]
        topics += [
            ExchangeTopic(self.national_changes, "national_changes", national=True),
            ExchangeTopic(self.national_quality, "national_quality", national=True),
            ExchangeTopic(self.national_dlq, "national_dlq"),
            ExchangeTopic(self.national_audit, "national_audit", national=True),
            ExchangeTopic(self.national_alerts, "national_alerts", national=True),
            ExchangeTopic(self.national_submissions, "national_submissions", national=True),
            ExchangeTopic(self.national_evidence, "national_evidence"),
        ]
        # A changelog partition holds the state of the same partition of prov.<P>.changes.
        topics += [ExchangeTopic(self.stream_state(p), "stream_state", compacted=True) for p in provinces]
        # Which province's register holds each entity; every stream worker reads all of it.
        topics.append(ExchangeTopic(self.ownership, "registry", compacted=True))
        # Partitioned like the replies and inbound topics, whose workflows its ticks check.
        topics.append(ExchangeTopic(self.cases_ticks, "cases_ticks"))
        return topics

    def province_of_changes_topic(self, topic: str) -> str | None:
        """The party (a province or another party) a ``prov.<P>.changes`` topic belongs to, else None."""
        return _province_in(self.prefix, CHANGES_TOPIC, topic)

    def party_in_name(self, name: str) -> str | None:
        """The party a province topic or state changelog is named for (whatever its text), else None."""
        for template in (STATE_TOPIC, CHANGES_TOPIC, REPLIES_TOPIC, INBOUND_TOPIC, MANIFESTS_TOPIC, RECEIPTS_TOPIC):
            match = re.fullmatch(re.escape(self.prefix) + pattern(template, "(.*)"), name)
            if match:
                return match[1]
        return None

    def managed_pattern(self) -> re.Pattern[str]:
        """Names that look like the exchange's topics under this prefix."""
        party = "[^.]+"
        kinds = "|".join(pattern(t, party) for t in (CHANGES_TOPIC, REPLIES_TOPIC, INBOUND_TOPIC, MANIFESTS_TOPIC,
                                                     RECEIPTS_TOPIC, NATIONAL_TOPIC))
        return re.compile(f"{re.escape(self.prefix)}(?:{kinds})|{re.escape(self.prefix)}{pattern(STATE_TOPIC, party)}")


@lru_cache(maxsize=4096)
def _province_in(prefix: str, template: str, topic: str) -> str | None:
    """The party code of ``<prefix><template>``, else None (asked per message)."""
    match = re.fullmatch(re.escape(prefix) + pattern(template, f"({PARTY_CODE})"), topic)
    return match[1] if match else None
