"""The ClickHouse sink: polled messages → store rows → insert → commit offsets.

``plan_batch`` is pure: it decodes the polled messages, turns each into a row of its
table and groups the rows per (table, topic, partition), each group carrying a
deterministic ``insert_deduplication_token`` built from its offset range, so a batch
retried after a crash is dropped by ClickHouse. ``write_then_commit`` is the only place
offsets are committed, and only after every insert of the batch succeeded; before each
insert the exactly-once decision (``decision.decide``) skips or trims what the store
already holds, so a replay by a new consumer group changes no count either.
``take_batch`` returns a full batch at once and closes a partial one as soon as the
topics are drained for now, instead of waiting out ``sink_flush_seconds``.
A message on an inbound topic is a routed case (``routed_cases``), with a
``roadx.routed.kind: assist`` header an assist request (协查) stored as a routed case too, or,
with a ``roadx.reply.kind`` header, a province's reply the case workflows forwarded to the
originating province (``case_replies``); ``national.alerts`` holds the workflows' missed
deadlines (``case_alerts``). Manifests (``prov.<P>.manifests``) and the stream worker's
submission tallies (``national.submissions``) are stored for the submission check
(``sinks.submission_check``), which the sink runs after its batches and while idle.
Metrics live in ``sinks.metrics``; the consumer lag is recorded by what the caller passes in (``lag``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas import topics as topic_headers
from schemas.codec import (
    AlertCodec, AssistCodec, EventCodec, FindingCodec, ReplyCodec, ServiceRequestCodec, SubmissionTallyCodec,
)
from schemas.errors import DecodeError, KeyStoreError
from schemas.registry import make_registry
from schemas.settings import Settings

from . import metrics
from .errors import SinkError, UnstorableMessage
from .inserts import TableInsert
from .metrics import COMMIT_FAILURES, REFUSED
from schemas.pii import PiiMasker
from .rows import (
    CASE_ALERT_COLUMNS, CASE_REPLY_COLUMNS, CHANGE_LOG_COLUMNS, DLQ_COLUMNS, QUALITY_COLUMNS, ROUTED_COLUMNS,
    SERVICE_REQUEST_COLUMNS, alert_row, assist_row, case_reply_row, change_log_row, dlq_row, finding_row, header_map,
    routed_row, service_request_row,
)
from .store import FreedMemoryRelease, ensure_schema, open_store
from .submission_check import SubmissionChecker, owns_check
from .submission_store import MANIFEST_COLUMNS, TALLY_COLUMNS, manifest_row, tally_row
from .writer import RULE_REFUSED, Ledger, NoLedger, StoreLedger, write_plan

log = logging.getLogger("roadx.sinks")

COLUMNS = {"change_log": CHANGE_LOG_COLUMNS, "dlq": DLQ_COLUMNS, "routed_cases": ROUTED_COLUMNS,
           "quality_findings": QUALITY_COLUMNS, "service_requests": SERVICE_REQUEST_COLUMNS,
           "case_replies": CASE_REPLY_COLUMNS, "case_alerts": CASE_ALERT_COLUMNS,
           "submission_manifests": MANIFEST_COLUMNS, "submission_tallies": TALLY_COLUMNS}
RULE_UNDECODABLE = "sink_undecodable"
RULE_INVALID_EVENT = "sink_invalid_event"

SINK_PREFETCH_KIB = 16 * 1024
TOP_UP_SECONDS = 0.05  # a batch is closed early when this long brings no more messages

Decode = Callable[[bytes | None], tuple[int, dict[str, Any]]]
DecodeRecord = Callable[[bytes | None], dict[str, Any]]  # a record that stands alone: a finding, an assist request …
RecordRow = Callable[[dict[str, Any], str, int, int, dt.datetime], tuple]  # (record, topic, partition, offset, now)


@dataclass(frozen=True)
class TopicRoles:
    """What the sink does with each subscribed topic."""

    changes: str
    dlq: str
    inbound: dict[str, str]  # topic -> target province
    quality: str = ""  # quality findings; none subscribed when empty
    audit: str = ""  # the information service's requests; none subscribed when empty
    alerts: str = ""  # the case workflows' missed deadlines; none subscribed when empty
    manifests: dict[str, str] = field(default_factory=dict)  # prov.<P>.manifests topic -> party
    submissions: str = ""  # the stream worker's submission tallies; none subscribed when empty

    @classmethod
    def from_settings(cls, settings: Settings) -> "TopicRoles":
        names = settings.topics
        return cls(names.national_changes, names.national_dlq,
                   {names.province_inbound(p): p for p in settings.provinces}, names.national_quality,
                   names.national_audit, names.national_alerts,
                   {names.province_manifests(p): p for p in settings.provinces}, names.national_submissions)

    @property
    def topics(self) -> list[str]:
        return [self.changes, self.dlq, *self.inbound, *self.manifests,
                *(topic for topic in (self.quality, self.audit, self.alerts, self.submissions) if topic)]


@dataclass
class BatchPlan:
    inserts: list[TableInsert]
    next_offsets: dict[tuple[str, int], int]  # (topic, partition) -> offset to commit
    rejected: list[str] = field(default_factory=list)  # why messages became sink dead letters
    consumed: int = 0  # messages taken from the broker, errors excluded

    @property
    def rows(self) -> int:
        return sum(len(insert.rows) for insert in self.inserts)

    def commit_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self.next_offsets.items())]


def plan_batch(messages: Iterable[Any], roles: TopicRoles, decode: Decode, pii: PiiMasker,
               decode_finding: DecodeRecord | None = None, decode_request: DecodeRecord | None = None,
               decode_reply: Decode | None = None, decode_assist: DecodeRecord | None = None,
               decode_alert: DecodeRecord | None = None, decode_tally: DecodeRecord | None = None) -> BatchPlan:
    """Turn polled messages into per-table inserts and the offsets to commit after them.

    Every row of the batch gets the same ``ingested_at``: the time the batch was planned.
    Quality findings, service requests, forwarded case replies and assist requests are stored
    only when their decoder is given (without one, a reply or an assist request on an inbound
    topic is decoded as a case: a dead letter).
    """
    groups: dict[tuple[str, str, int], TableInsert] = {}
    next_offsets: dict[tuple[str, int], int] = {}
    rejected: list[str] = []
    consumed = 0
    now = _now()
    for msg in messages:
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise SinkError(f"fatal consumer error: {error}")
            log.warning("consumer error: %s", error)
            continue
        consumed += 1
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        table, row = _row_for(msg, topic, partition, offset, roles, decode, pii, rejected, now,
                              decode_finding, decode_request, decode_reply, decode_assist, decode_alert, decode_tally)
        tp = (topic, partition)
        if next_offsets.get(tp, 0) <= offset:
            next_offsets[tp] = offset + 1
        if table is None:
            continue
        group = groups.get((table, topic, partition))
        if group is None:
            group = groups[(table, topic, partition)] = TableInsert(table, topic, partition, offset, offset)
        elif offset < group.first_offset:
            group.first_offset = offset
        elif offset > group.last_offset:
            group.last_offset = offset
        group.rows.append(row)
        group.messages.append(msg)
    return BatchPlan(list(groups.values()), next_offsets, rejected, consumed)


def _row_for(msg: Any, topic: str, partition: int, offset: int, roles: TopicRoles, decode: Decode, pii: PiiMasker,
             rejected: list[str], now: dt.datetime, decode_finding: DecodeRecord | None,
             decode_request: DecodeRecord | None, decode_reply: Decode | None,
             decode_assist: DecodeRecord | None, decode_alert: DecodeRecord | None,
             decode_tally: DecodeRecord | None = None) -> tuple[str | None, tuple | None]:
    if topic == roles.dlq:
        return "dlq", dlq_row(msg, pii, ingested_at=now)
    party = roles.manifests.get(topic)
    if party is not None:
        return "submission_manifests", manifest_row(msg, party, now)
    if roles.submissions and topic == roles.submissions and decode_tally is not None:
        return _record_row_for(msg, decode_tally, "submission_tallies", tally_row, pii, rejected, now)
    if roles.quality and topic == roles.quality and decode_finding is not None:
        return _record_row_for(msg, decode_finding, "quality_findings",
                               lambda f, t, p, o, at: finding_row(f, t, p, o, pii, at), pii, rejected, now)
    if roles.audit and topic == roles.audit and decode_request is not None:
        return _record_row_for(msg, decode_request, "service_requests", service_request_row, pii, rejected, now)
    if roles.alerts and topic == roles.alerts and decode_alert is not None:
        return _record_row_for(msg, decode_alert, "case_alerts", alert_row, pii, rejected, now)
    target = roles.inbound.get(topic)
    if topic != roles.changes and target is None:
        log.warning("message from unexpected topic %s[%s]@%s skipped", topic, partition, offset)
        return None, None
    found = header_map(msg.headers()) if target is not None else {}
    if decode_reply is not None and topic_headers.REPLY_KIND in found:
        return _record_row_for(msg, lambda value: decode_reply(value)[1], "case_replies",
                               lambda r, t, p, o, at: case_reply_row(r, t, p, o, msg.headers(), pii, at),
                               pii, rejected, now)
    if decode_assist is not None and found.get(topic_headers.ROUTED_KIND) == topic_headers.ASSIST:
        return _record_row_for(msg, decode_assist, "routed_cases",
                               lambda r, t, p, o, at: assist_row(r, t, p, o, msg.headers(), target, pii, at,
                                                                 _message_time(msg)),
                               pii, rejected, now)
    try:
        schema_id, event = decode(msg.value())
    except DecodeError as exc:
        reason = f"{topic}[{partition}]@{offset}: {exc.rule}: {exc}"
        rejected.append(reason)
        return "dlq", dlq_row(msg, pii, rule=RULE_UNDECODABLE, reason=reason, ingested_at=now)
    try:
        if target is None:
            return "change_log", change_log_row(event, schema_id, topic, partition, offset, pii, now)
        return "routed_cases", routed_row(event, topic, partition, offset, msg.headers(), target, pii, now,
                                          _message_time(msg))
    except UnstorableMessage as exc:
        rejected.append(str(exc))
        return "dlq", dlq_row(msg, pii, rule=RULE_INVALID_EVENT, reason=str(exc), ingested_at=now)


def _record_row_for(msg: Any, decode: DecodeRecord, table: str, to_row: RecordRow, pii: PiiMasker,
                    rejected: list[str], now: dt.datetime) -> tuple[str, tuple]:
    """A row of ``table`` from a message holding a record that stands alone, else its dead letter."""
    try:
        record = decode(msg.value())
    except DecodeError as exc:
        reason = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc.rule}: {exc}"
        rejected.append(reason)
        return "dlq", dlq_row(msg, pii, rule=RULE_UNDECODABLE, reason=reason, ingested_at=now)
    try:
        return table, to_row(record, msg.topic(), msg.partition(), msg.offset(), now)
    except UnstorableMessage as exc:
        rejected.append(str(exc))
        return "dlq", dlq_row(msg, pii, rule=RULE_INVALID_EVENT, reason=str(exc), ingested_at=now)


def _message_time(msg: Any) -> dt.datetime | None:
    """When the broker (or the producer) stamped the message, if it says."""
    stamp = getattr(msg, "timestamp", None)
    kind, ms = stamp() if callable(stamp) else (0, -1)
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc) if kind and ms >= 0 else None


def write_then_commit(store: Any, consumer: Any, plan: BatchPlan, database: str, ledger: Ledger | None = None,
                      pii: PiiMasker | None = None, **retry: Any) -> list[str]:
    """The commit order: insert every table's rows, then commit the consumed offsets.

    Offsets are never committed before every insert succeeded; a failed insert raises
    ``StoreError`` with nothing committed, so the batch is read again and deduplicated.
    A failed commit after a good insert is logged: the redelivered batch is idempotent.
    With ``pii``, rows the store refuses become dead letters (returned: their reasons).
    """
    dead_letter = None if pii is None else (
        lambda msg, reason: dlq_row(msg, pii, rule=RULE_REFUSED, reason=reason))
    refused = write_plan(store, database, plan.inserts, COLUMNS, ledger or NoLedger(), dead_letter, **retry)
    offsets = plan.commit_offsets()
    if not offsets:
        return refused
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        COMMIT_FAILURES.inc()
        log.warning("offset commit failed after the insert (batch will be re-read, deduplicated): %s", exc)
    return refused


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def consumer_conf(settings: Settings, group_id: str | None = None) -> dict[str, Any]:
    return settings.kafka_conf(**{
        "group.id": group_id or settings.topics.sink_group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": min(1000, max(1, settings.session_timeout_ms // 3)),
        "client.id": "roadx-sink",
        # The client's prefetch (64 MiB by default) held that much of a backlog in the sink's RSS on
        # top of the store's; 16 MiB is still several 5,000-message batches ahead. `roadx bench --phases
        # pipeline`, 120k messages, two runs each: peak RSS 704 and 646 MiB before, 625 with 16 MiB.
        "queued.max.messages.kbytes": SINK_PREFETCH_KIB,
    })


def run_sink(settings: Settings, stop: threading.Event, on_batch: Callable[[BatchPlan], None] | None = None,
             *, group_id: str | None = None, lag: Callable[[Any, str], Any] | None = None,
             submission_wait: float | None = None) -> None:
    """Consume national changes, quality findings, service requests, dead letters, inbound cases,
    assist requests and replies, the case workflows' alerts, manifests and submission tallies into
    the store until ``stop``, and run the submission check when this sink owns it.

    ``lag(consumer, group)``, when given, makes the recorder of the consumer's lag, ticked after each poll.
    ``submission_wait``: seconds a submission's manifest waits for its events, and events for their
    manifest, before the receipt says what is missing (default ``submission_wait_seconds`` of the
    settings when not given).
    """
    conf = consumer_conf(settings, group_id)
    registry = make_registry(settings.schema_registry_url or None)
    codecs = (EventCodec(registry), FindingCodec(registry), ServiceRequestCodec(registry), ReplyCodec(registry),
              AssistCodec(registry), AlertCodec(registry), SubmissionTallyCodec(registry))
    pii = PiiMasker(settings.pii_key())
    roles = TopicRoles.from_settings(settings)
    database = settings.clickhouse_database
    store = open_store(settings)
    try:
        ensure_schema(store, database)
        wait = submission_wait if submission_wait is not None else settings.submission_wait_seconds
        try:
            checker = SubmissionChecker(settings, store, wait)
            consumer = Consumer(conf)
        except (KafkaException, KeyStoreError) as exc:
            raise SinkError(f"cannot start the sink consumer: {exc}") from exc
        try:
            ledger = StoreLedger(store, database)
            consumer.subscribe(roles.topics, on_assign=lambda *_: ledger.forget(),
                               on_revoke=lambda *_: ledger.forget())
            recorder = lag(consumer, conf["group.id"]) if lag is not None else None
            freed = FreedMemoryRelease(store, embedded=not settings.clickhouse_url)

            def upkeep() -> None:
                checker.tick(owns_check(consumer, roles.submissions))
                freed.tick()

            _loop(settings, stop, on_batch, codecs, pii, roles, store, consumer, database, ledger, recorder, upkeep)
        except KafkaException as exc:
            raise SinkError(f"the sink consumer failed: {exc}") from exc
        finally:
            consumer.close()
            checker.close()
    finally:
        store.close()


def take_batch(consumer: Any, size: int, flush_seconds: float, top_up: float = TOP_UP_SECONDS,
               clock: Callable[[], float] = time.monotonic) -> list[Any]:
    """Up to ``size`` messages, taken within ``flush_seconds``.

    Full batches come at once; a partial batch is closed as soon as ``top_up`` seconds
    bring nothing more (the topics are drained for now) instead of waiting out the flush time.
    """
    deadline = clock() + flush_seconds
    batch: list[Any] = []
    while len(batch) < size:
        left = deadline - clock()
        if left < 0.001:  # the consumer counts its timeout in whole milliseconds
            break
        got = consumer.consume(size - len(batch), timeout=min(left, top_up))
        if not got and batch:
            break
        batch.extend(got)
    return batch


def _loop(settings: Settings, stop: threading.Event, on_batch: Callable[[BatchPlan], None] | None,
          codecs: tuple[EventCodec, FindingCodec, ServiceRequestCodec, ReplyCodec, AssistCodec, AlertCodec,
                        SubmissionTallyCodec],
          pii: PiiMasker,
          roles: TopicRoles,
          store: Any, consumer: Any, database: str, ledger: Ledger, lag: Any | None,
          check: Callable[[], None] = lambda: None) -> None:
    events, findings, requests, replies, assists, alerts, tallies = codecs
    while not stop.is_set():
        check()
        try:
            messages = take_batch(consumer, settings.sink_batch_size, settings.sink_flush_seconds)
        except KafkaException as exc:
            raise SinkError(f"consume failed: {exc}") from exc
        if lag is not None:
            lag.tick()
        if not messages:
            continue
        plan = plan_batch(messages, roles, events.decode, pii, findings.decode, requests.decode, replies.decode,
                          assists.decode, alerts.decode, tallies.decode)
        for reason in plan.rejected:
            log.warning("stored as a dead letter: %s", reason)
        for reason in write_then_commit(store, consumer, plan, database, ledger, pii):
            REFUSED.inc()
            log.warning("refused by the store, stored as a dead letter: %s", reason)
        metrics.observe_batch(plan.rows)
        if on_batch is not None:
            on_batch(plan)
