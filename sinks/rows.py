"""Store rows from decoded events, findings, service requests, assist requests, case replies and
alerts and raw messages (pure functions).

JSON columns (``before``/``after``) are written with ``ensure_ascii=False``: dates as ISO
``YYYY-MM-DD``, timestamps as ISO 8601 UTC with milliseconds, UUIDs as strings. A dead
letter's raw value is stored base64-encoded, with ID and phone numbers masked inside it.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any, Iterable, Mapping

import orjson

from schemas import contract, topics as topic_headers
from schemas.codec import uuid_text

from .errors import UnstorableMessage
from schemas.pii import PiiMasker, mask_raw
from schemas.seals import masked_seal

CHANGE_LOG_COLUMNS = (
    "event_id", "op", "entity_type", "entity_key", "province", "source_system", "source_table",
    "seq", "snapshot", "ts", "before", "after", "schema_id", "topic", "partition", "offset",
    "ingested_at",
)
DLQ_COLUMNS = (
    "topic", "partition", "offset", "origin_topic", "origin_partition", "origin_offset",
    "rule", "reason", "entity_key", "event_id", "raw_base64", "key", "ingested_at",
)
ROUTED_COLUMNS = (
    "event_id", "entity_key", "case_no", "source_province", "target_province", "reason", "stage",
    "topic", "partition", "offset", "ingested_at", "ts", "correlation_id", "routed_at", "region",
)
QUALITY_COLUMNS = (
    "finding_id", "rule", "dimension", "severity", "province", "entity_type", "entity_key", "event_id",
    "field", "message", "source_topic", "source_partition", "source_offset", "event_ts_ms", "detected_ms",
    "topic", "partition", "offset", "ingested_at", "ref_key",
)
SERVICE_REQUEST_COLUMNS = (
    "request_id", "party", "credential_id", "method", "endpoint", "asked", "status", "outcome", "records",
    "latency_ms", "ts", "topic", "partition", "offset", "ingested_at",
)
CASE_REPLY_COLUMNS = (
    "reply_id", "correlation_id", "case_key", "from_province", "to_province", "kind", "outcome", "reason",
    "redirect_to", "ts", "topic", "partition", "offset", "ingested_at",
)
# An alert of the case workflows on national.alerts: its fields, each with the type it must have
# (times: datetimes from roadx.CaseAlert, epoch seconds in the JSON alerts written before it).
ALERT_FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "alert_id": str, "deadline": str, "correlation_id": str, "case_key": str, "origin": str, "target": str,
    "region": str, "state": str, "routed_at": (int, float, dt.datetime), "at": (int, float, dt.datetime),
}
CASE_ALERT_COLUMNS = (*ALERT_FIELDS, "topic", "partition", "offset", "ingested_at")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(record: Mapping[str, Any] | None) -> str:
    """``''`` for no record, else compact JSON (non-ASCII kept as is).

    Raises ``TypeError`` for a value JSON cannot hold (``orjson.JSONEncodeError`` is one).
    """
    if record is None:
        return ""
    return orjson.dumps(record, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode("utf-8")


def _utc(value: Any, what: str, event_id: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    raise UnstorableMessage(f"event {event_id}: {what} is {type(value).__name__}, expected a timestamp")


def header_map(headers: Iterable[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    """Kafka headers as text; the last value of a repeated header wins."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", errors="replace")
        out[name] = "" if value is None else str(value)
    return out


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def change_log_row(
    event: Mapping[str, Any], schema_id: int, topic: str, partition: int, offset: int,
    pii: PiiMasker, ingested_at: dt.datetime | None = None,
) -> tuple:
    """One ``change_log`` row (in ``CHANGE_LOG_COLUMNS`` order), personal data masked."""
    event_id = event.get("event_id")
    try:
        source = event["source"]
        return (
            uuid_text(event_id),
            event["op"],
            event["entity_type"],
            pii.entity_key(event["entity_key"]),
            source["province"],
            source["system"],
            source["table"],
            int(source["seq"]),
            bool(source.get("snapshot", False)),
            _utc(event["ts_ms"], "ts_ms", event_id),
            to_json(_masked(event, "before", pii)),
            to_json(_masked(event, "after", pii)),
            int(schema_id),
            topic,
            int(partition),
            int(offset),
            ingested_at or _now(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"event {event_id} at {topic}[{partition}]@{offset}: not a change event: {exc!r}") from exc


def _masked(event: Mapping[str, Any], side: str, pii: PiiMasker) -> dict[str, Any] | None:
    """An event's record as the store keeps it: personal data masked; a licence's seal without its
    signature when masking changed the sealed content (``schemas.seals.masked_seal``)."""
    record = event.get(side)
    masked = pii.record(record)
    if masked is None or event.get("entity_type") != "licence":
        return masked
    return masked_seal(record, masked)


def dlq_row(
    message: Any, pii: PiiMasker, *, rule: str | None = None, reason: str | None = None,
    ingested_at: dt.datetime | None = None,
) -> tuple:
    """One ``dlq`` row (``DLQ_COLUMNS`` order) from a Kafka message.

    For a message read from ``national.dlq`` the origin, rule and reason come from its
    headers; ``rule``/``reason`` given here (the sink's own rejects) take precedence and
    the message itself is the origin.
    """
    headers = header_map(message.headers())
    raw = message.value() or b""
    key = message.key()
    key_text = bytes(key).decode("utf-8", errors="replace") if key is not None else ""
    if rule is None:
        origin = (
            headers.get(topic_headers.DLQ_TOPIC, ""),
            _int_or_none(headers.get(topic_headers.DLQ_PARTITION)),
            _int_or_none(headers.get(topic_headers.DLQ_OFFSET)),
        )
        rule = headers.get(topic_headers.DLQ_RULE, "") or "unknown"
        reason = headers.get(topic_headers.DLQ_REASON, "")
    else:
        origin = (message.topic(), message.partition(), message.offset())
        reason = reason or ""
    entity_key = headers.get(topic_headers.DLQ_ENTITY_KEY) or key_text
    return (
        message.topic(),
        int(message.partition()),
        int(message.offset()),
        *origin,
        rule,
        pii.text(reason),
        pii.entity_key(entity_key),
        headers.get(topic_headers.DLQ_EVENT_ID, ""),
        base64.b64encode(mask_raw(bytes(raw))).decode("ascii"),
        pii.entity_key(key_text),
        ingested_at or _now(),
    )


def routed_row(
    event: Mapping[str, Any], topic: str, partition: int, offset: int,
    headers: Iterable[tuple[str, bytes | str | None]] | None, target: str, pii: PiiMasker,
    ingested_at: dt.datetime | None = None, routed_at: dt.datetime | None = None,
) -> tuple:
    """One ``routed_cases`` row (``ROUTED_COLUMNS`` order) for a case delivered to ``target``;
    ``routed_at`` is the inbound message's time (default: ``ingested_at``)."""
    event_id = event.get("event_id")
    record = event.get("after") or event.get("before") or {}
    try:
        return _routed(event_id, event["entity_key"], record.get("case_no", ""), event["source"]["province"],
                       target, record.get("stage", ""), _utc(event["ts_ms"], "ts_ms", event_id),
                       (topic, partition, offset), header_map(headers), pii, ingested_at, routed_at)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"event {event_id} at {topic}[{partition}]@{offset}: not a routed case: {exc!r}") from exc


def assist_row(
    request: Mapping[str, Any], topic: str, partition: int, offset: int,
    headers: Iterable[tuple[str, bytes | str | None]] | None, target: str, pii: PiiMasker,
    ingested_at: dt.datetime | None = None, routed_at: dt.datetime | None = None,
) -> tuple:
    """One ``routed_cases`` row (``ROUTED_COLUMNS`` order) for an assist request (协查) delivered to
    ``target``, stored as a routed case: the assist_id is its event id, the entity asked about its
    entity key, the asking party its source, ``asked_at`` its time, and the stage the header's.

    A request that breaks the contract (``contract.assist_request_problem``) is not stored:
    ``UnstorableMessage`` names the field.
    """
    assist_id = request.get("assist_id")
    where = f"assist request {assist_id} at {topic}[{partition}]@{offset}"
    problem = contract.assist_request_problem(request)
    if problem:
        raise UnstorableMessage(f"{where}: field {problem}")
    found = header_map(headers)
    try:
        return _routed(assist_id, request["entity_key"], request.get("case_no") or "", request["from_party"],
                       target, found.get(topic_headers.ROUTED_STAGE, ""),
                       _utc(request["asked_at"], "asked_at", assist_id), (topic, partition, offset), found, pii,
                       ingested_at, routed_at)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"{where}: not an assist request: {exc!r}") from exc


def _routed(
    event_id: Any, entity_key: str, case_no: str, source: str, target: str, stage: str, ts: dt.datetime,
    where: tuple[str, int, int], found: Mapping[str, str], pii: PiiMasker,
    ingested_at: dt.datetime | None, routed_at: dt.datetime | None,
) -> tuple:
    """A ``routed_cases`` row: what was routed, and the routing headers ``found`` on its message
    (reason masked; correlation id; responsible region)."""
    topic, partition, offset = where
    ingested_at = ingested_at or _now()
    return (
        uuid_text(event_id),
        pii.entity_key(entity_key),
        case_no,
        source,
        target,
        pii.text(found.get(topic_headers.ROUTED_REASON, "")),
        stage,
        topic,
        int(partition),
        int(offset),
        ingested_at,
        ts,
        found.get(topic_headers.ROUTED_CORRELATION_ID, ""),
        routed_at or ingested_at,
        found.get(topic_headers.ROUTED_REGION, ""),
    )


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def finding_row(
    finding: Mapping[str, Any], topic: str, partition: int, offset: int, pii: PiiMasker,
    ingested_at: dt.datetime | None = None,
) -> tuple:
    """One ``quality_findings`` row (``QUALITY_COLUMNS`` order), personal data masked."""
    finding_id = finding.get("finding_id")
    try:
        entity_key = finding.get("entity_key")
        ref_key = finding.get("ref_key")
        event_ts = finding.get("event_ts_ms")
        return (
            pii.text(str(finding["finding_id"])),
            finding["rule"],
            finding["dimension"],
            finding["severity"],
            finding["province"],
            _optional_text(finding.get("entity_type")),
            None if entity_key is None else pii.entity_key(entity_key),
            _optional_text(finding.get("event_id")),
            _optional_text(finding.get("field")),
            pii.text(finding["message"]),
            finding["source_topic"],
            int(finding["source_partition"]),
            int(finding["source_offset"]),
            None if event_ts is None else _utc(event_ts, "event_ts_ms", finding_id),
            _utc(finding["detected_ms"], "detected_ms", finding_id),
            topic,
            int(partition),
            int(offset),
            ingested_at or _now(),
            None if ref_key is None else pii.entity_key(ref_key),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"finding {finding_id} at {topic}[{partition}]@{offset}: not a quality finding: {exc!r}") from exc


def service_request_row(
    request: Mapping[str, Any], topic: str, partition: int, offset: int, ingested_at: dt.datetime | None = None,
) -> tuple:
    """One ``service_requests`` row (``SERVICE_REQUEST_COLUMNS`` order).

    A request that breaks the contract (``contract.service_request_problem``: an unknown
    outcome, an identifier in clear …) is not stored: ``UnstorableMessage`` names the field.
    """
    request_id = request.get("request_id")
    where = f"service request {request_id} at {topic}[{partition}]@{offset}"
    problem = contract.service_request_problem(request)
    if problem:
        raise UnstorableMessage(f"{where}: field {problem}")
    try:
        return (
            uuid_text(request_id),
            str(request["party"]),
            str(request["credential_id"]),
            str(request["method"]),
            str(request["endpoint"]),
            [str(item) for item in request["asked"]],
            int(request["status"]),
            str(request["outcome"]),
            int(request["records"]),
            float(request["latency_ms"]),
            _utc(request["ts"], "ts", request_id),
            topic,
            int(partition),
            int(offset),
            ingested_at or _now(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"{where}: not a service request: {exc!r}") from exc


def case_reply_row(
    reply: Mapping[str, Any], topic: str, partition: int, offset: int,
    headers: Iterable[tuple[str, bytes | str | None]] | None, pii: PiiMasker, ingested_at: dt.datetime | None = None,
) -> tuple:
    """One ``case_replies`` row (``CASE_REPLY_COLUMNS`` order) for a reply forwarded to the origin.

    The origin is the forwarding's ``roadx.routed.to`` header. A reply that breaks the contract
    (``contract.case_reply_problem``), or whose ``roadx.reply.kind`` header is not its kind, is
    not stored: ``UnstorableMessage`` names the field.
    """
    reply_id = reply.get("reply_id")
    where = f"case reply {reply_id} at {topic}[{partition}]@{offset}"
    problem = contract.case_reply_problem(reply)
    found = header_map(headers)
    if problem is None and found.get(topic_headers.REPLY_KIND) != reply.get("kind"):
        problem = f"kind {reply.get('kind')!r} is not the header {topic_headers.REPLY_KIND} " \
                  f"{found.get(topic_headers.REPLY_KIND)!r}"
    if problem:
        raise UnstorableMessage(f"{where}: field {problem}")
    try:
        return (
            uuid_text(reply_id),
            str(reply["correlation_id"]),
            pii.entity_key(str(reply["case_key"])),
            str(reply["from_province"]),
            found.get(topic_headers.ROUTED_TO, ""),
            str(reply["kind"]),
            _optional_text(reply.get("outcome")),
            None if reply.get("reason") is None else pii.text(str(reply["reason"])),
            _optional_text(reply.get("redirect_to")),
            _utc(reply["ts"], "ts", reply_id),
            topic,
            int(partition),
            int(offset),
            ingested_at or _now(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"{where}: not a case reply: {exc!r}") from exc


def alert_row(
    alert: Mapping[str, Any], topic: str, partition: int, offset: int, ingested_at: dt.datetime | None = None,
) -> tuple:
    """One ``case_alerts`` row (``CASE_ALERT_COLUMNS`` order) from a decoded alert
    (``schemas.codec.AlertCodec``: a ``roadx.CaseAlert``, or an older JSON alert).

    A field of ``ALERT_FIELDS`` missing or of another type: ``UnstorableMessage`` naming it.
    """
    where = f"alert at {topic}[{partition}]@{offset}"
    for name, kind in ALERT_FIELDS.items():
        if name not in alert:
            raise UnstorableMessage(f"{where}: field {name} is missing")
        if not isinstance(alert[name], kind) or isinstance(alert[name], bool):
            raise UnstorableMessage(f"{where}: field {name} is {type(alert[name]).__name__}, "
                                    f"not {getattr(kind, '__name__', 'a number')}")
    if not alert["alert_id"].strip():
        raise UnstorableMessage(f"{where}: field alert_id is empty")
    try:
        times = [alert[name] if isinstance(alert[name], dt.datetime)
                 else dt.datetime.fromtimestamp(alert[name], dt.timezone.utc) for name in ("routed_at", "at")]
    except (OverflowError, OSError, ValueError) as exc:
        raise UnstorableMessage(f"{where}: field routed_at or at is not a time: {exc}") from exc
    return (*(alert[name] for name in list(ALERT_FIELDS)[:-2]), *times, topic, int(partition), int(offset),
            ingested_at or _now())
