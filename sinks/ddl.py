"""The store's tables and views (what analysts and the report may rely on).

Times are ``DateTime64(3, 'UTC')``. Personal identifiers are never stored in clear: ID
numbers keep first 6 + last 4 (``110105********002X``), phones first 3 + last 4
(``138****5678``); ``*_token`` columns/JSON fields hold a keyed token of the clear value
(join / count distinct people on it); entity keys carrying an ID number use ``tok_<token>``.

Tables (ReplacingMergeTree; ``topic``/``partition``/``offset`` = where the sink read the row):

- ``change_log`` — one row per accepted change event: ``event_id``, ``op`` (c/u/d/r),
  ``entity_type``, ``entity_key``, ``province`` (source province), ``source_system``,
  ``source_table``, ``seq`` (per source, monotonic), ``snapshot``, ``ts`` (source commit
  time), ``before``/``after`` (entity JSON, masked), ``schema_id``, ``ingested_at`` (stored).
- ``dlq`` — one row per dead letter: ``origin_topic``/``origin_partition``/``origin_offset``
  (where the bad message came from), ``rule`` (rule code, e.g. ``RQ001``, or the sink's own
  ``sink_undecodable`` / ``sink_invalid_event`` / ``sink_refused_row``), ``reason`` (text),
  ``entity_key``, ``event_id``, ``raw_base64`` (message bytes, ID/phone masked), ``key``,
  ``ingested_at``.
- ``routed_cases`` — one row per case delivered to a province's inbound topic:
  ``event_id``, ``entity_key``, ``case_no``, ``source_province``, ``target_province``,
  ``reason`` (why routed), ``stage``, ``ts`` (source commit time), ``correlation_id`` (the
  case's, ``''`` on rows stored before it was kept), ``routed_at`` (when routed: the inbound
  message's time), ``region`` (the responsible county or city: the involved entity's
  registration region, ``''`` before it was sent), ``ingested_at``.
  Assist requests (协查) too: ``event_id`` = assist_id, the entity asked about, ``ts`` = asked_at.
- ``quality_findings`` — one row per data-quality rule that fired (``national.quality``,
  ``ORDER BY finding_id``): ``finding_id``, ``rule``, ``dimension`` (completeness |
  conformity | relational | provenance), ``severity`` (error = event rejected, warning =
  accepted), ``province``, ``entity_type``, ``entity_key``, ``event_id``, ``field``
  (Nullable), ``message`` (masked), ``source_topic``/``source_partition``/``source_offset``
  (the judged event), ``event_ts_ms`` (Nullable, source commit), ``detected_ms``,
  ``ingested_at``, ``ref_key`` (Nullable: for a finding about a referenced entity that was
  not registered when the event was judged, that entity's key).
- ``service_requests`` — one row per request the information service answered
  (``national.audit``, ``ORDER BY (party, ts, request_id)``): ``request_id``, ``party``,
  ``credential_id``, ``method``, ``endpoint`` (route template), ``asked`` (Array(String):
  identifiers asked about, ID and mobile numbers as ``tok_<token>``), ``status`` (HTTP),
  ``outcome`` (found | unknown | invalid | denied | limited | error | routed), ``records``,
  ``latency_ms``, ``ts`` (request received), ``ingested_at``.
- ``case_replies`` — one row per province reply the case workflows forwarded to the
  originating province's inbound topic (``roadx.CaseReply``, ``ORDER BY (correlation_id,
  reply_id)``): ``reply_id``, ``correlation_id``, ``case_key``, ``from_province`` (the target
  replying), ``to_province`` (the origin), ``kind`` (receipt | progress | answer | decline),
  ``outcome``, ``reason``, ``redirect_to`` (Nullable), ``ts`` (sent by the province).
- ``case_alerts`` — one row per missed deadline (``national.alerts``, ``ORDER BY alert_id``:
  an alert published again collapses under ``FINAL``): ``alert_id``, ``deadline`` (receipt |
  answer), ``correlation_id``, ``case_key``, ``origin``, ``target``, ``region``, ``state`` (of
  the workflow when alerted), ``routed_at``, ``at`` (when alerted).
- ``submission_manifests``, ``submission_tallies``, ``evidence_log``, ``submission_findings`` —
  the submission check's manifests, tallied events, hash-chained evidence log of manifests and
  receipts, and provenance findings (see ``sinks.submission_store``).
- ``schema_migrations`` — ``version``, ``description``, ``applied_at`` (see migrations.py).

Views: one ``current_*`` view per declared register (``sinks.views``, from ``schemas.registers``):
``current_operators``, ``current_vehicles``, ``current_practitioners``, ``current_licences``,
``current_cases``, and from migration 12 the water registers' ``current_ships``,
``current_shipping_enterprises``, ``current_port_enterprises``, ``current_waterway_projects``:
one row per live entity (latest version by
``(seq, ts)``, deleted entities hidden) with the entity's typed fields plus ``entity_key``,
``province``, ``last_op``, ``seq``, ``ts`` (``current_practitioners``: the home province's
record, not another province's filing). ``practitioner_filings``: one row per practitioner
and province filing them as working there (异地从业人员备案) and not ended: ``entity_key``,
``province`` (the filing one), ``employer_uscc``, ``home_region``, ``home_province``,
``seq``, ``ts``. ``case_workflows``: one row per routed case's
workflow (``correlation_id``, ``target``) as the store sees it: ``case_key``, ``case_no``,
``origin``, ``reasons``, ``stages``, ``routed_at`` (first routing), ``region`` (of the first
routing), ``received_at`` (first
reply), ``answered_at`` (the answer or decline), ``state`` (routed | received | in_progress |
answered | declined: the furthest reply forwarded), ``outcome``, ``reason``, ``redirect_to``,
``replies``, ``alerts``.

Aggregates (fed by materialized views at insert time; read them with ``sum``/``-Merge``
and GROUP BY, since rows of one key are merged only eventually):

- ``events_daily`` (AggregatingMergeTree, from change_log): ``province``, ``day`` (Date of
  ``ts``), ``entity_type``, ``events`` (``sum(events)`` = accepted events),
  ``lag_ms`` (``quantilesTDigestMerge(0.5, 0.99)(lag_ms)`` = [p50, p99] of
  ``ingested_at - ts`` in ms).
- ``quality_monthly`` (AggregatingMergeTree, from quality_findings): ``province``, ``month``
  (Date, first of month of ``event_ts_ms``, else ``detected_ms``), ``dimension``,
  ``severity``, ``rule``, ``findings`` (``sum(findings)``), ``events``
  (``uniqExactMerge(events)`` = distinct events with such a finding).
- ``case_flows_daily`` (SummingMergeTree, from routed_cases): ``day`` (Date of ``ts``),
  ``source_province``, ``target_province``, ``cases`` (``sum(cases)``).

Quality score of province P, month M, dimension D (completeness / conformity / relational):
``rejected = uniqExactMerge(events)`` over quality_monthly rows of (P, M) with
``severity = 'error'`` (all dimensions); ``total = sum(events)`` of events_daily for (P, M)
``+ rejected``; ``score_D = 1 - uniqExactMerge(events)[P, M, D, severity='error'] / total``.
"""

from __future__ import annotations

import re
from typing import Iterable

from . import views
from .views import AWAY_FILING, PRACTITIONER_FILINGS, VIEWS

DEDUP_WINDOW = 1000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TABLES = ("change_log", "dlq", "routed_cases")

_TABLE_DDL = {
    "change_log": """
CREATE TABLE IF NOT EXISTS {db}.change_log (
    event_id UUID,
    op LowCardinality(String),
    entity_type LowCardinality(String),
    entity_key String,
    province LowCardinality(String),
    source_system LowCardinality(String),
    source_table LowCardinality(String),
    seq UInt64,
    snapshot Bool,
    ts DateTime64(3, 'UTC'),
    before String COMMENT 'entity before the change, JSON, personal data masked',
    after String COMMENT 'entity after the change, JSON, personal data masked',
    schema_id UInt32,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (entity_type, entity_key, event_id)
SETTINGS non_replicated_deduplication_window = {window}
""",
    "dlq": """
CREATE TABLE IF NOT EXISTS {db}.dlq (
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    origin_topic LowCardinality(String),
    origin_partition Nullable(Int32),
    origin_offset Nullable(Int64),
    rule LowCardinality(String),
    reason String,
    entity_key String,
    event_id String,
    raw_base64 String COMMENT 'the message value, base64, ID and phone numbers masked in place',
    key String,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset)
SETTINGS non_replicated_deduplication_window = {window}
""",
    "routed_cases": """
CREATE TABLE IF NOT EXISTS {db}.routed_cases (
    event_id UUID,
    entity_key String,
    case_no String,
    source_province LowCardinality(String),
    target_province LowCardinality(String),
    reason String,
    stage LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (target_province, event_id)
SETTINGS non_replicated_deduplication_window = {window}
""",
}


QUALITY_FINDINGS = """
CREATE TABLE IF NOT EXISTS {db}.quality_findings (
    finding_id String COMMENT '<event_id or topic:partition:offset>/<rule>, stable across reprocessing',
    rule LowCardinality(String),
    dimension LowCardinality(String) COMMENT 'completeness | conformity | relational | provenance',
    severity LowCardinality(String) COMMENT 'error (event rejected) | warning (event accepted)',
    province LowCardinality(String),
    entity_type Nullable(String),
    entity_key Nullable(String) COMMENT 'ID and mobile numbers replaced by tok_<token>',
    event_id Nullable(String),
    field Nullable(String),
    message String COMMENT 'ID and mobile numbers masked',
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    event_ts_ms Nullable(DateTime64(3, 'UTC')),
    detected_ms DateTime64(3, 'UTC'),
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY finding_id
SETTINGS non_replicated_deduplication_window = {window}
"""

SERVICE_REQUESTS = """
CREATE TABLE IF NOT EXISTS {db}.service_requests (
    request_id UUID,
    party LowCardinality(String) COMMENT 'party code of the caller; empty when it was not identified',
    credential_id String COMMENT 'id of the credential presented, never the token',
    method LowCardinality(String),
    endpoint LowCardinality(String) COMMENT 'the route template answered, not the path asked',
    asked Array(String) COMMENT 'identifiers asked about; ID and mobile numbers as tok_<token>',
    status UInt16 COMMENT 'HTTP status answered',
    outcome LowCardinality(String) COMMENT 'found | unknown | invalid | denied | limited | error',
    records UInt32 COMMENT 'records in the answer',
    latency_ms Float64 COMMENT 'request received to answer sent',
    ts DateTime64(3, 'UTC') COMMENT 'when the request was received',
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (party, ts, request_id)
SETTINGS non_replicated_deduplication_window = {window}
"""

CASE_REPLIES = """
CREATE TABLE IF NOT EXISTS {db}.case_replies (
    reply_id UUID,
    correlation_id String,
    case_key String,
    from_province LowCardinality(String) COMMENT 'the province replying: the target of the case',
    to_province LowCardinality(String) COMMENT 'the originating province it was forwarded to',
    kind LowCardinality(String) COMMENT 'receipt | progress | answer | decline',
    outcome Nullable(String) COMMENT 'an answer: action_taken | decision | penalty | closed',
    reason Nullable(String) COMMENT 'a decline: why the case is not the province''s',
    redirect_to Nullable(String) COMMENT 'a decline: the province the case belongs to',
    ts DateTime64(3, 'UTC') COMMENT 'when the province sent the reply',
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (correlation_id, reply_id)
SETTINGS non_replicated_deduplication_window = {window}
"""

CASE_ALERTS = """
CREATE TABLE IF NOT EXISTS {db}.case_alerts (
    alert_id String COMMENT '<correlation id>/<target>/<deadline>: the same when published again',
    deadline LowCardinality(String) COMMENT 'receipt | answer',
    correlation_id String,
    case_key String,
    origin LowCardinality(String),
    target LowCardinality(String),
    region LowCardinality(String),
    state LowCardinality(String) COMMENT 'the workflow''s state when alerted',
    routed_at DateTime64(3, 'UTC'),
    at DateTime64(3, 'UTC') COMMENT 'when the deadline was found missed',
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY alert_id
SETTINGS non_replicated_deduplication_window = {window}
"""

ROUTED_CASES_WORKFLOW = (
    "ALTER TABLE {db}.routed_cases ADD COLUMN IF NOT EXISTS correlation_id String DEFAULT '' "
    "COMMENT 'the case''s correlation id (header roadx.routed.correlation_id)', "
    "ADD COLUMN IF NOT EXISTS routed_at DateTime64(3, 'UTC') DEFAULT ingested_at "
    "COMMENT 'when the case was routed: the time of the inbound message'"
)

ROUTED_CASES_REGION = (
    "ALTER TABLE {db}.routed_cases ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '' "
    "COMMENT 'the responsible county or city: the involved entity''s registration region "
    "(header roadx.routed.region; empty for cases routed before it was sent)'"
)

# The state a forwarded reply puts a workflow in; the furthest one wins (one answer or decline at most).
CASE_WORKFLOWS = """
CREATE OR REPLACE VIEW {db}.case_workflows AS
SELECT
    r.correlation_id AS correlation_id,
    r.target_province AS target,
    r.case_key AS case_key,
    r.case_no AS case_no,
    r.origin AS origin,
    r.reasons AS reasons,
    r.stages AS stages,
    r.first_routed AS routed_at,{region_column}
    p.first_reply AS received_at,
    p.closing_reply AS answered_at,
    multiIf(p.answered > 0, 'answered', p.declined > 0, 'declined', p.progressed > 0, 'in_progress',
            p.first_reply IS NOT NULL, 'received', 'routed') AS state,
    p.answer_outcome AS outcome,
    p.decline_reason AS reason,
    p.declined_to AS redirect_to,
    ifNull(p.forwarded, 0) AS replies,
    a.missed AS alerts
FROM (
    SELECT correlation_id, target_province, any(entity_key) AS case_key, any(case_no) AS case_no,
        argMin(source_province, routed_at) AS origin, argMin(reason, routed_at) AS reasons,
        arraySort(groupUniqArray(stage)) AS stages, min(routed_at) AS first_routed{region_of_first_routing}
    FROM {db}.routed_cases FINAL
    WHERE correlation_id != ''
    GROUP BY correlation_id, target_province
) AS r
LEFT JOIN (
    SELECT correlation_id, from_province,
        toNullable(min(ts)) AS first_reply,
        minIf(toNullable(ts), kind IN ('answer', 'decline')) AS closing_reply,
        countIf(kind = 'answer') AS answered, countIf(kind = 'decline') AS declined,
        countIf(kind = 'progress') AS progressed,
        anyIf(outcome, kind = 'answer') AS answer_outcome, anyIf(reason, kind = 'decline') AS decline_reason,
        anyIf(redirect_to, kind = 'decline') AS declined_to, toNullable(count()) AS forwarded
    FROM {db}.case_replies FINAL
    GROUP BY correlation_id, from_province
) AS p ON r.correlation_id = p.correlation_id AND r.target_province = p.from_province
LEFT JOIN (
    SELECT correlation_id, target, arraySort(groupUniqArray(deadline)) AS missed
    FROM {db}.case_alerts FINAL
    GROUP BY correlation_id, target
) AS a ON r.correlation_id = a.correlation_id AND r.target_province = a.target
"""

QUALITY_FINDINGS_REF_KEY = (
    "ALTER TABLE {db}.quality_findings ADD COLUMN IF NOT EXISTS ref_key Nullable(String) "
    "COMMENT 'unknown_operator / unknown_holder: the referenced entity key (masked like entity_key); "
    "the finding is withdrawn when that entity arrived within the reference grace period'"
)

ROUTED_CASES_TS = (
    "ALTER TABLE {db}.routed_cases ADD COLUMN IF NOT EXISTS ts DateTime64(3, 'UTC') DEFAULT ingested_at "
    "COMMENT 'source commit time of the case change'"
)

# Aggregates: (target table, materialized view feeding it, backfill from existing rows).
# Target tables keep a deduplication window so a retried insert (same token) is dropped
# in them too (deduplicate_blocks_in_dependent_materialized_views, on by default).
EVENTS_DAILY = ("""
CREATE TABLE IF NOT EXISTS {db}.events_daily (
    province LowCardinality(String),
    day Date COMMENT 'day of the source commit time (change_log.ts)',
    entity_type LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64) COMMENT 'accepted events: sum(events)',
    lag_ms AggregateFunction(quantilesTDigest(0.5, 0.99), Int64)
        COMMENT 'source commit to store, ms: quantilesTDigestMerge(0.5, 0.99)(lag_ms)'
) ENGINE = AggregatingMergeTree
ORDER BY (province, day, entity_type)
SETTINGS non_replicated_deduplication_window = {window}
COMMENT 'accepted events per province per day, from change_log'
""", """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.events_daily_mv TO {db}.events_daily AS
{select}
""", """
SELECT province, toDate(ts) AS day, entity_type, count() AS events,
    quantilesTDigestState(0.5, 0.99)(toInt64(dateDiff('millisecond', ts, ingested_at))) AS lag_ms
FROM {db}.change_log{final}
GROUP BY province, day, entity_type
""")

QUALITY_MONTHLY = ("""
CREATE TABLE IF NOT EXISTS {db}.quality_monthly (
    province LowCardinality(String),
    month Date COMMENT 'first day of the month of event_ts_ms (detected_ms when unknown)',
    dimension LowCardinality(String),
    severity LowCardinality(String),
    rule LowCardinality(String),
    findings SimpleAggregateFunction(sum, UInt64) COMMENT 'findings: sum(findings)',
    events AggregateFunction(uniqExact, String) COMMENT 'distinct events with such a finding: uniqExactMerge(events)'
) ENGINE = AggregatingMergeTree
ORDER BY (province, month, dimension, severity, rule)
SETTINGS non_replicated_deduplication_window = {window}
COMMENT 'Quality findings per province, month, dimension, severity, rule. Score of province P, month M, dimension D in (completeness, conformity, relational): rejected = uniqExactMerge(events) where P, M, severity = error (all dimensions); total = sum(events_daily.events) for P, M + rejected; score_D = 1 - uniqExactMerge(events) where P, M, dimension = D, severity = error, divided by total.'
""", """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.quality_monthly_mv TO {db}.quality_monthly AS
{select}
""", """
SELECT province, toStartOfMonth(coalesce(event_ts_ms, detected_ms)) AS month, dimension, severity, rule,
    count() AS findings,
    uniqExactState(coalesce(event_id,
        concat(source_topic, ':', toString(source_partition), ':', toString(source_offset)))) AS events
FROM {db}.quality_findings{final}
GROUP BY province, month, dimension, severity, rule
""")

CASE_FLOWS_DAILY = ("""
CREATE TABLE IF NOT EXISTS {db}.case_flows_daily (
    day Date COMMENT 'day of the source commit time of the routed case change',
    source_province LowCardinality(String),
    target_province LowCardinality(String),
    cases UInt64 COMMENT 'case changes routed: sum(cases)'
) ENGINE = SummingMergeTree
ORDER BY (day, source_province, target_province)
SETTINGS non_replicated_deduplication_window = {window}
COMMENT 'cross-province case flows per day, from routed_cases'
""", """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.case_flows_daily_mv TO {db}.case_flows_daily AS
{select}
""", """
SELECT toDate(ts) AS day, source_province, target_province, count() AS cases
FROM {db}.routed_cases{final}
GROUP BY day, source_province, target_province
""")

AGGREGATES = {"events_daily": EVENTS_DAILY, "quality_monthly": QUALITY_MONTHLY, "case_flows_daily": CASE_FLOWS_DAILY}


def check_identifier(name: str) -> str:
    """A database name usable unquoted in DDL; raises ``ValueError`` otherwise."""
    if not _IDENT.match(name):
        raise ValueError(f"database name {name!r} is not a plain identifier (letters, digits, _)")
    return name


def base_tables() -> list[str]:
    """``change_log``, ``dlq`` and ``routed_cases`` as first created (``{db}`` placeholder)."""
    return [_TABLE_DDL[t].replace("{window}", str(DEDUP_WINDOW)).strip() for t in TABLES]


def current_views(filings_apart: bool = False, entity_types: Iterable[str] | None = None,
                  leave_out: Iterable[str] = ()) -> list[str]:
    """The ``current_*`` views (``{db}`` placeholder) of ``entity_types`` (every declared register by
    default, ``sinks.views``), without the fields named in ``leave_out``; with ``filings_apart``
    (migration 9 on) ``current_practitioners`` leaves other provinces' filings (``AWAY_FILING``) out."""
    return views.current_views(entity_types, filings_apart, leave_out)


def practitioner_filings(leave_out: Iterable[str] = ()) -> list[str]:
    """``current_practitioners`` without other provinces' filings (and the fields in ``leave_out``),
    and ``practitioner_filings``."""
    return [views.view_ddl("current_practitioners", filings_apart=True, leave_out=tuple(leave_out)),
            PRACTITIONER_FILINGS.strip()]


def quality_findings() -> list[str]:
    return [QUALITY_FINDINGS.replace("{window}", str(DEDUP_WINDOW)).strip()]


def service_requests() -> list[str]:
    return [SERVICE_REQUESTS.replace("{window}", str(DEDUP_WINDOW)).strip()]


def case_workflows() -> list[str]:
    """``case_replies``, ``case_alerts``, the correlation id and routing time of ``routed_cases``,
    and the ``case_workflows`` view over them (``{db}`` placeholder)."""
    return [CASE_REPLIES.replace("{window}", str(DEDUP_WINDOW)).strip(),
            CASE_ALERTS.replace("{window}", str(DEDUP_WINDOW)).strip(),
            ROUTED_CASES_WORKFLOW, case_workflows_view(with_region=False)]


def case_workflows_view(with_region: bool = True) -> str:
    """The ``case_workflows`` view; ``region`` (the responsible region of the case's first routing
    to the target) from migration 8 on, when ``routed_cases`` has it."""
    region, first = ("\n    r.region AS region,", ", argMin(region, routed_at) AS region") if with_region else ("", "")
    return CASE_WORKFLOWS.replace("{region_column}", region).replace("{region_of_first_routing}", first).strip()


def case_regions() -> list[str]:
    """The responsible region of each routing in ``routed_cases``, and in the ``case_workflows`` view."""
    return [ROUTED_CASES_REGION, case_workflows_view()]


def aggregates() -> list[str]:
    """Each aggregate's table, its materialized view, and a backfill from rows already stored.

    The backfill reads the source ``FINAL`` and runs only while the aggregate is empty, so
    running it again adds nothing.
    """
    out = []
    for name, (table, view, select) in AGGREGATES.items():
        out.append(table.replace("{window}", str(DEDUP_WINDOW)).strip())
        out.append(view.replace("{select}", select.replace("{final}", "").strip()).strip())
        out.append(_backfill(name, select.replace("{final}", " FINAL").strip()))
    return out


def _backfill(name: str, select: str) -> str:
    return (f"INSERT INTO {{db}}.{name}\nSELECT * FROM ({select})\n"
            f"WHERE (SELECT count() FROM {{db}}.{name}) = 0")


def render(statement: str, database: str) -> str:
    """A statement with ``{db}`` replaced by the (checked) database name."""
    return statement.replace("{db}", check_identifier(database))
