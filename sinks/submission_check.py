"""The hub's submission check as the sink runs it: manifests and tallies from the store in,
receipts and evidence out (the decisions are ``sinks.submissions``).

Run by the sink after its batches, at most every ``CHECK_SECONDS``, and only by the sink that
owns partition 0 of ``national.submissions`` (with one embedded sink: that sink). The evidence
log has one writer, so its chain does not fork: a sink that loses that partition stops
checking, and the one that gains it reads the log's head from the store again.

The order of the answers of one check: sign each receipt, chaining its evidence entries
(manifest, then receipt) after the previous answer's; record their findings, then insert every
entry into ``evidence_log`` in one insert — the store's rows are the log's truth — and only
then send the receipts to ``xprov.<P>.receipts`` and the entries to ``national.evidence``
(stored receipts sent again for repeated manifests go after that too, so no receipt leaves
before it is logged). One insert a check, not one an answer: each insert costs the store
milliseconds whatever it holds.
When the checker starts, and after any send that failed, it reads which entry
``national.evidence`` ends with and sends the stored entries beyond it again, with their
receipts byte for byte: a crash between the insert and the send loses nothing, and no
receipt is signed twice. A manifest sent again gets its stored receipt again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any, Callable, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from schemas.errors import KeyStoreError
from schemas.kafka import produce, read_to_end, reader_conf, watermarks
from schemas.settings import Settings

from . import metrics
from .errors import PublishError
from .submission_store import SubmissionStore
from .submissions import (
    RECEIPT, REPEAT, WAIT, Answer, VerifiedSignatures, answer, check_manifest, decides_now, entry_value,
    evidence_entries, receipted_from, sign, unannounced, unannounced_due,
)

log = logging.getLogger("roadx.sinks")

CHECK_SECONDS = 1.0
FLUSH_SECONDS = 30.0
EVIDENCE_KEY = b"roadx-evidence"  # one key: every entry in one partition, in order


class Signed(NamedTuple):
    """A receipt signed in this check, with the evidence entries it adds to the log."""

    answer: Answer
    origin: str  # where its manifest was read ('' for an unannounced submission)
    entries: list[dict[str, Any]]


class SubmissionChecker:
    """Answers submissions from the store; ``tick(active)`` after each batch of the sink."""

    def __init__(self, settings: Settings, store: Any, wait_seconds: float | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.settings, self.topics = settings, settings.topics
        self.db = SubmissionStore(store, settings.clickhouse_database)
        self.hub = settings.hub_keys()
        self.signature_valid = VerifiedSignatures()
        self.wait = settings.submission_wait_seconds if wait_seconds is None else wait_seconds
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.producer = Producer(settings.kafka_conf(**{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                                        "client.id": "roadx-submission-check"}))
        self.synced = False  # national.evidence holds every entry of the store
        self.head: dict[str, Any] | None = None
        self.next_at = 0.0
        self.failure: str | None = None

    def tick(self, active: bool) -> None:
        if not active:
            self.synced = False  # another sink may append meanwhile: read the head again when back
            return
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + CHECK_SECONDS
        try:
            if not self.synced:
                self.sync()
            self.check()
        except PublishError as exc:
            self.synced = False
            log.warning("receipts or evidence not sent (sent again from the store): %s", exc)

    def close(self) -> None:
        self.producer.flush(FLUSH_SECONDS)

    # -- start and recovery ---------------------------------------------------------------
    def sync(self) -> None:
        """Send the stored entries ``national.evidence`` does not end with yet, and their receipts."""
        published = last_published(self.settings.kafka_conf(), f"{self.topics.sink_group}-evidence",
                                    self.topics.national_evidence)
        resent = self.db.entries_after(published)
        for entry in resent:
            self._send_entry(entry)
        self._flush()
        if resent:
            receipts = sum(1 for e in resent if e["kind"] == "receipt")
            metrics.RECEIPTS_RESENT.inc(receipts)
            log.info("sent again %d stored evidence entries after entry %d (with %d receipts)", len(resent),
                     published, receipts)
        self.head = self.db.head()
        self.synced = True

    # -- one check ------------------------------------------------------------------------
    def check(self) -> None:
        now = self.clock()
        try:
            self.hub.reload_if_changed()
        except KeyStoreError as exc:
            log.error("the key registry cannot be read, keeping the keys held: %s", exc)
        pending = [(m, check_manifest(m, self.hub.public_key, now, self.signature_valid))
                   for m in self.db.pending_manifests()]
        waiting = self.db.unannounced()
        ids = [c.submission_id for _m, c in pending] + [s for _p, s, _t in waiting]
        if not ids:
            return
        receipts, counts = self.db.receipts(ids), self.db.tallied_counts(ids)
        deciding = {(m.party, c.submission_id) for m, c in pending
                    if decides_now(m, c, receipts.get((m.party, c.submission_id)),
                                   counts.get((m.party, c.submission_id), 0), now, self.wait)}
        deciding |= {(p, s) for p, s, first in waiting if (p, s) not in receipts and unannounced_due(first, now, self.wait)}
        tallies = self.db.tallies([s for _p, s in deciding])  # the rest wait: their events are not read
        blocked: set[tuple[str, str]] = set()  # an earlier manifest of the submission waits
        signed: list[Signed] = []
        repeats: list[tuple[Answer, str]] = []
        for message, checked in pending:
            key = (message.party, checked.submission_id)
            if key in blocked:
                continue
            decided = answer(message, checked, receipts.get(key), tallies.get(key, []), now, self.wait)
            if decided.action == WAIT:
                blocked.add(key)
            elif decided.action == REPEAT:
                repeats.append((decided, message.origin))
            else:
                receipts[key] = receipted_from([self._sign(decided, message.origin, now, signed)])
        for party, submission, first in waiting:
            key = (party, submission)
            if key not in receipts and key not in blocked and unannounced_due(first, now, self.wait):
                receipts[key] = receipted_from([self._sign(unannounced(party, submission, tallies.get(key, [])),
                                                           "", now, signed)])
        self._log_and_send(signed, now)
        for decided, origin in repeats:
            self._repeat(decided, origin, now)
        self._flush()
        if signed:
            log.info("%s", metrics.receipts_status())

    def _sign(self, decided: Answer, origin: str, now: dt.datetime, signed: list[Signed]) -> str:
        """Sign one receipt, its evidence entries chained after those ``signed`` before it; returns its text."""
        if decided.action != RECEIPT or decided.decision is None:
            raise ValueError(f"{decided.party}/{decided.submission_id}: nothing to sign ({decided.action})")
        key_id, private = self.hub.hub_key()
        text = sign(decided, now, key_id, private)
        head = signed[-1].entries[-1] if signed else self.head
        signed.append(Signed(decided, origin, evidence_entries(head, decided, text, now)))
        return text

    def _log_and_send(self, signed: list[Signed], now: dt.datetime) -> None:
        """Record the findings of the receipts ``signed``, log their evidence entries (one insert each),
        then send the receipts and entries."""
        if not signed:
            return
        self.db.record_findings([(s.answer.party, s.answer.submission_id, rule, detail, s.origin, now)
                                 for s in signed for rule, detail in s.answer.findings])
        self.db.log([entry for s in signed for entry in s.entries],
                    [s.origin for s in signed for _entry in s.entries], now)
        self.head = signed[-1].entries[-1]
        for decided, _origin, entries in signed:
            metrics.observe_receipt(decided.decision.status, [rule for rule, _ in decided.findings])
            if decided.findings:
                log.warning("submission %s/%s: %s — %s", decided.party, decided.submission_id,
                            decided.decision.status, "; ".join(f"{rule}: {detail}" for rule, detail in decided.findings))
            for entry in entries:
                self._send_entry(entry)

    def _repeat(self, decided: Answer, origin: str, now: dt.datetime) -> None:
        """Send the stored receipt again, then record the repeat (a crash between: sent twice, the same bytes)."""
        self._send_receipt(decided.party, decided.submission_id, decided.resend)
        self._flush()
        self.db.record_findings([(decided.party, decided.submission_id, rule, detail, origin, now)
                                 for rule, detail in decided.findings])
        for rule, detail in decided.findings:
            metrics.observe_repeat(rule)
            log.warning("submission %s/%s: %s: %s", decided.party, decided.submission_id, rule, detail)

    # -- sending --------------------------------------------------------------------------
    def _send_entry(self, entry: dict[str, Any]) -> None:
        if entry["kind"] == "receipt":
            self._send_receipt(str(entry["party"]), str(entry["submission_id"]), str(entry["document"]))
        self._produce(self.topics.national_evidence, entry_value(entry), EVIDENCE_KEY)

    def _send_receipt(self, party: str, submission: str, text: str) -> None:
        self._produce(self.topics.province_receipts(party), text.encode("utf-8"), submission.encode("utf-8"))

    def _produce(self, topic: str, value: bytes, key: bytes) -> None:
        try:
            produce(self.producer, topic, value, key, on_delivery=self._delivered)
        except KafkaException as exc:
            raise PublishError(f"cannot send to {topic}: {exc}") from exc

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.failure = self.failure or f"{msg.topic()}: {err.str()}"

    def _flush(self) -> None:
        remaining = self.producer.flush(FLUSH_SECONDS)
        failure, self.failure = self.failure, None
        if remaining or failure:
            raise PublishError(failure or f"{remaining} messages undelivered after {FLUSH_SECONDS:.0f}s")


def last_published(conf: dict[str, Any], group: str, topic: str) -> int:
    """The index of the last entry on ``topic`` (``national.evidence``), -1 when it holds none."""
    what = f"read where {topic} ends"
    reader = Consumer(reader_conf(conf, group))
    try:
        try:
            metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:
            raise PublishError(f"cannot {what}: {exc}") from exc
        if metadata is None or metadata.error is not None:
            raise PublishError(f"cannot {what}: the topic does not exist")
        marks = watermarks(reader, [(topic, p) for p in metadata.partitions], error=PublishError, what=what)
        starts = {part: max(high - 1, low) for part, (low, high) in marks.items() if high > 0}
        if not starts:
            return -1
        reader.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
        last = -1
        for messages in read_to_end(reader, starts, {part: high for part, (_low, high) in marks.items()},
                                    error=PublishError, what=what, total_seconds=120):
            for m in messages:
                try:
                    last = max(last, int(json.loads(m.value())["index"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s[%d]@%d is no evidence entry: skipped", m.topic(), m.partition(), m.offset())
        return last
    finally:
        reader.close()


def owns_check(consumer: Any, submissions_topic: str) -> bool:
    """Whether this sink runs the check: it is assigned partition 0 of ``national.submissions``."""
    try:
        return any(tp.topic == submissions_topic and tp.partition == 0 for tp in consumer.assignment())
    except KafkaException:
        return False
