"""The hub's receipts, as an adapter takes them: read, verified with the hub's public key, kept.

The hub answers each manifest on ``xprov.<P>.receipts`` (key: the submission id) with a
receipt signed by its own SM2 key. ``check_receipt`` is the pure decision on one message:

- a receipt for a submission this adapter is not waiting for (another adapter's of the same
  party, or one answered already) is ``ignored``;
- one that is malformed, names another party, is not signed by the hub's key, or answers
  another manifest than the one this adapter sent is ``refused`` with its reason;
- else it is ``received``: verified, whatever its status (accepted, mismatch …) says.

``ReceiptDesk`` runs it: it reads the topic from its beginning (without a consumer group, so
every adapter of a party sees every receipt, and one restarted finds those that came while it
was down), keeps the verified receipts in the adapter's ``SubmissionBook``, and, for a
submission whose manifest the broker acknowledged ``wait_s`` ago without a verified receipt,
sends the submission once more (``resends`` times), then reports it ``missing``. It never
blocks longer than the timeout it is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException

from schemas import provenance, sm2
from schemas.errors import ProvenanceError
from schemas.kafka import assign_at, reader_conf

from . import metrics
from .errors import ReceiptError
from .submissions import MISSING, SENT, SubmissionBook

log = logging.getLogger(__name__)
RECEIVED, REFUSED, IGNORED, RESENT = "received", "refused", "ignored", "resent"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # received | refused | ignored
    submission: str
    receipt: dict[str, Any] | None = None
    reason: str = ""


def check_receipt(raw: bytes, party: str, waiting: Mapping[str, Mapping[str, Any]],
                  hub_public: sm2.PublicKey) -> Verdict:
    """What one message of ``xprov.<P>.receipts`` is to an adapter waiting for ``waiting``
    (submission id → the manifest it sent)."""
    try:
        receipt = provenance.parse_receipt(raw)
    except ProvenanceError as exc:
        return Verdict(REFUSED, "", None, f"malformed_receipt: {exc}")
    submission = str(receipt["submission_id"])
    if receipt["party"] != party:
        return Verdict(REFUSED, submission, None, f"other_party: the receipt names party {receipt['party']!r}, "
                                                  f"not {party}")
    manifest = waiting.get(submission)
    if manifest is None:
        return Verdict(IGNORED, submission)
    if not provenance.signature_valid(receipt, hub_public):
        return Verdict(REFUSED, submission, None, "bad_signature: the receipt is not signed by the hub's key "
                                                  "(altered after signing, or not the hub's)")
    digest = receipt["manifest_digest"]
    if digest and digest != provenance.digest_of(manifest):
        return Verdict(REFUSED, submission, None, "other_manifest: the receipt answers another manifest than "
                                                  "the one sent for this submission")
    return Verdict(RECEIVED, submission, receipt)


@dataclass(frozen=True)
class ReceiptOutcome:
    """What happened to one submission while checking: received, refused, resent or missing."""

    submission: str
    outcome: str
    place: str | None = None
    receipt: dict[str, Any] | None = None
    reason: str = ""

    @property
    def status(self) -> str | None:
        return self.receipt["status"] if self.receipt else None


@dataclass
class ReceiptDesk:
    """Receipts of one adapter's submissions: verify and keep them, resend once, report the rest."""

    kafka_conf: dict[str, Any]
    topic: str
    group: str
    party: str
    hub_public: Callable[[], sm2.PublicKey]
    book: SubmissionBook
    adapter: str
    wait_s: float
    resends: int = 1
    clock: Callable[[], float] = time.time
    _consumer: Consumer | None = field(default=None, init=False)
    _public: sm2.PublicKey | None = field(default=None, init=False)

    def check(self, timeout: float = 0.0) -> list[ReceiptOutcome]:
        """Read the receipts that came (waiting up to ``timeout`` seconds for the first), keep the
        verified ones, resend or give up the overdue; returns what happened."""
        waiting = {s.submission: s for s in self.book.waiting()}
        if not any(s.state in (SENT, MISSING) for s in waiting.values()):
            self._gauge(len(waiting))  # no manifest has reached the broker yet: no receipt can have come
            return []
        outcomes: list[ReceiptOutcome] = []
        manifests = {sid: s.manifest for sid, s in waiting.items()}
        for raw in self._read(timeout):
            verdict = check_receipt(raw, self.party, manifests, self._hub_public())
            if verdict.outcome == IGNORED:
                continue
            known = waiting.get(verdict.submission)
            place = known.place if known else None
            if verdict.outcome == REFUSED:
                log.warning("receipt refused for submission %s of party %s: %s", verdict.submission or "?",
                            self.party, verdict.reason)
                if known is not None:
                    self.book.note(verdict.submission, f"receipt refused: {verdict.reason}")
                metrics.receipt_outcome(self.party, self.adapter, REFUSED)
                outcomes.append(ReceiptOutcome(verdict.submission, REFUSED, place, None, verdict.reason))
                continue
            self.book.receipted(verdict.submission, verdict.receipt or {})
            manifests.pop(verdict.submission, None)
            waiting.pop(verdict.submission, None)
            metrics.receipt_outcome(self.party, self.adapter, RECEIVED)
            outcomes.append(ReceiptOutcome(verdict.submission, RECEIVED, place, verdict.receipt))
        outcomes += self._overdue(waiting.values())
        self._gauge(len(self.book.waiting()))
        return outcomes

    def _overdue(self, waiting) -> list[ReceiptOutcome]:
        now_ms = int(self.clock() * 1000)
        outcomes = []
        for item in waiting:
            if item.state != SENT or item.released_ms is None or now_ms - item.released_ms < self.wait_s * 1000:
                continue
            if not self.book.manifest_acknowledged(item.submission):
                continue  # the manifest still waits for the broker: its time has not begun
            if item.attempts < self.resends:
                events = self.book.resend(item.submission)
                log.warning("no receipt for submission %s within %.0fs: sending its %d events and its manifest "
                            "again", item.submission, self.wait_s, events)
                metrics.receipt_outcome(self.party, self.adapter, RESENT)
                outcomes.append(ReceiptOutcome(item.submission, RESENT, item.place, None,
                                               f"no receipt within {self.wait_s:g}s; sent again"))
            else:
                reason = (f"no receipt within {self.wait_s:g}s of sending it {item.attempts + 1} times; "
                          f"a receipt that comes later is still taken")
                self.book.missing(item.submission, reason)
                log.warning("submission %s of party %s: %s", item.submission, self.party, reason)
                metrics.receipt_outcome(self.party, self.adapter, MISSING)
                outcomes.append(ReceiptOutcome(item.submission, MISSING, item.place, None, reason))
        return outcomes

    def _hub_public(self) -> sm2.PublicKey:
        if self._public is None:
            self._public = self.hub_public()
        return self._public

    def _read(self, timeout: float) -> list[bytes]:
        consumer = self._ensure_consumer()
        values: list[bytes] = []
        wait = timeout
        while True:
            try:
                messages = consumer.consume(1000, wait)
            except KafkaException as exc:
                raise ReceiptError(f"cannot read receipts from {self.topic}: {exc}") from exc
            for message in messages:
                error = message.error()
                if error is None:
                    if message.value() is not None:
                        values.append(message.value())
                elif error.code() != KafkaError._PARTITION_EOF:
                    log.warning("reading %s: %s", self.topic, error)
            if not messages:
                return values
            wait = 0.0

    def _ensure_consumer(self) -> Consumer:
        if self._consumer is None:
            try:
                consumer = Consumer(reader_conf(self.kafka_conf, self.group))
            except KafkaException as exc:
                raise ReceiptError(f"cannot create a receipt reader: {exc}") from exc
            try:
                assign_at(consumer, self.topic, lambda _partition: 0, error=ReceiptError)
            except ReceiptError:
                consumer.close()
                raise
            self._consumer = consumer
        return self._consumer

    def _gauge(self, waiting: int) -> None:
        metrics.submissions_waiting(self.party, self.adapter, waiting)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
