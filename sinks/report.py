"""The monthly report: what the store says about each province's month, read with SQL.

``load_report`` runs the queries (bound parameters only) and returns ``ReportData``;
``sinks.report_html.render_html`` turns that into one self-contained HTML page. Months
follow the source commit time (``change_log.ts``, a finding's ``event_ts_ms``), as the
aggregates ``events_daily``, ``quality_monthly`` and ``case_flows_daily`` do; when a
store predates them, the same numbers come from ``change_log``, ``quality_findings`` and
``routed_cases``. Dead letters carry no source time, so they count by arrival month. The
registers' current records per party (road and water, from the ``current_*`` views) are
counted when the report is made. The information service's use per party (``service_requests``)
counts by the month a request was received: requests, by outcome, distinct endpoints, p50 and p99 latency. Cross-province
case timeliness per target province (``case_workflows``) counts the workflows routed in the
month: received within the receipt deadline, answered (or declined) within the answer
deadline, the median time to that answer, those still open and overdue at ``as_of``
(``sinks.cases.OVERDUE``); and the alerts raised in the month (``case_alerts``, by ``at``) —
per target province, and per city below it (the responsible region's first four digits).
``case_timeliness`` reads that section alone, for any month and ``as_of`` (``roadx status``
shows the current month's).

Scores: for province P and month M, ``rejected`` = distinct events with an error finding;
``total`` = accepted events + rejected; ``score_D = 1 - events with a final finding in
dimension D / total``. A finding is final when it is an error, or a warning that does not
wait on a reference. A warning that a referenced entity is not registered
(``unknown_operator``, ``unknown_holder``: ``quality_findings.ref_key``) depends on the
order the hub happened to read partitions in, so it is decided here, from the store alone:
**withdrawn** when that entity's first version reached the store no later than the
reference grace period after the finding was made, **provisional** while that period has
not passed yet at ``as_of``, **final** otherwise. Reading the same data in another order
gives the same scores.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.codes import QUALITY_DIMENSIONS
from schemas.contract import SERVICE_OUTCOMES
from schemas.deadlines import Deadlines
from schemas.topics import ANY_PREFIX_CHANGES

from .cases import OPEN, OVERDUE, deadline_parameters
from .ddl import VIEWS, check_identifier
from .errors import QueryError, SinkError

DIMENSIONS = QUALITY_DIMENSIONS
OUTCOMES = SERVICE_OUTCOMES
REFERENCE_GRACE_SECONDS = 3600  # how long a referenced entity may arrive after its reference (ROADX_REFERENCE_GRACE_SECONDS)
TREND_MONTHS = 6
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass
class ProvinceMonth:
    """One province's numbers for one month."""

    events: int = 0
    rejected: int = 0
    findings_by_dimension: dict[str, int] = field(default_factory=dict)  # events with a final finding
    withdrawn: int = 0  # reference findings whose entity arrived within the grace period
    provisional: int = 0  # reference findings still within it
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None

    @property
    def total(self) -> int:
        return self.events + self.rejected

    def score(self, dimension: str) -> float | None:
        """1 - events with a final finding in the dimension / all events judged; None without events."""
        if self.total == 0:
            return None
        return max(0.0, 1 - self.findings_by_dimension.get(dimension, 0) / self.total)


@dataclass
class ServiceUse:
    """One party's use of the information service in the report's month."""

    requests: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)  # outcome (one of OUTCOMES) -> requests
    endpoints: int = 0  # distinct route templates asked
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None


@dataclass
class CaseTimeliness:
    """One target province's cross-province cases routed in the report's month, as the store sees them."""

    routed: int = 0
    received_on_time: int = 0  # a first reply within the receipt deadline
    answered_on_time: int = 0  # an answer or decline within the answer deadline
    median_answer_ms: float | None = None  # routing to answer or decline, of those answered
    open: int = 0  # still open at as_of
    overdue: int = 0  # open and past a deadline at as_of
    alerts: dict[str, int] = field(default_factory=dict)  # deadline -> alerts raised in the month
    received: int = 0  # with a first reply
    answered: int = 0  # answered or declined


@dataclass
class ReportData:
    month: dt.date
    months: list[dt.date]
    provinces: list[str]
    stats: dict[tuple[str, dt.date], ProvinceMonth] = field(default_factory=dict)
    by_entity: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected_by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    dead_letters: dict[str, dict[str, int]] = field(default_factory=dict)
    flows: dict[tuple[str, str], int] = field(default_factory=dict)
    service_use: dict[str, ServiceUse] = field(default_factory=dict)  # party -> its requests this month
    timeliness: dict[str, CaseTimeliness] = field(default_factory=dict)  # target province -> its cases this month
    # (target province, city "PPCC00" or "" when the routing named no region) -> its cases this month
    timeliness_by_city: dict[tuple[str, str], CaseTimeliness] = field(default_factory=dict)
    # register -> party -> its current records (the register's current_* view when the report was made)
    records: dict[str, dict[str, int]] = field(default_factory=dict)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    sources: list[str] = field(default_factory=list)

    def at(self, province: str, month: dt.date | None = None) -> ProvinceMonth:
        return self.stats.get((province, month or self.month), ProvinceMonth())


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` → the first day of that month; raises ``SinkError`` otherwise."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise SinkError(f"--month {text!r} is not a month: use YYYY-MM, e.g. 2024-06")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def trend_months(month: dt.date, count: int = TREND_MONTHS) -> list[dt.date]:
    return [add_months(month, i) for i in range(1 - count, 1)]


def province_of_topic(topic: str) -> str:
    """The province of a ``prov.<P>.changes`` topic (any prefix), else ``unknown``."""
    match = ANY_PREFIX_CHANGES.search(topic or "")
    return match.group(1) if match else "unknown"


# -- queries ------------------------------------------------------------------------------------

class _Store:
    def __init__(self, client: Any, database: str) -> None:
        try:
            self.db = check_identifier(database)
        except ValueError as exc:
            raise SinkError(str(exc)) from exc
        self.client = client
        self.tables = {r[0] for r in self.rows("SELECT name FROM system.tables WHERE database = {db:String}",
                                               db=self.db)}

    def rows(self, sql: str, **parameters: Any) -> list[Sequence[Any]]:
        try:
            return self.client.query(sql.replace("{DB}", getattr(self, "db", "")),
                                     parameters=parameters).result_rows
        except ClickHouseError as exc:
            raise QueryError(sql, str(exc)) from exc

    def has(self, *tables: str) -> bool:
        return all(t in self.tables for t in tables)


def load_report(client: Any, database: str, month: dt.date, provinces: Iterable[str],
                as_of: dt.datetime | None = None, grace_seconds: int = REFERENCE_GRACE_SECONDS,
                case_deadlines: Deadlines | None = None) -> ReportData:
    """Query the store for ``month`` (and the months before it, for trends); reference findings
    are judged at ``as_of`` (default now) with ``grace_seconds`` of grace, routed cases against
    ``case_deadlines`` (no timeliness without them)."""
    store = _Store(client, database)
    if not store.has("change_log"):
        raise SinkError(f"the store has no {database}.change_log table: nothing to report")
    months = trend_months(month)
    data = ReportData(month=month, months=months, provinces=list(provinces))
    span = {"start": months[0], "end": add_months(month, 1)}
    this = {"start": month, "end": add_months(month, 1)}
    _volumes(store, data, span, this)
    _quality(store, data, span, this)
    _final_findings(store, data, {**span, "as_of": as_of or data.generated_at, "grace": int(grace_seconds)})
    _dead_letters(store, data, this)
    _flows(store, data, this)
    _service_use(store, data, this)
    _records(store, data)
    if case_deadlines is not None:
        _timeliness(store, data, {**this, **deadline_parameters(case_deadlines, as_of or data.generated_at)})
    seen = {p for p, _m in data.stats} | set(data.by_entity) | {p for pair in data.flows for p in pair}
    data.provinces += sorted(p for p in seen - set(data.provinces) if p)
    return data


def _volumes(store: _Store, data: ReportData, span: dict, this: dict) -> None:
    if store.has("events_daily"):
        data.sources.append("volumes and lag: events_daily")
        monthly = store.rows(
            "SELECT province, toStartOfMonth(day) AS m, sum(events), quantilesTDigestMerge(0.5, 0.99)(lag_ms) "
            "FROM {DB}.events_daily WHERE day >= {start:Date} AND day < {end:Date} GROUP BY province, m", **span)
        entities = store.rows(
            "SELECT province, entity_type, sum(events) FROM {DB}.events_daily "
            "WHERE day >= {start:Date} AND day < {end:Date} GROUP BY province, entity_type", **this)
    else:
        data.sources.append("volumes and lag: change_log")
        monthly = store.rows(
            "SELECT province, toDate(toStartOfMonth(ts)) AS m, count(), "
            "quantilesTDigest(0.5, 0.99)(toInt64(dateDiff('millisecond', ts, ingested_at))) "
            "FROM {DB}.change_log FINAL WHERE ts >= {start:Date} AND ts < {end:Date} GROUP BY province, m", **span)
        entities = store.rows(
            "SELECT province, entity_type, count() FROM {DB}.change_log FINAL "
            "WHERE ts >= {start:Date} AND ts < {end:Date} GROUP BY province, entity_type", **this)
    for province, month, events, lag in monthly:
        stats = data.stats.setdefault((province, _as_date(month)), ProvinceMonth())
        stats.events = int(events)
        if lag and int(events):
            stats.lag_p50_ms, stats.lag_p99_ms = float(lag[0]), float(lag[1])
    for province, entity_type, events in entities:
        data.by_entity.setdefault(province, {})[entity_type] = int(events)


def _quality(store: _Store, data: ReportData, span: dict, this: dict) -> None:
    if store.has("quality_monthly"):
        data.sources.append("quality: quality_monthly")
        source, month_expr, events, rows = "{DB}.quality_monthly", "month", "uniqExactMerge(events)", "sum(findings)"
        when = "month >= {start:Date} AND month < {end:Date}"
    elif store.has("quality_findings"):
        data.sources.append("quality: quality_findings")
        source = "{DB}.quality_findings FINAL"
        month_expr = "toDate(toStartOfMonth(coalesce(event_ts_ms, detected_ms)))"
        events = "uniqExact(coalesce(event_id, concat(source_topic, ':', toString(source_partition), ':', toString(source_offset))))"
        rows = "count()"
        when = f"{month_expr} >= {{start:Date}} AND {month_expr} < {{end:Date}}"
    else:
        data.sources.append("quality: no quality findings table in this store")
        return
    for province, month, count in store.rows(
            f"SELECT province, {month_expr} AS m, {events} FROM {source} "
            f"WHERE {when} AND severity = 'error' GROUP BY province, m", **span):
        data.stats.setdefault((province, _as_date(month)), ProvinceMonth()).rejected = int(count)
    for province, rule, count in store.rows(
            f"SELECT province, rule, {rows} FROM {source} WHERE {when} AND severity = 'error' "
            f"GROUP BY province, rule", **this):
        data.rejected_by_rule.setdefault(province, {})[rule] = int(count)


FINAL_FINDINGS = """
SELECT province, month, dimension, uniqExactIf(judged, state = 'final'), countIf(state = 'withdrawn'),
    countIf(state = 'provisional')
FROM (
    SELECT f.province AS province, toDate(toStartOfMonth(coalesce(f.event_ts_ms, f.detected_ms))) AS month,
        f.dimension AS dimension,
        coalesce(f.event_id, concat(f.source_topic, ':', toString(f.source_partition), ':',
                                    toString(f.source_offset))) AS judged,
        f.detected_ms + toIntervalSecond({grace:UInt32}) AS settles,
        multiIf(f.severity = 'error' OR f.ref_key IS NULL, 'final',
                r.entity_key != '' AND r.arrived <= settles, 'withdrawn',
                settles > {as_of:DateTime64(3, 'UTC')}, 'provisional',
                'final') AS state
    FROM {DB}.quality_findings AS f FINAL
    LEFT JOIN (SELECT entity_key, min(ingested_at) AS arrived FROM {DB}.change_log
               WHERE op != 'd' GROUP BY entity_key) AS r ON ifNull(f.ref_key, '') = r.entity_key
    WHERE f.dimension IN ('completeness', 'conformity', 'relational')
)
WHERE month >= {start:Date} AND month < {end:Date}
GROUP BY province, month, dimension
"""


def _final_findings(store: _Store, data: ReportData, span: dict) -> None:
    """Per province, month and dimension: events with a final finding, and the reference
    findings withdrawn or still provisional (see the module docstring)."""
    if not store.has("quality_findings"):
        return
    for province, month, dimension, final, withdrawn, provisional in store.rows(FINAL_FINDINGS, **span):
        stats = data.stats.setdefault((province, _as_date(month)), ProvinceMonth())
        if final:
            stats.findings_by_dimension[dimension] = int(final)
        stats.withdrawn += int(withdrawn)
        stats.provisional += int(provisional)


def _dead_letters(store: _Store, data: ReportData, this: dict) -> None:
    if not store.has("dlq"):
        return
    for topic, rule, count in store.rows(
            "SELECT origin_topic, rule, count() FROM {DB}.dlq FINAL "
            "WHERE ingested_at >= {start:Date} AND ingested_at < {end:Date} GROUP BY origin_topic, rule", **this):
        per_rule = data.dead_letters.setdefault(province_of_topic(topic), {})
        per_rule[rule] = per_rule.get(rule, 0) + int(count)


def _flows(store: _Store, data: ReportData, this: dict) -> None:
    if store.has("case_flows_daily"):
        data.sources.append("case flows: case_flows_daily")
        rows = store.rows(
            "SELECT source_province, target_province, sum(cases) FROM {DB}.case_flows_daily "
            "WHERE day >= {start:Date} AND day < {end:Date} GROUP BY source_province, target_province", **this)
    elif store.has("routed_cases"):
        data.sources.append("case flows: routed_cases")
        rows = store.rows(
            "SELECT source_province, target_province, count() FROM {DB}.routed_cases FINAL "
            "WHERE ingested_at >= {start:Date} AND ingested_at < {end:Date} "
            "GROUP BY source_province, target_province", **this)
    else:
        return
    for source, target, count in rows:
        data.flows[(source, target)] = int(count)


def _service_use(store: _Store, data: ReportData, this: dict) -> None:
    """Per party: requests received in the month, by outcome, distinct endpoints, latency quantiles."""
    if not store.has("service_requests"):
        data.sources.append("service use: no service_requests table in this store")
        return
    data.sources.append("service use: service_requests")
    outcomes = {f"outcome_{i}": outcome for i, outcome in enumerate(OUTCOMES)}
    by_outcome = ", ".join(f"countIf(outcome = {{{name}:String}})" for name in outcomes)
    for party, requests, endpoints, latency, *counts in store.rows(
            f"SELECT party, count(), uniqExact(endpoint), quantiles(0.5, 0.99)(latency_ms), {by_outcome} "
            "FROM {DB}.service_requests FINAL WHERE ts >= {start:Date} AND ts < {end:Date} GROUP BY party",
            **this, **outcomes):
        data.service_use[party] = ServiceUse(int(requests), {o: int(n) for o, n in zip(OUTCOMES, counts) if n},
                                             int(endpoints), float(latency[0]), float(latency[1]))


def _records(store: _Store, data: ReportData) -> None:
    """Per declared register (road and water) and party: the current records of its view."""
    present = [(view, register) for view, (register, _columns) in VIEWS.items() if store.has(view)]
    data.sources.append(f"current records: {len(present)} registers' current_* views")
    for view, register in present:
        data.records[register] = {party: int(n) for party, n in store.rows(
            f"SELECT province, count() FROM {{DB}}.{view} GROUP BY province")}


# What the timeliness is counted per: the target province, or the target's city (the first four
# digits of the responsible region, "" for workflows without one) below it.
BY_PROVINCE = "target"
BY_CITY = "(target, if(length(region) = 6, concat(substring(region, 1, 4), '00'), ''))"
TIMELINESS = f"""
SELECT {{UNIT}} AS unit, count(), countIf(received_at IS NOT NULL), countIf(answered_at IS NOT NULL),
    countIf(received_at IS NOT NULL
            AND received_at <= routed_at + toIntervalMillisecond(toInt64({{receipt:Float64}} * 1000))),
    countIf(answered_at IS NOT NULL
            AND answered_at <= routed_at + toIntervalMillisecond(toInt64({{answer:Float64}} * 1000))),
    medianExactIf(toFloat64(dateDiff('millisecond', routed_at, answered_at)), answered_at IS NOT NULL),
    countIf({OPEN}), countIf({OVERDUE})
FROM {{DB}}.case_workflows
WHERE routed_at >= {{start:Date}} AND routed_at < {{end:Date}}
GROUP BY unit
"""


def case_timeliness(client: Any, database: str, month: dt.date, deadlines: Deadlines,
                    as_of: dt.datetime) -> dict[str, CaseTimeliness]:
    """Target province -> its cases routed in ``month`` against ``deadlines``, open and overdue
    judged at ``as_of``, and the alerts raised in the month: the report's timeliness section
    alone. Raises ``SinkError`` when the store has no case workflows."""
    store = _Store(client, database)
    if not store.has("case_workflows", "case_alerts"):
        raise SinkError(f"the store has no {store.db}.case_workflows yet: the sink creates it when it starts")
    return _case_timeliness(store, {"start": month, "end": add_months(month, 1),
                                    **deadline_parameters(deadlines, as_of)})


def _timeliness(store: _Store, data: ReportData, this: dict) -> None:
    """Per target province: its cases routed in the month against the deadlines, and the alerts raised."""
    if not store.has("case_workflows", "case_alerts"):
        data.sources.append("case timeliness: no case_workflows in this store")
        return
    data.sources.append("case timeliness: case_workflows, case_alerts")
    data.timeliness = _case_timeliness(store, this)
    data.timeliness_by_city = _case_timeliness(store, this, BY_CITY)


def _case_timeliness(store: _Store, this: dict, unit: str = BY_PROVINCE) -> dict[Any, CaseTimeliness]:
    """``TIMELINESS`` and the alerts for the period and deadlines in ``this``, per ``unit``
    (``BY_PROVINCE``: keyed by target; ``BY_CITY``: by (target, city))."""
    found: dict[Any, CaseTimeliness] = {}
    for target, routed, received, answered, received_on_time, answered_on_time, median, still_open, overdue \
            in store.rows(TIMELINESS.replace("{UNIT}", unit), **this):
        target = tuple(target) if isinstance(target, (list, tuple)) else target
        found[target] = CaseTimeliness(int(routed), int(received_on_time), int(answered_on_time),
                                       None if median is None or median != median else float(median),
                                       int(still_open), int(overdue), received=int(received), answered=int(answered))
    for target, deadline, count in store.rows(
            f"SELECT {unit} AS unit, deadline, count() FROM {{DB}}.case_alerts FINAL "
            "WHERE at >= {start:Date} AND at < {end:Date} GROUP BY unit, deadline", **this):
        target = tuple(target) if isinstance(target, (list, tuple)) else target
        found.setdefault(target, CaseTimeliness()).alerts[deadline] = int(count)
    return found


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
