"""What the chaos run reads from the line: spool checkpoints, the store, and the topics.

``spooled_so_far``, ``store_counts`` and ``served_case_store`` watch progress while the run
goes on (the store through the running sink's read-only endpoint); ``read_snapshot`` reads
the stopped store for the final check (``read_case_store``: the case workflows, either way);
``read_topic_counts`` reads ``national.changes``, the inbound topics and ``national.dlq``
whole (while the broker is still up) so doubles the sink would hide show, and what the case
workflows forwarded, sent on and refused;
``trace_lost`` finds lost events on the broker to say which stage dropped them, and
``trace_missing_routes`` tells of each missing routed case what the stream workers did with it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

from schemas import topics as th
from schemas.kafka import read_topics
from schemas.settings import Settings

from ..errors import DeployError
from ..stack import from_served_store
from .cases import REDIRECTED, CaseStore, StoredWorkflow
from .check import StoreSnapshot, TopicSnapshot, Truth
from .trace import Located, LogEntry, explain_missing_routes, origin_of, parse_worker_log


def spooled_so_far(settings: Settings) -> int:
    """Events the adapter has generated and spooled, from its spools' checkpoints (read-only)."""
    generated = 0
    for province in settings.provinces:
        path = settings.spool_dir / f"{province}.db"
        if not path.exists():
            continue
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
            try:
                row = db.execute("SELECT value FROM checkpoint WHERE only = 1").fetchone()
            finally:
                db.close()
            if row:
                generated = max(generated, int(json.loads(row[0])["generated"]))
        except (sqlite3.Error, ValueError, KeyError, TypeError):
            continue
    return generated


# routed_cases rows the stream stage routed (not the declined cases the case workflows sent on)
ROUTED_BY_STREAMS = f"reason != '{REDIRECTED}'"


def store_counts(settings: Settings) -> tuple[int, int] | None:
    """(distinct event ids in change_log, distinct routed cases) from the running sink, or None if unreachable."""
    def read(client: Any, db: str) -> tuple[int, int]:
        return (int(client.command(f"SELECT uniqExact(event_id) FROM {db}.change_log")),
                int(client.command(f"SELECT uniqExact(event_id, target_province) FROM {db}.routed_cases "
                                   f"WHERE {ROUTED_BY_STREAMS}")))
    return from_served_store(settings, read)


def served_case_store(settings: Settings) -> CaseStore | None:
    """The case workflows as the running sink's store shows them, or None if unreachable."""
    return from_served_store(settings, read_case_store)


def read_case_store(client: Any, db: str) -> CaseStore:
    """Every workflow of the ``case_workflows`` view and every reply forwarded in ``case_replies``."""
    workflows = {(str(cid), str(target)): StoredWorkflow(str(state), outcome, redirect_to)
                 for cid, target, state, outcome, redirect_to in client.query(
                     f"SELECT correlation_id, target, state, outcome, redirect_to FROM {db}.case_workflows").result_rows}
    replies = {str(i): (str(cid), str(sender), str(kind)) for i, cid, sender, kind in client.query(
        f"SELECT toString(reply_id), correlation_id, from_province, kind FROM {db}.case_replies FINAL").result_rows}
    return CaseStore(workflows=workflows, replies=replies)


def read_snapshot(settings: Settings) -> StoreSnapshot:
    """Physical change_log and routed_cases rows per event, every current-state view and the case
    workflows (store closed after)."""
    from sinks.ddl import VIEWS
    from sinks.store import open_store

    db = settings.clickhouse_database
    client = open_store(settings)
    try:
        change_log = {str(i): int(n) for i, n in client.query(
            f"SELECT toString(event_id), count() FROM {db}.change_log GROUP BY event_id").result_rows}
        routed = {(str(i), str(q)): int(n) for i, q, n in client.query(
            f"SELECT toString(event_id), target_province, count() FROM {db}.routed_cases "
            f"WHERE {ROUTED_BY_STREAMS} GROUP BY event_id, target_province").result_rows}
        current = {}
        for view in VIEWS:
            result = client.query(f"SELECT * FROM {db}.{view}")
            columns = result.column_names
            current[view] = {row[columns.index("entity_key")]: dict(zip(columns, row)) for row in result.result_rows}
        cases = read_case_store(client, db)
    finally:
        client.close()
    return StoreSnapshot(change_log=change_log, routed=routed, current=current, cases=cases)


def read_topic_counts(settings: Settings, give_up_seconds: float = 300.0) -> TopicSnapshot:
    """Messages per event on ``national.changes`` and per (event, target) on each ``xprov.<Q>.inbound``;
    on the inbound topics also the replies forwarded to an origin (per reply id) and the declined
    cases sent on (per correlation id and new target), and on ``national.dlq`` the replies refused.

    Reads every partition from the beginning to its end (``schemas.kafka.read_topics``: past
    the high watermark reported when the read began, which Tansu may report lower than the
    true end). Raises ``DeployError`` when the broker cannot be read, a topic is missing or the
    read takes longer than ``give_up_seconds``.
    """
    from schemas.codec import EventCodec
    from schemas.errors import DecodeError
    from schemas.registry import make_registry

    from sinks.rows import header_map
    from streams.handover import late_scope

    names = settings.topics
    target_of = {names.province_inbound(p): p for p in settings.provinces}
    replies_topics = {names.province_replies(p) for p in settings.provinces}
    codec = EventCodec(make_registry(settings.schema_registry_url or None))
    changes: Counter = Counter()
    routed: Counter = Counter()
    undecodable: Counter = Counter()
    replies: Counter = Counter()
    rerouted: Counter = Counter()
    refused: Counter = Counter()
    late = 0
    for messages in read_topics(settings.kafka_conf(), f"{names.sink_group}-chaos-topics",
                                [names.national_changes, *target_of, names.national_dlq], error=DeployError,
                                what="read the output topics to their end", total_seconds=give_up_seconds,
                                require_all=True):
        for m in messages:
            topic = m.topic()
            headers = header_map(m.headers())
            if topic == names.national_dlq:
                if headers.get(th.DLQ_TOPIC) in replies_topics:
                    refused[headers.get(th.DLQ_RULE, "")] += 1
                continue
            if topic in target_of and th.REPLY_KIND in headers:
                replies[headers.get(th.REPLY_ID, "")] += 1
                continue
            if topic in target_of and headers.get(th.ROUTED_REASON) == REDIRECTED:
                rerouted[(headers.get(th.ROUTED_CORRELATION_ID, ""), target_of[topic])] += 1
                continue
            try:
                event_id = str(codec.decode(m.value())[1]["event_id"])
            except (DecodeError, KeyError, TypeError):
                undecodable[topic] += 1
                continue
            if topic in target_of:
                routed[(event_id, target_of[topic])] += 1
                late += late_scope(headers.get(th.ORIGIN, "")) is not None
            else:
                changes[event_id] += 1
    return TopicSnapshot(changes=dict(changes), routed=dict(routed), undecodable=dict(undecodable),
                         replies=dict(replies), rerouted=dict(rerouted), refused=dict(refused), routed_late=late)


def read_stored_ids(settings: Settings) -> set[str]:
    from sinks.store import open_store

    client = open_store(settings)
    try:
        return {str(i) for (i,) in client.query(
            f"SELECT DISTINCT toString(event_id) FROM {settings.clickhouse_database}.change_log").result_rows}
    finally:
        client.close()


def locate(settings: Settings, event_ids: Iterable[str], topics: Sequence[str]) -> dict[str, list[Located]]:
    """Every message of the given events on ``topics``, read from the beginning, in topic order."""
    from schemas.codec import EventCodec
    from schemas.errors import DecodeError
    from schemas.registry import make_registry

    codec = EventCodec(make_registry(settings.schema_registry_url or None))
    found: dict[str, list[Located]] = {i: [] for i in event_ids}
    for messages in read_topics(settings.kafka_conf(), f"{settings.topics.sink_group}-chaos-trace", topics,
                                error=DeployError, what=f"read {len(topics)} topics to trace events"):
        for m in messages:
            try:
                event_id = str(codec.decode(m.value())[1]["event_id"])
            except (DecodeError, KeyError, TypeError):
                continue
            if event_id in found:
                found[event_id].append(Located(m.topic(), m.partition(), m.offset(), origin_of(m.headers()),
                                               m.timestamp()[1]))
    order = {t: n for n, t in enumerate(topics)}
    return {i: sorted(where, key=lambda m: (order[m.topic], m.partition, m.offset)) for i, where in found.items()}


def trace_lost(settings: Settings, truth: Truth, stored: set[str], limit: int = 10) -> list[str]:
    """Where the lost events are on the broker: which stage dropped them, with topic[partition]@offset."""
    names = settings.topics
    national = names.national_changes
    try:
        found = locate(settings, truth.valid_ids - stored,
                       [*(names.province_changes(p) for p in settings.provinces), national])
    except DeployError as exc:
        return [f"cannot trace the lost events: {exc}"]
    stages = {"never on a province topic (adapter or broker)": [], "on the province topic only (stream stage)": [],
              "on national.changes, not in the store (sink)": []}
    keys = list(stages)
    for event_id, where in sorted(found.items()):
        stage = keys[0] if not where else keys[2] if any(m.topic == national for m in where) else keys[1]
        at = ", ".join(f"{m.topic}[{m.partition}]@{m.offset}" for m in where) or "-"
        stages[stage].append(f"{event_id} at {at}")
    return [f"lost events {stage}: {len(items)}, e.g. {items[:limit]}" for stage, items in stages.items() if items]


def trace_missing_routes(settings: Settings, missing: Sequence[tuple[str, str]], log_dir: Path,
                         limit: int = 10) -> list[str]:
    """For each missing routed case (up to ``limit``): its source message, the worker that
    processed it last and what the workers' read-backs decided (``deploy.chaos.trace``)."""
    names = settings.topics
    shown = list(missing)[:limit]
    inbound = {target: names.province_inbound(target) for _event, target in shown}
    try:
        located = locate(settings, {event_id for event_id, _target in shown},
                         [names.national_changes, *sorted(set(inbound.values()))])
    except DeployError as exc:
        return [f"cannot trace the missing routed cases: {exc}"]
    entries: list[LogEntry] = []
    for path in sorted(log_dir.glob("streams-*.log")):
        with open(path, encoding="utf-8", errors="replace") as lines:
            entries += parse_worker_log(path.stem, lines)
    return explain_missing_routes(shown, inbound, names.national_changes, located, entries)
