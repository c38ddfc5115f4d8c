"""A province's replies to the cases routed to it, as its own systems send them: a
``roadx.CaseReply`` signed with the province's key on ``prov.<P>.replies``, keyed by the case's
entity key and partitioned like the inbound topic (murmur2), so a reply shares its case's
partition. Used by ``roadx subscribe --receipts``, ``roadx cases`` and the demo."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from confluent_kafka import KafkaException, Producer

from schemas.codec import ReplyCodec
from schemas.kafka import produce
from schemas.registry import make_registry
from schemas.settings import Settings

from ..errors import StreamError

DELIVERY_SECONDS = 30.0
RECEIPT_NAMESPACE = uuid.UUID("0b7e3f2a-9c4d-5e6f-8a1b-2c3d4e5f6a7b")


def receipt_id(correlation_id: str, province: str) -> str:
    """The one id of a province's receipt of a case: a receipt sent again is the same reply."""
    return str(uuid.uuid5(RECEIPT_NAMESPACE, f"{correlation_id}/{province}/receipt"))


class ProvinceReplies:
    """Sends ``province``'s replies; ``close`` waits until the broker has them all."""

    def __init__(self, settings: Settings, province: str) -> None:
        self.province = province
        self.topic = settings.topics.province_replies(province)
        self.key = settings.province_key(province)
        self.codec = ReplyCodec(make_registry(settings.schema_registry_url or None))
        self.producer = Producer(settings.kafka_conf(partitioner="murmur2_random", **{"enable.idempotence": True}))

    def send(self, kind: str, correlation_id: str, case_key: str, *, outcome: str | None = None,
             reason: str | None = None, redirect_to: str | None = None, note: str | None = None,
             reply_id: str | None = None) -> dict[str, Any]:
        """Sign and queue one reply (``EncodeError`` names a field it cannot have); returns it."""
        reply = {"reply_id": reply_id or str(uuid.uuid4()), "correlation_id": correlation_id, "case_key": case_key,
                 "from_province": self.province, "kind": kind, "outcome": outcome, "reason": reason,
                 "redirect_to": redirect_to, "note": note, "ts": dt.datetime.now(dt.timezone.utc)}
        value = self.codec.encode(reply, self.key)
        try:
            produce(self.producer, self.topic, value, case_key.encode("utf-8"))
        except KafkaException as exc:
            raise StreamError(f"cannot send the {kind} to {self.topic}: {exc}") from exc
        self.producer.poll(0)
        return reply

    def close(self, timeout: float = DELIVERY_SECONDS) -> None:
        if self.producer.flush(timeout):
            raise StreamError(f"replies not acknowledged by the broker on {self.topic} within {timeout:.0f}s")
