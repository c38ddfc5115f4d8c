"""The cases routed to one province, decoded, for its enforcement teams (``roadx subscribe``).

An assist request (协查, header ``roadx.routed.kind: assist``) another party asks of the
province comes the same way: it is shown with its routing headers, the entity asked about
(``entity_key``) and ``assist`` (identifier, entity type, question, case number, whether the
national register held the entity, when asked), and acknowledged like a case.

The same inbound topic also brings the replies other provinces sent to the cases this one
routed (forwarded by the case workflows, with ``roadx.reply.kind``): they are shown as
replies. With ``receipts``, the subscriber acknowledges each case it shows with a receipt
(回执) signed with the province's key on ``prov.<P>.replies``; the receipt's id is derived
from the case and the province, so a case shown again is acknowledged with the same reply,
which the workflow takes as a repeat.

With ``region`` (``4403``: a city; ``440305``: a county; for a party that is not a province a
prefix its jurisdiction covers, ``4201`` for the Changjiang administration — ``schemas.parties.
region_filter``; the party's own code selects everything), only the cases whose responsible
region (``roadx.routed.region``: the involved entity's registration) lies within it are
shown and acknowledged, so a party's system can hand each city its own; replies to the
party's own cases are shown whatever the region.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from schemas import topics as th
from schemas.codec import AssistCodec, EventCodec
from schemas.codes import RECEIPT
from schemas.errors import DecodeError, InvalidIdentifier
from schemas.parties import region_filter
from schemas.registry import make_registry
from schemas.settings import Settings

from .cases.replies import ProvinceReplies, receipt_id
from .errors import StreamError
from .validation import subject_record

HEADERS = {
    th.ROUTED_FROM: "from", th.ROUTED_TO: "to", th.ROUTED_REASON: "reason",
    th.ROUTED_CORRELATION_ID: "correlation_id", th.ROUTED_STAGE: "stage", th.ROUTED_REGION: "region",
}


ASSIST_FIELDS = ("identifier", "entity_type", "question", "case_no", "in_register", "asked_at")


def routed_case(value: bytes | None, headers: list[tuple[str, bytes]] | None, events: EventCodec,
                assists: AssistCodec, offset: int) -> dict[str, Any]:
    """One routed message as a reader sees it: routing headers, then the decoded case (or, with
    ``roadx.routed.kind: assist``, the decoded assist request)."""
    found = dict(headers or {})
    routed = {name: (found.get(h) or b"").decode("utf-8", "replace") for h, name in HEADERS.items()}
    routed["offset"] = offset
    is_assist = (found.get(th.ROUTED_KIND) or b"").decode("utf-8", "replace") == th.ASSIST
    try:
        shown = _assist(assists.decode(value)) if is_assist else _case(events.decode(value)[1])
    except DecodeError as exc:
        return {**routed, "error": f"{exc.rule}: {exc}"}
    return {**routed, **shown}


def _case(event: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(event["event_id"]), "op": event["op"], "entity_key": event["entity_key"],
            "record": subject_record(event)}


def _assist(request: dict[str, Any]) -> dict[str, Any]:
    return {"entity_key": request["entity_key"], "assist": {name: request[name] for name in ASSIST_FIELDS}}


def forwarded_reply(headers: list[tuple[str, bytes]] | None, offset: int) -> dict[str, Any]:
    """A reply to a case this province routed, as the case workflows forwarded it."""
    h = {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}
    return {"reply": h.get(th.REPLY_KIND, ""), "reply_id": h.get(th.REPLY_ID, ""), "from": h.get(th.ROUTED_FROM, ""),
            "to": h.get(th.ROUTED_TO, ""), "correlation_id": h.get(th.ROUTED_CORRELATION_ID, ""), "offset": offset}


def format_line(item: dict[str, Any]) -> str:
    if "reply" in item:
        return f"{item['correlation_id']}  {item['to']}←{item['from']}  reply: {item['reply']}"
    if "error" in item:
        return f"@{item['offset']} undecodable: {item['error']}"
    if "assist" in item:
        assist = item["assist"]
        return (f"{item['correlation_id']}  {item['from']}→{item['to']}  assist {assist['entity_type']} "
                f"{assist['identifier']}: {' '.join(assist['question'].split())}  region={item.get('region') or '-'}"
                + (f"  case={assist['case_no']}" if assist.get("case_no") else "")
                + (f"  reason={item['reason']}" if item.get("reason") not in ("", th.ASSIST) else ""))
    record = item.get("record") or {}
    parties = " ".join(f"{k}={record[k]}" for k in ("involved_plate", "involved_operator_uscc", "involved_id_number")
                       if record.get(k))
    return (f"{item['correlation_id']}  {item['from']}→{item['to']}  {item['entity_key']}  "
            f"stage={item['stage']}  reason={item['reason']}  region={item.get('region') or '-'}  {parties}")


def subscribe(settings: Settings, province: str, from_beginning: bool, stop: threading.Event,
              idle_exit: float | None = None, receipts: bool = False,
              region: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield every case and assist request routed to ``province`` (within ``region``, when given),
    and every reply to a case it routed, until ``stop`` (or ``idle_exit`` seconds of silence);
    with ``receipts``, acknowledge each case and assist request yielded."""
    if province not in settings.provinces:
        raise StreamError(f"unknown party {province!r}: the parties taking part are {', '.join(settings.provinces)} "
                          f"(ROADX_PARTIES)")
    if region is not None:
        try:
            region = region_filter(region, settings.parties()[province], settings.taking_part())
        except InvalidIdentifier as exc:
            raise StreamError(f"--region: {exc}") from exc
    topic = settings.topics.province_inbound(province)
    registry = make_registry(settings.schema_registry_url or None)
    events, assists = EventCodec(registry), AssistCodec(registry)
    consumer = Consumer({**settings.kafka_conf(), "group.id": f"{settings.topics.prefix}roadx-subscribe-{province}",
                         "enable.auto.commit": False})
    acknowledging = ProvinceReplies(settings, province) if receipts else None
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
            if message.error() is not None:
                continue
            if any(name == th.REPLY_KIND for name, _v in message.headers() or ()):
                yield forwarded_reply(message.headers(), message.offset())
                continue
            item = routed_case(message.value(), message.headers(), events, assists, message.offset())
            if region is not None and not item["region"].startswith(region):
                continue
            if acknowledging is not None and "error" not in item and item.get("correlation_id"):
                item["receipt"] = acknowledging.send(RECEIPT, item["correlation_id"], item["entity_key"],
                                                     reply_id=receipt_id(item["correlation_id"], province))["reply_id"]
            yield item
    except KafkaException as exc:
        raise StreamError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()
        if acknowledging is not None:
            acknowledging.close()
