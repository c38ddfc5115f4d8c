"""The store's side of the submission check: its tables, the rows the sink writes to them,
and what the checker reads and writes.

Tables (``{db}`` placeholder; ReplacingMergeTree, so a row stored twice collapses):

- ``submission_manifests`` — one row per message of ``prov.<P>.manifests``, as received:
  ``party`` (of the topic), ``submission_key`` (the message key), ``manifest_digest`` (SM3 of
  its bytes), ``document`` (its text), ``origin`` (``<topic>:<partition>:<offset>``).
- ``submission_tallies`` — one row per ``roadx.SubmissionTally`` of ``national.submissions``:
  ``tally_id``, ``party``, ``submission_id``, ``source_partition``, the events as parallel
  arrays ``event_ids``, ``seqs``, ``digests`` (SM3, hex), ``outcomes`` (accepted | rejected |
  duplicate), ``tallied_at``. ``ARRAY JOIN`` them for one row per event.
- ``evidence_log`` — the hash-chained evidence log (``schemas.evidence``), one row per entry
  (``ORDER BY index``): ``index``, ``kind`` (manifest | receipt), ``party``, ``submission_id``,
  ``at`` (text, as hashed), ``document`` (the signed JSON as it travelled), ``prev``, ``hash``,
  plus ``origin`` (the manifest message it answers; ``''`` for an unannounced submission) and
  ``logged_at``. The store's rows are the log's truth: ``national.evidence`` carries a copy.
- ``submission_findings`` — one row per provenance finding of the check: ``party``,
  ``submission_id``, ``rule`` (bad_signature, unknown_key, revoked_key, expired_key,
  other_party_key, wrong_party, malformed_manifest, submission_reused, manifest_repeated,
  events_missing, extra_events, seq_out_of_range, root_mismatch, no_manifest), ``detail``,
  ``origin``, ``at``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas import provenance, sm2

from .errors import StoreError, UnstorableMessage
from .submissions import ManifestMessage, REPEATED, Receipted, receipted_from, tallied_events
from .writer import column_types

DEDUP_WINDOW = 1000
MANIFEST_COLUMNS = ("party", "submission_key", "manifest_digest", "document", "origin", "topic", "partition", "offset",
                    "ingested_at")
TALLY_COLUMNS = ("tally_id", "party", "submission_id", "source_partition", "event_ids", "seqs", "digests", "outcomes",
                 "tallied_at", "topic", "partition", "offset", "ingested_at")
EVIDENCE_COLUMNS = ("index", "kind", "party", "submission_id", "at", "document", "prev", "hash", "origin", "logged_at")
FINDING_COLUMNS = ("party", "submission_id", "rule", "detail", "origin", "at")

TABLES = ("""
CREATE TABLE IF NOT EXISTS {db}.submission_manifests (
    party LowCardinality(String) COMMENT 'the party of the prov.<P>.manifests topic it came in on',
    submission_key String COMMENT 'the message key: the submission id it claims',
    manifest_digest String COMMENT 'SM3 (hex) of the message bytes',
    document String COMMENT 'the manifest as received',
    origin String COMMENT '<topic>:<partition>:<offset>',
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (party, submission_key, origin)
SETTINGS non_replicated_deduplication_window = {window}
""", """
CREATE TABLE IF NOT EXISTS {db}.submission_tallies (
    tally_id String COMMENT '<source topic>:<partition>:<offset of the last event tallied>',
    party LowCardinality(String),
    submission_id String,
    source_partition UInt32,
    event_ids Array(String),
    seqs Array(Int64),
    digests Array(String) COMMENT 'SM3 (hex) of each event as received',
    outcomes Array(LowCardinality(String)) COMMENT 'accepted | rejected | duplicate',
    tallied_at DateTime64(3, 'UTC'),
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (party, submission_id, tally_id)
SETTINGS non_replicated_deduplication_window = {window}
""", """
CREATE TABLE IF NOT EXISTS {db}.evidence_log (
    `index` UInt64,
    kind LowCardinality(String) COMMENT 'manifest | receipt',
    party LowCardinality(String),
    submission_id String,
    at String COMMENT 'the entry time as hashed (ISO 8601, UTC)',
    document String COMMENT 'the signed document as it travelled',
    prev String,
    hash String,
    origin String COMMENT 'the manifest message answered (<topic>:<partition>:<offset>); empty: unannounced',
    logged_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY `index`
SETTINGS non_replicated_deduplication_window = {window}
""", """
CREATE TABLE IF NOT EXISTS {db}.submission_findings (
    party LowCardinality(String),
    submission_id String,
    rule LowCardinality(String),
    detail String,
    origin String,
    at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (party, submission_id, rule, origin)
""")


def submission_tables() -> list[str]:
    return [ddl.replace("{window}", str(DEDUP_WINDOW)).strip() for ddl in TABLES]


# -- rows the sink writes from its topics -----------------------------------------------
def manifest_row(msg: Any, party: str, ingested_at: dt.datetime) -> tuple:
    """One ``submission_manifests`` row from a message of ``prov.<party>.manifests``, as received."""
    raw = msg.value() or b""
    key = (msg.key() or b"").decode("utf-8", "replace")[:256]
    origin = f"{msg.topic()}:{msg.partition()}:{msg.offset()}"
    return (party, key, sm2.sm3(raw).hex(), raw.decode("utf-8", "replace"), origin, msg.topic(), int(msg.partition()),
            int(msg.offset()), ingested_at)


def tally_row(tally: Mapping[str, Any], topic: str, partition: int, offset: int, ingested_at: dt.datetime) -> tuple:
    """One ``submission_tallies`` row from a decoded ``roadx.SubmissionTally``."""
    try:
        events = provenance.tallied(tally)
        return (tally["tally_id"], tally["party"], tally["submission_id"], int(tally["source_partition"]),
                [e.event_id for e in events], [e.seq for e in events], [e.digest.hex() for e in events],
                [e.outcome for e in events], tally["tallied_at"], topic, int(partition), int(offset), ingested_at)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnstorableMessage(f"tally at {topic}[{partition}]@{offset}: {type(exc).__name__}: {exc}") from exc


# -- what the checker reads and writes ---------------------------------------------------
class SubmissionStore:
    """The checker's reads and writes of the store (``database``)."""

    def __init__(self, store: Any, database: str) -> None:
        self.store, self.db = store, database

    def pending_manifests(self) -> list[ManifestMessage]:
        """Manifest messages not answered yet (no evidence row, no repeat finding names them), oldest first."""
        rows = self._query(f"""
            SELECT party, submission_key, document, origin, ingested_at FROM {self.db}.submission_manifests FINAL
            WHERE origin NOT IN (SELECT origin FROM {self.db}.evidence_log WHERE origin != '')
              AND origin NOT IN (SELECT origin FROM {self.db}.submission_findings WHERE rule = '{REPEATED}')
            ORDER BY ingested_at, topic, partition, offset""", {}, "the pending manifests")
        return [ManifestMessage(str(p), str(k), str(d), str(o), _aware(t)) for p, k, d, o, t in rows]

    def receipts(self, submissions: Iterable[str]) -> dict[tuple[str, str], Receipted]:
        """The first receipt of each (party, submission) among ``submissions``."""
        wanted = sorted(set(submissions))
        if not wanted:
            return {}
        rows = self._query(f"SELECT party, submission_id, document FROM {self.db}.evidence_log FINAL "
                           "WHERE kind = 'receipt' AND submission_id IN %(ids)s ORDER BY index",
                           {"ids": wanted}, "the receipts")
        texts: dict[tuple[str, str], list[str]] = {}
        for party, submission, document in rows:
            texts.setdefault((str(party), str(submission)), []).append(str(document))
        return {key: found for key, values in texts.items() if (found := receipted_from(values)) is not None}

    def tallies(self, submissions: Iterable[str]) -> dict[tuple[str, str], list[Any]]:
        """Every tallied event of each (party, submission) among ``submissions``."""
        rows = self._tally_rows("event_ids, seqs, digests, outcomes", "ORDER BY tally_id", submissions,
                                "the tallied events")
        found: dict[tuple[str, str], list[Any]] = {}
        for party, submission, ids, seqs, digests, outcomes in rows:
            found.setdefault((str(party), str(submission)), []).extend(tallied_events(ids, seqs, digests, outcomes))
        return found

    def tallied_counts(self, submissions: Iterable[str]) -> dict[tuple[str, str], int]:
        """The distinct events tallied for each (party, submission) among ``submissions``, counted by the store."""
        rows = self._tally_rows("uniqExactArray(event_ids)", "GROUP BY party, submission_id", submissions,
                                "the tallied event counts")
        return {(str(party), str(submission)): int(count) for party, submission, count in rows}

    def _tally_rows(self, columns: str, then: str, submissions: Iterable[str], what: str) -> list:
        """(party, submission_id, ``columns``…) of the tallies of ``submissions``, ``then`` ordered or grouped."""
        wanted = sorted(set(submissions))
        if not wanted:
            return []
        return self._query(f"SELECT party, submission_id, {columns} FROM {self.db}.submission_tallies FINAL "
                           f"WHERE submission_id IN %(ids)s {then}", {"ids": wanted}, what)

    def unannounced(self) -> list[tuple[str, str, dt.datetime]]:
        """(party, submission, first tallied) of tallied submissions with no manifest and no receipt."""
        rows = self._query(f"""
            SELECT party, submission_id, min(ingested_at) FROM {self.db}.submission_tallies
            WHERE (party, submission_id) NOT IN (SELECT party, submission_key FROM {self.db}.submission_manifests)
              AND (party, submission_id) NOT IN
                  (SELECT party, submission_id FROM {self.db}.evidence_log WHERE kind = 'receipt')
            GROUP BY party, submission_id ORDER BY 3""", {}, "the unannounced submissions")
        return [(str(p), str(s), _aware(t)) for p, s, t in rows]

    def head(self) -> dict[str, Any] | None:
        """The last entry of the evidence log, else None."""
        entries = self.entries(f"SELECT {', '.join(EVIDENCE_COLUMNS[:8])} FROM {self.db}.evidence_log FINAL "
                               "ORDER BY index DESC LIMIT 1", {})
        return entries[0] if entries else None

    def entries_after(self, index: int) -> list[dict[str, Any]]:
        """Every entry after ``index`` (with its ``origin``), in order."""
        return self.entries(f"SELECT {', '.join(EVIDENCE_COLUMNS[:9])} FROM {self.db}.evidence_log FINAL "
                            "WHERE index > %(index)s ORDER BY index", {"index": index})

    def entries(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows = self._query(sql, params, "the evidence log")
        names = EVIDENCE_COLUMNS[:len(rows[0])] if rows else ()
        return [{name: int(v) if name == "index" else str(v) for name, v in zip(names, row)} for row in rows]

    def log(self, entries: Sequence[Mapping[str, Any]], origins: Sequence[str], now: dt.datetime) -> None:
        """Insert evidence entries, each with the origin of its manifest (``''``: none), in one insert
        (retried alike: its token names their indexes and hashes)."""
        if len(origins) != len(entries):
            raise ValueError(f"{len(entries)} evidence entries with {len(origins)} origins")
        rows = [(*(entry[name] for name in EVIDENCE_COLUMNS[:8]), origin, now) for entry, origin in zip(entries, origins)]
        token = f"roadx-evidence/{entries[0]['index']}-{entries[-1]['index']}/{entries[-1]['hash']}"
        self._insert("evidence_log", rows, EVIDENCE_COLUMNS, token)

    def record_findings(self, rows: Sequence[tuple]) -> None:
        if rows:
            self._insert("submission_findings", list(rows), FINDING_COLUMNS, None)

    def _insert(self, table: str, rows: list[tuple], columns: Sequence[str], token: str | None) -> None:
        try:
            self.store.insert(table, rows, column_names=list(columns), database=self.db,
                              column_types=column_types(self.store, self.db, table, columns),
                              settings={"insert_deduplication_token": token} if token else None)
        except (ClickHouseError, OSError, ValueError, TypeError) as exc:
            raise StoreError(f"cannot write {len(rows)} rows to {self.db}.{table}: {exc}") from exc

    def _query(self, sql: str, params: Mapping[str, Any], what: str) -> list:
        try:
            return self.store.query(sql, parameters=dict(params)).result_rows
        except (ClickHouseError, OSError) as exc:
            raise StoreError(f"cannot read {what} from {self.db}: {exc}") from exc


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
    raise StoreError(f"expected a time from the store, got {value!r}")


def evidence_slice(store: Any, database: str, month: str = "") -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The entries of the evidence log (those whose ``at`` falls in ``month``, YYYY-MM, when given) in
    index order, and the entry just before the first of them (None: they start the log)."""
    db = SubmissionStore(store, database)
    where, params = ("WHERE startsWith(at, %(month)s)", {"month": month}) if month else ("", {})
    columns = ", ".join(EVIDENCE_COLUMNS[:8])
    entries = db.entries(f"SELECT {columns} FROM {database}.evidence_log FINAL {where} ORDER BY index", params)
    if not entries or entries[0]["index"] == 0:
        return entries, None
    before = db.entries(f"SELECT {columns} FROM {database}.evidence_log FINAL WHERE index < %(index)s "
                        "ORDER BY index DESC LIMIT 1", {"index": entries[0]["index"]})
    return entries, (before[0] if before else None)
