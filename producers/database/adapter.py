"""Database change capture: poll a provincial table (or its outbox), spool signed events, drain.

Two modes:

- **cursor** (default): rows are read in (cursor, key) order after the last position. A
  key seen for the first time is a create (``c``), a key seen before an update (``u``).
  Deletes are seen only through a soft-delete column (``deleted_column``): a row whose
  flag is set becomes a delete (``d``) of the last record sent for its key. Rows removed
  with SQL ``DELETE`` are not visible to polling: use the outbox mode for those.
- **outbox**: the table is an outbox with an op column (``c``/``u``/``d``), the key,
  a monotonic id as cursor, and either a JSON ``payload`` column or the entity's columns.
  A delete without payload deletes the last record sent for its key.

State lives in one SQLite file per source under ``<data_dir>/adapters/``: the spool of
encoded events, the read position (stored with the events it produced, in the same
transaction), the last record per key, the next ``source.seq``, and the acknowledged
position, which moves only when the spool is fully acknowledged by the broker.
With the broker unreachable, reading goes on until ``spool_limit`` events wait; on
restart, waiting events are resent first (the same bytes, so the same ``event_id``).
Metrics (``producers.metrics``, adapter ``db``): read when spooled, sent when acknowledged.

Each poll batch is a submission (``producers.submissions``; at most ``batch_size`` rows, so
at most twice as many events): its events name it (province, source, first ``seq``), and its
manifest, signed with the province's SM2 key, is written with the batch, kept with the events
in the spool, and sent once the broker acknowledged them. Each cycle takes the hub's receipts
(``producers.receipts``) into the spool's ``submissions`` table; a submission without one
``receipt_seconds`` after its manifest is sent once more (events and the same manifest), then
counted missing. ``CycleReport`` shows how many wait and how many came.
``<state>.errors.jsonl`` reports rejected rows and identifiers written in canonical form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from schemas import contract, provenance
from schemas.codec import EventCodec
from schemas.errors import EncodeError
from schemas.registry import make_registry
from schemas.settings import Settings

from .. import metrics
from . import changes as db_changes
from .source import Position, TableReader, connect, redact_url, value_text
from ..errors import ProducerError, PublishError, RowRejected, SourceSchemaError
from ..publisher import SpoolPublisher, make_producer
from .report import CycleReport
from .store import AdapterStore, Known, Plan
from ..receipts import MISSING, RECEIVED, REFUSED, RESENT, ReceiptDesk
from ..errors import ReceiptError
from ..submissions import SubmissionBook, db_submission

_OPS = {"c": "c", "i": "c", "insert": "c", "create": "c", "u": "u", "update": "u", "d": "d", "delete": "d"}
_IN_FLIGHT_CAP = 20_000
METRICS_LABEL = "db"
# Reconnect quickly when the broker returns; never let a send create the topic with broker defaults.
ADAPTER_PRODUCER_CONF = {"reconnect.backoff.max.ms": 1000, "allow.auto.create.topics": False}


@dataclass(frozen=True)
class DbAdapterConfig:
    province: str
    url: str
    table: str
    entity: str
    key: str
    cursor: str
    outbox: bool = False
    op_column: str = "op"
    payload_column: str = "payload"
    deleted_column: str | None = None
    column_map: Mapping[str, str] = field(default_factory=dict)
    system: str = "db"
    batch_size: int = 1000  # rows per poll, and so per submission
    spool_limit: int = 50_000
    receipt_seconds: float = 60.0  # send a submission once more when no receipt came this long; 0: no receipts

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.spool_limit < 1:
            raise ProducerError("batch size and spool limit must be at least 1")
        if self.outbox and self.deleted_column:
            raise ProducerError("--deleted-column applies to cursor mode; an outbox carries deletes in its op column")
        db_changes.entity_specs(self.entity)  # rejects an unknown entity

    @property
    def state_name(self) -> str:
        identity = json.dumps([redact_url(self.url), self.table, self.entity, self.key, self.cursor, self.outbox])
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:10]
        table = "".join(ch if ch.isalnum() else "_" for ch in self.table)
        return f"db-{self.province}-{table}-{digest}"


def plan_changes(config: DbAdapterConfig, rows: Iterable[Mapping[str, Any]], lookup: Callable[[str], Known | None],
                 encode: Callable[[dict[str, Any]], bytes], topic: str, next_seq: int, now_ms: int,
                 submission: str | None = None) -> Plan:
    """Turn polled rows into encoded change events sent in ``submission``, each with its digest
    (pure apart from ``lookup``/``encode``)."""
    plan = Plan(next_seq=next_seq, submission=submission)
    for row in rows:
        key = value_text(row[config.key])
        cursor = row[config.cursor]
        plan.position = Position(cursor, row[config.key])
        prior = plan.known[key] if key in plan.known else lookup(key)
        notes: list[tuple[str, str, str]] = []
        try:
            changes, after = _row_changes(config, row, key, prior, notes)
        except RowRejected as problem:
            plan.rejected.append((problem, dict(row)))
            continue
        if not changes:
            plan.ignored += 1
            continue
        encoded, digests, seq = [], [], plan.next_seq
        try:
            for part, (op, before, record) in enumerate(changes):
                event = db_changes.change_event(
                    event_id=db_changes.event_id(config.province, config.table, key, value_text(cursor), str(part)),
                    op=op, entity_type=config.entity, before=before, after=record, province=config.province,
                    system=config.system, table=config.table, seq=seq, ts_ms=db_changes.source_ts_ms(cursor, now_ms),
                    submission=submission)
                value = encode(event)
                encoded.append((topic, event["entity_key"].encode("utf-8"), value))
                digests.append((seq, provenance.event_digest(value)))
                seq += 1
        except (EncodeError, KeyError, ProducerError) as exc:
            plan.rejected.append((RowRejected(key, "", "does_not_encode", str(exc)), dict(row)))
            continue
        plan.entries += encoded
        plan.digests += digests
        plan.normalised += [(key, *note) for note in notes]
        plan.next_seq = seq
        plan.known[key] = after
    return plan


def _row_changes(config: DbAdapterConfig, row: Mapping[str, Any], key: str, prior: Known | None,
                 notes: list) -> tuple[list[tuple[str, dict | None, dict | None]], Known | None]:
    """[(op, before, after)] for one row, and what is known about its key afterwards."""
    if config.outbox:
        raw_op = row.get(config.op_column)
        op = _OPS.get(str(raw_op).strip().lower()) if raw_op is not None else None
        if op is None:
            raise RowRejected(key, config.op_column, "unknown_op", f"{raw_op!r} is not c, u or d")
        data = _payload(config, row, key)
        deleted = op == "d"
    else:
        op, data = "", row
        deleted = bool(config.deleted_column) and db_changes.is_flag_set(
            row.get(config.deleted_column), key, config.deleted_column)
    if deleted:
        if prior is not None:
            return [("d", prior.record, None)], None
        if not config.outbox:
            return [], None  # never sent, so nothing to delete downstream
        if data is None:
            raise RowRejected(key, config.payload_column, "unknown_key",
                              "a delete of a key never sent needs a payload to name the entity")
        record = db_changes.row_to_record(config.entity, data, key, config.column_map)
        return [("d", record, None)], None
    if data is None:
        raise RowRejected(key, config.payload_column, "required", "a create or update needs a payload")
    record = db_changes.row_to_record(config.entity, data, key, config.column_map, notes)
    now = Known(contract.entity_key(config.entity, record), record)
    if prior is not None and prior.entity_key != now.entity_key:  # the natural key changed
        return [("d", prior.record, None), ("c", None, record)], now
    if not op:
        op = "u" if prior is not None else "c"
    return [(op, prior.record if prior else None, record)], now


def _payload(config: DbAdapterConfig, row: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    if config.payload_column not in row:
        return row
    raw = row[config.payload_column]
    if raw is None or isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise RowRejected(key, config.payload_column, "bad_payload", f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RowRejected(key, config.payload_column, "bad_payload", "the payload is not a JSON object")
    return data


class DbAdapter:
    """Runs one source: ``cycle`` reads what is new into the spool and drains what it can."""

    def __init__(self, settings: Settings, config: DbAdapterConfig, *, kafka_conf: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.config, self._clock = settings, config, clock
        self.topic = settings.topics.province_changes(config.province)
        self._key = settings.province_key(config.province)  # an unknown party fails here
        refusal = settings.parties().refusal(config.province, config.entity)
        if refusal is not None:  # before the source is read: the hub would refuse every event of it
            raise ProducerError(f"register_not_allowed: {refusal}")
        self._codec = EventCodec(make_registry(settings.schema_registry_url or None))
        self.state_path = settings.data_dir / "adapters" / f"{config.state_name}.db"
        self.errors_path = self.state_path.with_suffix(".errors.jsonl")
        self._connection = connect(config.url)
        try:
            self.reader = TableReader(self._connection, config.table, config.cursor, config.key, self._needed_columns())
            self._check_entity_columns()
            self.store = AdapterStore(self.state_path)
        except ProducerError:
            self._connection.close()
            raise
        try:
            conf = kafka_conf or settings.kafka_conf()
            topics = settings.topics
            self.book = SubmissionBook(self.store, config.province, topics.province_manifests(config.province),
                                       keep_events=True, clock=clock)
            self._producer = make_producer({**ADAPTER_PRODUCER_CONF, **conf})
            self.publisher = SpoolPublisher(self.store, producer=self._producer, on_acked=self._acked, book=self.book)
            self.desk = ReceiptDesk(conf, topics.province_receipts(config.province),
                                    f"{topics.prefix}roadx-db-{config.state_name}-receipts", config.province,
                                    settings.party_keys(config.province).hub_public, self.book, METRICS_LABEL,
                                    config.receipt_seconds, clock=clock)
        except ProducerError:
            self.close()
            raise
        metrics.spool_depth(config.province, METRICS_LABEL, self.store.depth())

    def _needed_columns(self) -> list[str]:
        if self.config.outbox:
            return [self.config.op_column]
        return [self.config.deleted_column] if self.config.deleted_column else []

    def _check_entity_columns(self) -> None:
        if self.config.outbox and self.config.payload_column in self.reader.columns:
            return
        mapped = {self.config.column_map.get(c, c) for c in self.reader.columns}
        missing = [f for f in db_changes.required_fields(self.config.entity) if f not in mapped]
        if missing:
            raise SourceSchemaError(f"table {self.config.table!r} has no column for the required "
                                    f"{self.config.entity} field(s) {', '.join(missing)}")

    def read(self) -> CycleReport:
        """Read new rows into the spool until none are left or the spool holds ``spool_limit``."""
        report = CycleReport()
        while True:
            if self.store.depth() >= self.config.spool_limit:
                report.full = True
                break
            position = Position.from_json(self.store.checkpoint())
            rows = self.reader.poll(position, self.config.batch_size)
            if not rows:
                break
            next_seq = int(self.store.meta("next_seq") or 1)
            submission = db_submission(self.config.province, self.config.state_name, next_seq)
            plan = plan_changes(self.config, rows, self.store.known, self._encode, self.topic, next_seq,
                                int(self._clock() * 1000), submission)
            self.store.commit_plan(plan, self._closing(plan))
            report.submissions += 1 if plan.entries else 0
            metrics.events_read(self.config.province, METRICS_LABEL, len(plan.entries))
            metrics.spool_depth(self.config.province, METRICS_LABEL, self.store.depth())
            self._write_report(plan)
            report.read += len(rows)
            report.spooled += len(plan.entries)
            report.ignored += plan.ignored
            report.rejected += [problem for problem, _row in plan.rejected]
            report.normalised += len(plan.normalised)
            report.acked += self._send()
        report.unorderable = self.reader.unorderable()
        return report

    def publish(self, wait: float) -> CycleReport:
        """Send what waits, wait up to ``wait`` seconds for acknowledgements, record them."""
        report = CycleReport()
        report.acked += self._send()
        self._producer.flush(wait)
        report.acked += self.publisher.commit_delivered()
        if len(self._producer) == 0:  # nothing in flight: failed deliveries are sent again next time
            try:
                report.acked += self.publisher.finish()
            except PublishError as exc:
                report.broker_error = str(exc)
        elif report.acked == 0 and wait > 0:
            report.broker_error = f"broker not acknowledging ({len(self._producer)} events in flight)"
        report.pending = self._pending_events()
        if report.pending == 0:
            checkpoint = self.store.checkpoint()
            if checkpoint is not None and checkpoint != self.store.meta("acked_position"):
                self.store.set_acked_position(checkpoint)
        return report

    def _closing(self, plan: Plan) -> list:
        """The statements keeping the batch as a submission: its events, digests and signed manifest."""
        if not plan.entries or plan.submission is None:
            return []
        key = self.settings.party_key(self.config.province)
        manifest = provenance.sign_manifest(
            party=self.config.province, key_id=key.key_id, private=key.private, submission_id=plan.submission,
            seqs_and_digests=plan.digests, created=dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc))
        return [self.book.part(plan.submission, 0, plan.digests, plan.entries), self.book.close(manifest)]

    def receipts(self, timeout: float = 0.0) -> CycleReport:
        """Take the receipts that came into the spool; send once more the submissions whose receipt is overdue."""
        report = CycleReport(pending=self._pending_events())
        if self.config.receipt_seconds <= 0:
            return report
        try:
            outcomes = self.desk.check(timeout)
        except ReceiptError as exc:
            report.broker_error = str(exc)
            outcomes = []
        for outcome in outcomes:
            if outcome.outcome == RECEIVED:
                report.receipts += 1
            elif outcome.outcome == REFUSED:
                report.refused_receipts.append(f"{outcome.submission or '?'}: {outcome.reason}")
            elif outcome.outcome == RESENT:
                report.resent += 1
            elif outcome.outcome == MISSING:
                report.missing += 1
        if report.resent:
            report.acked += self._send()
        report.waiting_receipts = self.waiting_receipts()
        report.pending = self._pending_events()
        return report

    def _pending_events(self) -> int:
        """Events (not manifests) the broker has not acknowledged yet."""
        return int(self.store.select("SELECT count(*) FROM entries WHERE topic = ?", (self.topic,))[0][0])

    def waiting_receipts(self) -> int:
        counts = self.book.counts()
        return counts["held"] + counts["sent"]

    def cycle(self, wait: float = 5.0) -> CycleReport:
        """Resend what waits, read what is new, drain, take receipts: one polling round."""
        report = self.publish(0)
        report.add(self.read())
        report.add(self.publish(wait))
        report.add(self.receipts())
        return report

    def run_once(self, timeout: float = 60.0, progress: Callable[[CycleReport], None] | None = None) -> CycleReport:
        """Cycle until every row is read and acknowledged; raise ``PublishError`` after ``timeout``."""
        total = CycleReport()
        deadline = time.monotonic() + timeout
        while True:
            report = self.cycle(wait=max(0.1, min(5.0, deadline - time.monotonic())))
            total.add(report)
            if progress is not None:
                progress(total)
            if report.read == 0 and not report.full and report.pending == 0 and self.store.depth() == 0:
                return total
            if time.monotonic() >= deadline:
                raise PublishError(f"{report.pending} events not acknowledged by the broker after {timeout:.0f}s "
                                   f"({report.broker_error or 'no answer'}); they stay in {self.state_path} "
                                   f"and are sent by the next run")

    def close(self) -> None:
        """Stop: undelivered events stay in the spool for the next run."""
        try:
            if hasattr(self, "desk"):
                self.desk.close()
            if hasattr(self, "_producer"):
                self._producer.flush(1.0)
                self.publisher.commit_delivered()
        finally:
            if hasattr(self, "store"):
                self.store.close()
            self._connection.close()

    def _acked(self, n: int) -> None:
        metrics.events_sent(self.config.province, METRICS_LABEL, n)
        metrics.spool_depth(self.config.province, METRICS_LABEL, self.store.depth())

    def _send(self) -> int:
        acked = 0
        while len(self._producer) < _IN_FLIGHT_CAP and self.publisher.send():
            acked += self.publisher.commit_delivered()
        return acked

    def _encode(self, event: dict[str, Any]) -> bytes:
        return self._codec.encode(event, self._key)

    def _write_report(self, plan: Plan) -> None:
        base = {"ts_ms": int(self._clock() * 1000), "table": self.config.table}
        lines = [{**base, "key": problem.key, "field": problem.field, "rule": problem.rule, "message": str(problem),
                  "row": row} for problem, row in plan.rejected] + [
            {**base, "key": key, "field": name, "rule": "normalised", "raw": raw, "value": value,
             "message": f"row {key}: {raw!r} is stored in canonical form as {value!r}"}
            for key, name, raw, value in plan.normalised]
        if lines:
            with open(self.errors_path, "a", encoding="utf-8") as out:
                out.writelines(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
