"""Routed cases' workflows as the store sees them (the ``case_workflows`` view).

``list_workflows`` and ``find_workflows`` read the view (bound parameters only) into
``CaseWorkflow`` records; ``case_key_at`` finds the entity key of a case routed to a province,
which a reply is keyed by. A workflow is **overdue** at a time when it is still open
(routed, received or in progress) and its target missed a deadline counted from the routing:
the receipt (still ``routed`` after ``receipt_seconds``) or the answer (still open after
``answer_seconds``) — the rule of the case workflows' alerts, said once here in SQL
(``OVERDUE``) for the listing and the monthly report. Times are UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.deadlines import Deadlines

from .ddl import check_identifier
from .errors import QueryError, SinkError

OPEN_STATES = ("routed", "received", "in_progress")
# Bound parameters: {now:DateTime64(3, 'UTC')}, {receipt:Float64}, {answer:Float64} (seconds).
OPEN = "state IN ('routed', 'received', 'in_progress')"
OVERDUE = (f"({OPEN} AND ((state = 'routed' AND {{now:DateTime64(3, 'UTC')}} > routed_at + "
           "toIntervalMillisecond(toInt64({receipt:Float64} * 1000))) "
           "OR {now:DateTime64(3, 'UTC')} > routed_at + toIntervalMillisecond(toInt64({answer:Float64} * 1000))))")
COLUMNS = ("correlation_id", "target", "case_key", "case_no", "origin", "reasons", "stages", "routed_at", "region",
           "received_at", "answered_at", "state", "outcome", "reason", "redirect_to", "replies", "alerts")


@dataclass(frozen=True)
class CaseWorkflow:
    """One routed case's workflow at its target province, as stored."""

    correlation_id: str
    target: str
    case_key: str
    case_no: str
    origin: str
    reasons: str
    stages: tuple[str, ...]
    routed_at: dt.datetime
    region: str  # the responsible county or city ("" when the routing named none)
    received_at: dt.datetime | None
    answered_at: dt.datetime | None  # the answer or the decline
    state: str  # routed | received | in_progress | answered | declined
    outcome: str | None
    reason: str | None  # of a decline
    redirect_to: str | None
    replies: int  # forwarded to the origin
    alerts: tuple[str, ...]  # deadlines alerted: receipt, answer
    overdue: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("routed_at", "received_at", "answered_at"):
            out[name] = None if out[name] is None else out[name].isoformat(timespec="milliseconds")
        out["stages"], out["alerts"] = list(self.stages), list(self.alerts)
        return out


def deadline_parameters(deadlines: Deadlines, now: dt.datetime) -> dict[str, Any]:
    """The query parameters ``OVERDUE`` reads: now and the two deadlines in seconds."""
    return {"now": now, "receipt": float(deadlines.receipt_seconds), "answer": float(deadlines.answer_seconds)}


def list_workflows(client: Any, database: str, deadlines: Deadlines, *, target: str | None = None,
                   region: str | None = None, open_only: bool = False, overdue_only: bool = False,
                   now: dt.datetime | None = None) -> list[CaseWorkflow]:
    """The workflows (of ``target`` and of the regions starting with ``region`` when given), oldest
    routing first; only the open or overdue ones on request."""
    where = ["1"]
    if target is not None:
        where.append("target = {target:String}")
    if region is not None:
        where.append("startsWith(region, {region:String})")
    if open_only:
        where.append(OPEN)
    if overdue_only:
        where.append(OVERDUE)
    return _select(client, database, " AND ".join(where), deadlines, now, target=target or "", region=region or "")


def find_workflows(client: Any, database: str, correlation_id: str, deadlines: Deadlines,
                   now: dt.datetime | None = None) -> list[CaseWorkflow]:
    """Every workflow of one case (one per province it was routed to), oldest routing first."""
    return _select(client, database, "correlation_id = {cid:String}", deadlines, now, cid=correlation_id)


def case_key_at(client: Any, database: str, correlation_id: str, target: str) -> str | None:
    """The entity key of the case ``correlation_id`` routed to ``target``, else None."""
    rows = _rows(client, database, "SELECT any(entity_key) FROM {DB}.routed_cases FINAL "
                 "WHERE correlation_id = {cid:String} AND target_province = {target:String} HAVING count() > 0",
                 cid=correlation_id, target=target)
    return str(rows[0][0]) if rows else None


def _select(client: Any, database: str, where: str, deadlines: Deadlines, now: dt.datetime | None,
            **parameters: Any) -> list[CaseWorkflow]:
    sql = (f"SELECT {', '.join(COLUMNS)}, {OVERDUE} FROM {{DB}}.case_workflows WHERE {where} "
           "ORDER BY routed_at, correlation_id, target")
    rows = _rows(client, database, sql, **deadline_parameters(deadlines, now or dt.datetime.now(dt.timezone.utc)), **parameters)
    return [_workflow(row) for row in rows]


def _workflow(row: Sequence[Any]) -> CaseWorkflow:
    fields = dict(zip(COLUMNS, row))
    for name in ("routed_at", "received_at", "answered_at"):
        if fields[name] is not None and fields[name].tzinfo is None:
            fields[name] = fields[name].replace(tzinfo=dt.timezone.utc)
    return CaseWorkflow(**{**fields, "stages": tuple(fields["stages"]), "alerts": tuple(fields["alerts"]),
                           "replies": int(fields["replies"])}, overdue=bool(row[len(COLUMNS)]))


def _rows(client: Any, database: str, sql: str, **parameters: Any) -> list[Sequence[Any]]:
    try:
        db = check_identifier(database)
    except ValueError as exc:
        raise SinkError(str(exc)) from exc
    try:
        return client.query(sql.replace("{DB}", db), parameters=parameters).result_rows
    except ClickHouseError as exc:
        if "UNKNOWN_TABLE" in str(exc) or "doesn't exist" in str(exc):
            raise SinkError(f"the store in {db} has no case workflows yet: the sink creates them when it starts") from exc
        raise QueryError(sql, str(exc)) from exc
