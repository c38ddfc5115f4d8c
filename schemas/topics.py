"""Topic and consumer-group names: the addresses every part of the exchange agrees on.

A deployment may put a prefix before every name (tests use a fresh one each, so one
broker serves many isolated exchanges).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

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
# On national.changes: an event older (source.seq) than its entity's last applied one.
STALE = "roadx.stale"
# On every output of the stream stage: "<source topic>:<partition>:<offset>:<n>", the n-th
# output of that source message to that topic. A worker taking over a partition finds by it
# the outputs its killed predecessor had already written.
ORIGIN = "roadx.origin"


@dataclass(frozen=True)
class TopicNames:
    prefix: str = ""

    @property
    def national_changes(self) -> str:
        return f"{self.prefix}national.changes"

    @property
    def national_quality(self) -> str:
        return f"{self.prefix}national.quality"

    @property
    def national_dlq(self) -> str:
        return f"{self.prefix}national.dlq"

    @property
    def streams_group(self) -> str:
        """Consumer group (and faust app id) of the stream worker."""
        return f"{self.prefix}roadx-streams"

    @property
    def sink_group(self) -> str:
        return f"{self.prefix}roadx-sink"

    def province_changes(self, province: str) -> str:
        """Where province ``P`` publishes its register changes."""
        return f"{self.prefix}prov.{province}.changes"

    def province_inbound(self, province: str) -> str:
        """Where the cases province ``Q`` must act on are delivered."""
        return f"{self.prefix}xprov.{province}.inbound"

    def stream_state(self, province: str) -> str:
        """Compacted changelog of the stream stage's state for ``prov.<P>.changes``, partition for partition."""
        return f"{self.prefix}roadx-streams-state.{province}"

    @property
    def registry(self) -> str:
        """Compacted: entity key (and ``plate:<plate>``) → the province whose register holds it."""
        return f"{self.prefix}roadx-registry"

    def province_of_changes_topic(self, topic: str) -> str | None:
        """The province a ``prov.<P>.changes`` topic belongs to, else None."""
        return _province_in(self.prefix, "prov", "changes", topic)

    def province_of_inbound_topic(self, topic: str) -> str | None:
        return _province_in(self.prefix, "xprov", "inbound", topic)


@lru_cache(maxsize=4096)
def _province_in(prefix: str, kind: str, suffix: str, topic: str) -> str | None:
    """The two-digit province of ``<prefix><kind>.<P>.<suffix>``, else None (asked per message)."""
    match = re.fullmatch(rf"{re.escape(prefix)}{kind}\.([0-9]{{2}})\.{suffix}", topic)
    return match[1] if match else None
