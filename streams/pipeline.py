"""The stream stage as a pure function over a batch: no Kafka, no clocks.

Per message, in order: decode → provenance (source topic, known province, signature)
→ dedup (``event_id`` seen before) → validation → forward to ``national.changes`` and
route cases to ``xprov.<Q>.inbound``. A message failing any step goes to the DLQ with
its raw bytes and origin; the rest of the batch flows on. Accepted events forward their
original bytes, so signatures stay verifiable downstream.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, MutableMapping, Sequence

from schemas import signing
from schemas import topics as topic_headers
from schemas.codec import EventCodec
from schemas.errors import DecodeError
from schemas.topics import TopicNames

from .errors import Rejection
from .routing import route_targets
from .validation import describe, validate_event

# Origin of a forwarded event on national.changes.
SOURCE_TOPIC = "roadx.source.topic"
SOURCE_PARTITION = "roadx.source.partition"
SOURCE_OFFSET = "roadx.source.offset"

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
UNKNOWN_PROVINCE = "unknown"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Inbound:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Outbound:
    """One message to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True)
class StageContext:
    codec: EventCodec
    topics: TopicNames
    province_keys: Mapping[str, bytes]
    provinces: frozenset[str]
    uscc_allow: frozenset[str] = frozenset()


@dataclass
class BatchResult:
    """What a batch produced.

    ``counts`` is keyed (outcome, province of the source topic); ``rejects`` is keyed
    (rule, province); ``routed`` is keyed (source, target). ``accepted`` lists
    (index in the batch, event_id) of every accepted event, in order.
    """

    outputs: list[Outbound] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    routed: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)
    accepted: list[tuple[int, str]] = field(default_factory=list)


def process_batch(batch: Sequence[Inbound], ctx: StageContext, seen: MutableMapping[str, int]) -> BatchResult:
    """Run every message of ``batch`` through the stage; never raises for bad input.

    ``seen`` maps the event_id of every accepted event to its ``ts_ms``; an event
    already in it is dropped as a duplicate. Only accepted events are remembered, so a
    rejected event sent again is rejected again.
    """
    result = BatchResult()
    for index, message in enumerate(batch):
        province = ctx.topics.province_of_changes_topic(message.topic) or UNKNOWN_PROVINCE
        event = None
        try:
            event = _decode(message, ctx)
            _check_provenance(message, event, province, ctx)
            event_id = str(event["event_id"])
            if event_id in seen:
                result.counts[(DUPLICATE, province)] += 1
                continue
            validate_event(event, ctx.uscc_allow)
        except Exception as exc:  # bad input never stops the batch
            rejection = exc if isinstance(exc, Rejection) else _unexpected(message, exc)
            result.outputs.append(dead_letter(message, rejection, ctx.topics, event))
            result.counts[(REJECTED, province)] += 1
            result.rejects[(rejection.rule, province)] += 1
            continue
        seen[event_id] = _epoch_ms(event["ts_ms"])
        result.accepted.append((index, event_id))
        result.counts[(ACCEPTED, province)] += 1
        _forward(message, event, province, ctx, result)
    return result


def _decode(message: Inbound, ctx: StageContext) -> dict[str, Any]:
    try:
        return ctx.codec.decode(message.value)[1]
    except DecodeError as exc:
        raise Rejection(exc.rule, f"{_origin(message)}: {exc.rule}: {exc}") from exc


def _check_provenance(message: Inbound, event: Mapping[str, Any], province: str, ctx: StageContext) -> None:
    claimed = event["source"]["province"]
    who = describe(event)
    if claimed != province:
        raise Rejection(
            "province_mismatch",
            f"{who}: province_mismatch: claims province {claimed!r} but arrived on {message.topic!r}",
        )
    key = ctx.province_keys.get(claimed)
    if claimed not in ctx.provinces or key is None:
        raise Rejection("unknown_province", f"{who}: unknown_province: {claimed!r} is not a province of this exchange")
    if not signing.verify(message.value, key):
        raise Rejection("bad_signature", f"{who}: bad_signature: not signed with province {claimed}'s key")


def _forward(message: Inbound, event: Mapping[str, Any], province: str, ctx: StageContext, result: BatchResult) -> None:
    key = event["entity_key"].encode("utf-8")
    result.outputs.append(
        Outbound(
            ctx.topics.national_changes,
            key,
            message.value,
            [
                (SOURCE_TOPIC, message.topic.encode("utf-8")),
                (SOURCE_PARTITION, str(message.partition).encode("ascii")),
                (SOURCE_OFFSET, str(message.offset).encode("ascii")),
            ],
        )
    )
    for target, fields in route_targets(event, province, ctx.provinces).items():
        result.outputs.append(
            Outbound(
                ctx.topics.province_inbound(target),
                key,
                message.value,
                [
                    (topic_headers.ROUTED_FROM, province.encode("ascii")),
                    (topic_headers.ROUTED_REASON, ",".join(fields).encode("ascii")),
                ],
            )
        )
        result.routed[(province, target)] += 1


def dead_letter(message: Inbound, rejection: Rejection, topics: TopicNames,
                event: Mapping[str, Any] | None = None) -> Outbound:
    """The DLQ record of a rejected message: raw bytes and key as received, reason in headers;
    the event id and entity key too when the message decoded."""
    headers = [
        (topic_headers.DLQ_REASON, rejection.message.encode("utf-8")),
        (topic_headers.DLQ_RULE, rejection.rule.encode("utf-8")),
        (topic_headers.DLQ_TOPIC, message.topic.encode("utf-8")),
        (topic_headers.DLQ_PARTITION, str(message.partition).encode("ascii")),
        (topic_headers.DLQ_OFFSET, str(message.offset).encode("ascii")),
    ]
    if event is not None:
        for header, name in ((topic_headers.DLQ_EVENT_ID, "event_id"), (topic_headers.DLQ_ENTITY_KEY, "entity_key")):
            if event.get(name) is not None:
                headers.append((header, str(event[name]).encode("utf-8")))
    return Outbound(topics.national_dlq, message.key, message.value, headers)


def _unexpected(message: Inbound, exc: Exception) -> Rejection:
    return Rejection("processing_error", f"{_origin(message)}: processing_error: {type(exc).__name__}: {exc}")


def _epoch_ms(ts: Any) -> int:
    return int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)


def _origin(message: Inbound) -> str:
    return f"message {message.topic}[{message.partition}]@{message.offset}"
