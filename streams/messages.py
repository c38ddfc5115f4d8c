"""The stream stage's messages: what it consumes (``Inbound``) and produces (``Outbound``), the
provenance checks of a consumed message (it decodes; it comes from the party whose topic it
arrived on, a party of this exchange, signed with that party's key, in a register the party
may publish: ``PROVENANCE_RULES``), and the dead letter of a rejected one.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from schemas import signing
from schemas import topics as topic_headers
from schemas.codec import EventCodec
from schemas.errors import DecodeError
from schemas.topics import TopicNames

from .errors import Rejection
from .validation import describe

__all__ = ["Headers", "Inbound", "Outbound", "PROVENANCE_RULES", "check_provenance", "clip", "dead_letter", "decode",
           "unexpected"]

PROVENANCE_RULES = frozenset({"bad_signature", "unknown_province", "province_mismatch", "register_not_allowed"})
HEADER_MAX_BYTES = 4096  # reasons, keys and ids copied into DLQ headers and findings are cut to this

Headers = list[tuple[str, bytes]]


class Inbound(NamedTuple):
    """One consumed message (a tuple: one is made for every message consumed)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Outbound(NamedTuple):
    """One message to produce; ``origin`` is the index in the batch of the message it comes from."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    origin: int = -1


def decode(message: Inbound, codec: EventCodec) -> dict[str, Any]:
    """The decoded event of a message; ``Rejection`` under the decoder's rule when it does not decode."""
    try:
        return codec.decode(message.value)[1]
    except DecodeError as exc:
        raise Rejection(exc.rule, f"{_origin(message)}: {exc.rule}: {exc}") from exc


def check_provenance(message: Inbound, event: Mapping[str, Any], province: str,
                     province_keys: Mapping[str, tuple[bytes, ...]], provinces: frozenset[str],
                     registers: Mapping[str, frozenset[str]] | None) -> None:
    """Raise ``Rejection`` unless the event comes from the party whose topic it arrived on, a party
    of this exchange with a key it is signed with, publishing a register it may (None: any)."""
    claimed = event["source"]["province"]
    if claimed != province:
        raise Rejection(
            "province_mismatch",
            f"{describe(event)}: province_mismatch: claims province {claimed!r} but arrived on {message.topic!r}",
        )
    keys = province_keys.get(claimed)
    if claimed not in provinces or not keys:
        raise Rejection("unknown_province", f"{describe(event)}: unknown_province: {claimed!r} is not a province of this exchange "
                                            f"with a registered key")
    if not any(signing.verify(message.value, key) for key in keys):
        raise Rejection("bad_signature", f"{describe(event)}: bad_signature: not signed with province {claimed}'s key")
    allowed = None if registers is None else registers.get(claimed, frozenset())
    if allowed is not None and event["entity_type"] not in allowed:
        raise Rejection("register_not_allowed", f"{describe(event)}: register_not_allowed: party {claimed} may not publish "
                                                f"the {event['entity_type']} register ({', '.join(sorted(allowed))})")


def unexpected(message: Inbound, exc: Exception) -> Rejection:
    return Rejection("processing_error", f"{_origin(message)}: processing_error: {type(exc).__name__}: {exc}")


def _origin(message: Inbound) -> str:
    return f"message {message.topic}[{message.partition}]@{message.offset}"


def dead_letter(message: Inbound, rejection: Rejection, topics: TopicNames,
                event: Mapping[str, Any] | None = None, origin: int = -1) -> Outbound:
    """The DLQ record of a rejected message: raw bytes and key as received, reason in headers;
    the event id and entity key too when the message decoded.

    A value over ``DLQ_MAX_VALUE_BYTES`` is cut to that size, with its original size in a
    header: an oversized message must not stop the worker's own writes to the DLQ.
    """
    headers = [
        (topic_headers.DLQ_REASON, clip(rejection.message.encode("utf-8"))),
        (topic_headers.DLQ_RULE, rejection.rule.encode("utf-8")),
        (topic_headers.DLQ_TOPIC, message.topic.encode("utf-8")),
        (topic_headers.DLQ_PARTITION, str(message.partition).encode("ascii")),
        (topic_headers.DLQ_OFFSET, str(message.offset).encode("ascii")),
    ]
    if event is not None:
        for header, name in ((topic_headers.DLQ_EVENT_ID, "event_id"), (topic_headers.DLQ_ENTITY_KEY, "entity_key")):
            if event.get(name) is not None:
                headers.append((header, clip(str(event[name]).encode("utf-8"))))
    value = message.value
    if value is not None and len(value) > topic_headers.DLQ_MAX_VALUE_BYTES:
        headers.append((topic_headers.DLQ_VALUE_BYTES, str(len(value)).encode("ascii")))
        value = value[:topic_headers.DLQ_MAX_VALUE_BYTES]
    key = None if message.key is None else clip(message.key)
    return Outbound(topics.national_dlq, key, value, headers, origin)


def clip(raw: bytes, limit: int = HEADER_MAX_BYTES) -> bytes:
    """At most ``limit`` bytes: reasons, keys and identifiers in headers stay small."""
    return raw if len(raw) <= limit else raw[:limit]
