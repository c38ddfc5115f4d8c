"""The store's DDL: tables and the ``current_*`` views, all idempotent.

``change_log`` holds every accepted event; ``dlq`` every dead letter; ``routed_cases``
every case delivered to a province's inbound topic. All three are ReplacingMergeTree
keyed on the event (or message), so a replayed row collapses on merge, and they keep
``non_replicated_deduplication_window`` so that an insert retried with the same
``insert_deduplication_token`` is dropped at once. The views read ``change_log FINAL``
and take the latest version per entity by ``(seq, ts)``, hiding deleted entities.
"""

from __future__ import annotations

import re

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


def _s(field: str) -> str:
    return f"JSONExtractString(latest_after, '{field}') AS {field}"


def _n(field: str, ch_type: str) -> str:
    return f"JSONExtract(latest_after, '{field}', 'Nullable({ch_type})') AS {field}"


def _date(field: str) -> str:
    return f"toDateOrNull(JSONExtractString(latest_after, '{field}')) AS {field}"


def _time(field: str) -> str:
    return f"parseDateTime64BestEffortOrNull(JSONExtractString(latest_after, '{field}'), 3, 'UTC') AS {field}"


# view name -> (entity_type, typed columns extracted from the latest ``after``)
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "current_operators": ("operator", (
        _s("uscc"), _s("name"), _s("region_code"), _n("permit_no", "String"), _n("business_scope", "String"),
        _s("status"), _n("legal_rep_id_number", "String"), _n("legal_rep_id_number_token", "String"),
        _n("contact_phone", "String"), _n("contact_phone_token", "String"),
    )),
    "current_vehicles": ("vehicle", (
        _s("plate"), "JSONExtractInt(latest_after, 'plate_color') AS plate_color", _n("vin", "String"),
        _s("vehicle_class"), _s("operator_uscc"), _n("transport_cert_no", "String"), _n("seats", "Int32"),
        _n("tonnage_kg", "Int32"), _s("status"),
    )),
    "current_practitioners": ("practitioner", (
        _s("id_number"), _s("id_number_token"), _s("name"), _s("qualification_cert_no"),
        "JSONExtract(latest_after, 'qualification_types', 'Array(String)') AS qualification_types",
        _s("region_code"), _n("employer_uscc", "String"), _s("status"),
    )),
    "current_licences": ("licence", (
        _s("licence_no"), _s("licence_type"), _s("holder_key"), _s("issuer_region_code"),
        _date("valid_from"), _date("valid_until"), _s("status"),
    )),
    "current_cases": ("case", (
        _s("case_no"), _s("region_code"), _s("stage"), _s("violation_code"), _time("occurred_at"),
        _n("involved_plate", "String"), _n("involved_operator_uscc", "String"),
        _n("involved_id_number", "String"), _n("involved_id_number_token", "String"),
        _n("penalty_cents", "Int64"),
    )),
}

_VIEW_DDL = """
CREATE OR REPLACE VIEW {db}.{view} AS
SELECT
    entity_key,
    {columns},
    latest_province AS province,
    last_op,
    latest_seq AS seq,
    latest_ts AS ts
FROM (
    SELECT
        entity_key,
        argMax(after, (seq, ts)) AS latest_after,
        argMax(province, (seq, ts)) AS latest_province,
        argMax(op, (seq, ts)) AS last_op,
        max(seq) AS latest_seq,
        argMax(ts, (seq, ts)) AS latest_ts
    FROM {db}.change_log FINAL
    WHERE entity_type = '{entity_type}'
    GROUP BY entity_key
)
WHERE last_op != 'd'
"""


def check_identifier(name: str) -> str:
    """A database name usable unquoted in DDL; raises ``ValueError`` otherwise."""
    if not _IDENT.match(name):
        raise ValueError(f"database name {name!r} is not a plain identifier (letters, digits, _)")
    return name


def statements(database: str) -> list[str]:
    """Every DDL statement, in the order to run them."""
    db = check_identifier(database)
    out = [f"CREATE DATABASE IF NOT EXISTS {db}"]
    out += [_TABLE_DDL[t].format(db=db, window=DEDUP_WINDOW).strip() for t in TABLES]
    for view, (entity_type, columns) in VIEWS.items():
        out.append(_VIEW_DDL.format(
            db=db, view=view, entity_type=entity_type, columns=",\n    ".join(columns)).strip())
    return out
