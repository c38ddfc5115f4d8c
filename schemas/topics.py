"""Topic names: the addresses every part of the exchange agrees on."""

from __future__ import annotations

import re

NATIONAL_CHANGES = "national.changes"
NATIONAL_QUALITY = "national.quality"
NATIONAL_DLQ = "national.dlq"

_PROVINCE_TOPIC = re.compile(r"^prov\.(?P<p>[0-9A-Za-z]+)\.changes$")


def province_changes(province: str) -> str:
    """Where province ``P`` publishes its register changes."""
    return f"prov.{province}.changes"


def province_inbound(province: str) -> str:
    """Where cases province ``Q`` must act on are delivered."""
    return f"xprov.{province}.inbound"


def province_of_topic(topic: str) -> str | None:
    """The province a ``prov.<P>.changes`` topic belongs to, else None."""
    match = _PROVINCE_TOPIC.match(topic)
    return match["p"] if match else None


# Kafka Connect-style headers that travel with a dead letter.
DLQ_REASON = "roadx.error.reason"
DLQ_RULE = "roadx.error.rule"
DLQ_TOPIC = "roadx.error.topic"
DLQ_PARTITION = "roadx.error.partition"
DLQ_OFFSET = "roadx.error.offset"
ROUTED_FROM = "roadx.routed.from"
ROUTED_REASON = "roadx.routed.reason"
