"""The case workflows as a faust app (``roadx worker cases``): agents over the routed cases and
the provinces' replies, a table of workflows, a timer for deadlines.

- ``xprov.<Q>.inbound`` (the cases the stream worker routed, with their ``roadx.routed.*``
  headers) opens a workflow per (correlation id, target), or adds a later stage to it.
- ``prov.<Q>.replies`` (``roadx.CaseReply``, signed with Q's key) is decided by
  ``workflow.apply_reply``: a transition is stored and the reply goes on to the originating
  province's ``xprov.<P>.inbound`` (headers ``roadx.reply.kind``/``id`` and the correlation
  id); a decline naming the province the case belongs to sends the case there as a new
  routing; a refused reply goes to ``national.dlq`` with its rule.
- Every ``ROADX_CASE_CHECK_SECONDS`` a tick goes to each partition of ``roadx-cases-ticks``
  (``TopicNames.cases_ticks``);
  its agent reports the workflows of that partition that missed a deadline on
  ``national.alerts`` (``roadx.CaseAlert``; the alert id is the workflow key and the deadline,
  the same if a restarted worker reports it again), once each.

Replies and inbound cases are keyed by the case's entity key and have the same partition
count, so a case's workflow, its replies and its ticks meet in one partition of the table.
The two topics are read each at its own pace: a reply that comes before its case is parked
beside the workflow-to-be and decided when the case is taken in; one whose case never comes
within ``ROADX_CASE_REPLY_GRACE_SECONDS`` is refused (``unknown_correlation``, or
``not_the_target`` when the case went to other provinces).
Processing is at least once: a reply applied again is a repeat (its id is in the workflow),
never a second transition. The table lives in memory and is rebuilt from its changelog at
each start, read to its true end (``faust_run.table_manager``): the embedded broker reports
the base offset of its last batch as the end, and a recovery stopping there forgot the last
transitions before a kill.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import faust
from prometheus_client import Counter

from schemas import topics as th
from schemas.codec import AlertCodec, EventCodec, ReplyCodec
from schemas.deadlines import Deadlines
from schemas.errors import DecodeError, KeyStoreError
from schemas.registry import make_registry
from schemas.settings import Settings

from ..faust_run import broker_credentials, run_until_stopped, table_manager
from .workflow import Reply, Workflow, apply_reply, overdue, route, workflow_key

log = logging.getLogger("streams.cases")

PARKED_SUFFIX = "/parked"

ROUTED = Counter("roadx_cases_routed", "Routed cases taken into a workflow (new or a later stage)", ["target"])
REPLIES = Counter("roadx_cases_replies", "Replies decided, by outcome (moved, repeat, refused)", ["province", "outcome"])
ALERTS = Counter("roadx_cases_alerts", "Missed deadlines reported on national.alerts", ["target", "deadline"])


def build_app(settings: Settings, deadlines: Deadlines) -> faust.App:
    names = settings.topics
    app = faust.App(
        names.cases_group, broker=f"kafka://{settings.bootstrap_servers}", store="memory://",
        datadir=str((settings.data_dir / "cases").absolute()), topic_partitions=settings.partitions,
        broker_session_timeout=settings.session_timeout_ms / 1000, broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest", web_enabled=False, broker_credentials=broker_credentials(settings),
        TableManager=table_manager(settings),
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    inbound = app.topic(*[names.province_inbound(q) for q in settings.provinces], **raw)
    replies = app.topic(*[names.province_replies(q) for q in settings.provinces], **raw)
    ticks = app.topic(names.cases_ticks, partitions=settings.partitions, **raw)
    workflows = app.Table("workflows", partitions=settings.partitions)  # JSON values: the app's default codec
    cases = EventCodec(make_registry(settings.schema_registry_url or None))
    codec = ReplyCodec(make_registry(settings.schema_registry_url or None))
    alerts = AlertCodec(make_registry(settings.schema_registry_url or None))
    provinces = frozenset(settings.provinces)
    grace = settings.case_reply_grace_seconds

    @app.agent(inbound)
    async def take_routed(stream: Any) -> None:
        async for event in stream.events():
            headers = _headers(event)
            if th.REPLY_KIND in headers or th.ROUTED_CORRELATION_ID not in headers:
                continue  # a reply going back to its origin, not a case
            target = headers[th.ROUTED_TO]
            key = workflow_key(headers[th.ROUTED_CORRELATION_ID], target)
            held = _workflow(workflows.get(key))
            new = Workflow(
                correlation_id=headers[th.ROUTED_CORRELATION_ID], case_key=event.key.decode("utf-8"),
                origin=headers.get(th.ROUTED_FROM, ""), target=target,
                reasons=tuple(filter(None, headers.get(th.ROUTED_REASON, "").split(","))),
                region=headers.get(th.ROUTED_REGION) or _region(cases, event.value),
                routed_at=event.message.timestamp)
            after = route(held, new, headers.get(th.ROUTED_STAGE, ""))
            if after != held:
                workflows[key] = _stored(after, event.message.partition, event.value, headers.get(th.ROUTED_KIND, ""))
                routed_to = workflows.get(_targets_key(new.correlation_id)) or []
                if target not in routed_to:
                    workflows[_targets_key(new.correlation_id)] = sorted({*routed_to, target})
                ROUTED.labels(target).inc()
                await _replay_parked(new.correlation_id, target)

    @app.agent(replies)
    async def decide(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            await _decide(Parked(m.topic, m.partition, m.offset, event.key, event.value, time.time()))

    async def _decide(event: Parked, parked_already: bool = False) -> None:
        topic_province = _province_of(event.topic, settings)
        try:
            _schema, body = codec.decode(event.value)
        except DecodeError as exc:
            await _refuse(event, topic_province, "undecodable_reply", str(exc))
            return
        sender = body["from_province"]
        if sender != topic_province:
            await _refuse(event, topic_province, "wrong_replies_topic",
                          f"a reply from {sender} on {event.topic}, the topic of {topic_province}")
            return
        hub = settings.hub_keys()
        try:
            hub.reload_if_changed()
        except KeyStoreError as exc:
            log.error("the key registry cannot be read, keeping the keys held: %s", exc)
        secrets = hub.event_secrets(sender, dt.datetime.now(dt.timezone.utc))
        if not secrets:
            await _refuse(event, topic_province, "unknown_province", f"{sender} has no registered key usable now")
            return
        if not any(codec.signed_with(event.value, secret) for secret in secrets):
            await _refuse(event, sender, "bad_signature", f"reply {body['reply_id']} is not signed with {sender}'s key")
            return
        reply = Reply(str(body["reply_id"]), body["correlation_id"], sender, body["kind"],
                      body["ts"].timestamp(), body.get("outcome"), body.get("reason"), body.get("redirect_to"))
        key = workflow_key(reply.correlation_id, sender)
        stored = workflows.get(key)
        targets = tuple(workflows.get(_targets_key(reply.correlation_id)) or ())
        if stored is None and not parked_already:
            # The case may not have been taken in yet (another topic, read at its own pace):
            # the reply waits for it, at most ROADX_CASE_REPLY_GRACE_SECONDS (see check_deadlines).
            parked = workflows.get(_parked_key(reply.correlation_id)) or []
            workflows[_parked_key(reply.correlation_id)] = [*parked, {**event.as_dict(), "sender": sender}]
            REPLIES.labels(sender, "parked").inc()
            return
        decision = apply_reply(_workflow(stored), reply, provinces, targets)
        if decision.refused:
            await _refuse(event, sender, decision.rule or "", decision.detail)
            return
        if not decision.moved:
            REPLIES.labels(sender, "repeat").inc()
            if decision.workflow is not None and stored is not None:
                workflows[key] = {**stored, "workflow": asdict(decision.workflow)}
            return
        after = decision.workflow
        workflows[key] = {**stored, "workflow": asdict(after)}
        await app.topic(settings.topics.province_inbound(after.origin), **raw).send(
            key=event.key, value=event.value, headers=[
                (th.REPLY_KIND, reply.kind.encode()), (th.REPLY_ID, reply.reply_id.encode()),
                (th.ROUTED_CORRELATION_ID, reply.correlation_id.encode()), (th.ROUTED_FROM, sender.encode()),
                (th.ROUTED_TO, after.origin.encode())])
        if decision.reroute_to:
            await app.topic(settings.topics.province_inbound(decision.reroute_to), **raw).send(
                key=event.key, value=base64.b64decode(stored["case"]), headers=[
                    (th.ROUTED_FROM, after.origin.encode()), (th.ROUTED_TO, decision.reroute_to.encode()),
                    (th.ROUTED_REASON, th.REDIRECTED.encode()), (th.ROUTED_CORRELATION_ID, reply.correlation_id.encode()),
                    (th.ROUTED_STAGE, (after.stages[-1] if after.stages else "").encode()),
                    (th.ROUTED_REGION, f"{decision.reroute_to}0000".encode()),
                    *([(th.ROUTED_KIND, stored["kind"].encode())] if stored.get("kind") else [])])
        REPLIES.labels(sender, "moved").inc()

    async def _refuse(event: Parked, province: str, rule: str, detail: str) -> None:
        REPLIES.labels(province, "refused").inc()
        log.warning("reply refused (%s): %s", rule, detail)
        await app.topic(settings.topics.national_dlq, **raw).send(key=event.key, value=event.value, headers=[
            (th.DLQ_RULE, rule.encode()), (th.DLQ_REASON, detail.encode()[:1000]),
            (th.DLQ_TOPIC, event.topic.encode()), (th.DLQ_PARTITION, str(event.partition).encode()),
            (th.DLQ_OFFSET, str(event.offset).encode())])

    async def _replay_parked(correlation_id: str, target: str, expired_before: float | None = None) -> None:
        """Decide the parked replies of a case: those from ``target`` now it has its workflow, or
        every one parked before ``expired_before`` (refused: no case, or not routed to them)."""
        parked = workflows.get(_parked_key(correlation_id)) or []
        due = [p for p in parked if p["sender"] == target or (expired_before is not None and p["at"] < expired_before)]
        if not due:
            return
        left = [p for p in parked if p not in due]
        if left:
            workflows[_parked_key(correlation_id)] = left
        else:
            del workflows[_parked_key(correlation_id)]
        for p in due:
            await _decide(Parked.from_dict(p), parked_already=True)

    @app.agent(ticks)
    async def check_deadlines(stream: Any) -> None:
        async for event in stream.events():
            partition, now = event.message.partition, time.time()
            for key in list(workflows.keys()):
                # Read now, not from a list made before: the alerts sent below let the other
                # agents run, and a transition they store would be overwritten by a stale copy.
                stored = workflows.get(key)
                if key.endswith(PARKED_SUFFIX) and stored and stored[0]["partition"] == partition:
                    await _replay_parked(key[:-len(PARKED_SUFFIX)], "", expired_before=now - grace)
                    continue
                if not isinstance(stored, dict) or stored.get("partition") != partition:
                    continue
                after, missed = overdue(_workflow(stored), now, deadlines)
                if not missed:
                    continue
                workflows[key] = {**stored, "workflow": asdict(after)}
                for deadline in missed:
                    alert = {"alert_id": f"{key}/{deadline}", "deadline": deadline, "correlation_id": after.correlation_id,
                             "case_key": after.case_key, "origin": after.origin, "target": after.target,
                             "region": after.region, "state": after.state, "routed_at": _moment(after.routed_at),
                             "at": _moment(now)}
                    await app.topic(settings.topics.national_alerts, **raw).send(
                        key=after.case_key.encode(), value=alerts.encode(alert))
                    ALERTS.labels(after.target, deadline).inc()

    @app.timer(settings.case_check_seconds)
    async def tick() -> None:
        for partition in range(settings.partitions):
            await ticks.send(key=b"tick", value=str(time.time()).encode(), partition=partition)

    return app


def run(settings: Settings, stop: threading.Event) -> None:
    """Work the case workflows until ``stop`` is set."""
    (settings.data_dir / "cases").mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    run_until_stopped(build_app(settings, Deadlines.from_settings(settings)), stop)


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _headers(event: Any) -> dict[str, str]:
    raw = event.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: (v or b"").decode("utf-8", "replace") for k, v in items}


def _province_of(topic: str, settings: Settings) -> str:
    for q in settings.provinces:
        if topic == settings.topics.province_replies(q):
            return q
    return ""


def _region(codec: EventCodec, value: bytes) -> str:
    """The case's own region: for a case routed before routings named the responsible region."""
    try:
        event = codec.decode(value)[1]
    except DecodeError:
        return ""
    record = event.get("after") or event.get("before") or {}
    return str(record.get("region_code") or "")


@dataclass(frozen=True)
class Parked:
    """A reply as read from its topic, kept in the table while it waits for its case."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "at": self.at,
                "key": base64.b64encode(self.key).decode("ascii"), "value": base64.b64encode(self.value).decode("ascii")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Parked":
        return cls(d["topic"], d["partition"], d["offset"], base64.b64decode(d["key"]), base64.b64decode(d["value"]),
                   d["at"])


def _parked_key(correlation_id: str) -> str:
    """The table entry holding a case's replies that came before the case itself."""
    return correlation_id + PARKED_SUFFIX


def _targets_key(correlation_id: str) -> str:
    """The table entry listing the provinces a case was routed to (beside its workflows)."""
    return f"{correlation_id}/targets"


def _stored(after: Workflow, partition: int, case: bytes, kind: str) -> dict[str, Any]:
    """A workflow as the table keeps it, with the routed message (sent on as it is if declined)
    and its kind (``roadx.routed.kind``: ``assist``, or "" for a case)."""
    return {"workflow": asdict(after), "partition": partition, "case": base64.b64encode(case).decode("ascii"),
            "kind": kind}


def _workflow(stored: dict[str, Any] | None) -> Workflow | None:
    if stored is None:
        return None
    fields = dict(stored["workflow"])
    for name in ("reasons", "stages", "replies", "alerted"):
        fields[name] = tuple(fields[name])
    return Workflow(**fields)
