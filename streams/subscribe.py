"""The cases routed to one province, decoded, for its enforcement teams (``roadx subscribe``)."""

from __future__ import annotations

import threading
from typing import Any, Iterator

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from schemas import topics as th
from schemas.codec import EventCodec
from schemas.errors import DecodeError
from schemas.registry import make_registry
from schemas.settings import Settings

from .errors import StreamError
from .validation import subject_record

HEADERS = {
    th.ROUTED_FROM: "from", th.ROUTED_TO: "to", th.ROUTED_REASON: "reason",
    th.ROUTED_CORRELATION_ID: "correlation_id", th.ROUTED_STAGE: "stage",
}


def routed_case(value: bytes | None, headers: list[tuple[str, bytes]] | None, codec: EventCodec,
                offset: int) -> dict[str, Any]:
    """One routed message as a reader sees it: routing headers, then the decoded case."""
    routed = {name: (dict(headers or {}).get(h) or b"").decode("utf-8", "replace") for h, name in HEADERS.items()}
    routed["offset"] = offset
    try:
        event = codec.decode(value)[1]
    except DecodeError as exc:
        return {**routed, "error": f"{exc.rule}: {exc}"}
    routed.update(event_id=str(event["event_id"]), op=event["op"], entity_key=event["entity_key"],
                  record=subject_record(event))
    return routed


def format_line(item: dict[str, Any]) -> str:
    if "error" in item:
        return f"@{item['offset']} undecodable: {item['error']}"
    record = item.get("record") or {}
    parties = " ".join(f"{k}={record[k]}" for k in ("involved_plate", "involved_operator_uscc", "involved_id_number")
                       if record.get(k))
    return (f"{item['correlation_id']}  {item['from']}→{item['to']}  {item['entity_key']}  "
            f"stage={item['stage']}  reason={item['reason']}  {parties}")


def subscribe(settings: Settings, province: str, from_beginning: bool, stop: threading.Event,
              idle_exit: float | None = None) -> Iterator[dict[str, Any]]:
    """Yield every case routed to ``province`` until ``stop`` (or ``idle_exit`` seconds of silence)."""
    if province not in settings.provinces:
        raise StreamError(f"unknown province {province!r}: use one of {', '.join(settings.provinces)}")
    topic = settings.topics.province_inbound(province)
    codec = EventCodec(make_registry(settings.schema_registry_url or None))
    consumer = Consumer({**settings.kafka_conf(), "group.id": f"{settings.topics.prefix}roadx-subscribe-{province}",
                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise StreamError(f"no topic {topic}: is the exchange set up?")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(meta.partitions)])
        idle = 0.0
        while not stop.is_set():
            message = consumer.poll(0.5)
            if message is None:
                idle += 0.5
                if idle_exit is not None and idle >= idle_exit:
                    return
                continue
            idle = 0.0
            if message.error() is None:
                yield routed_case(message.value(), message.headers(), codec, message.offset())
    except KafkaException as exc:
        raise StreamError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
