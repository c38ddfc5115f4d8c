"""Every submission answered once, and truly: the chaos run's check of the hub's receipts.

When the line has drained, the run reads what the synthetic provinces sent — their events on
``prov.<P>.changes`` (each naming its submission) and their manifests on ``prov.<P>.manifests``
— and what the hub answered on ``xprov.<P>.receipts``. The truth of a submission follows from
its events in the order the hub reads them (an entity's events share a partition, so an event
and its resends are read in offset order): an event id first sent in this submission is
``accepted`` if the generator made it valid and ``rejected`` if not; a valid event id sent in
an earlier submission is a ``duplicate``; an invalid one is ``rejected`` again. Each submission
must have exactly one receipt (the same receipt sent twice is one: after a crash, or for a
manifest sent again, the hub sends the stored bytes), signed by the hub, ``accepted``, with
those counts. ``check_receipts`` is pure; ``read_submissions`` reads the topics.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from schemas import provenance, sm2
from schemas.errors import ProvenanceError
from schemas.settings import Settings

from ..errors import DeployError

Submission = tuple[str, str]  # (party, submission id)


@dataclass(frozen=True)
class SentEvent:
    """One event as read back from ``prov.<P>.changes``, in the order the hub reads them."""

    party: str
    submission: str | None
    event_id: str
    partition: int
    offset: int


@dataclass
class Sent:
    """What the provinces sent and the hub answered, as read from the topics."""

    events: list[SentEvent] = field(default_factory=list)
    manifests: dict[Submission, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    receipts: dict[Submission, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    receipt_messages: Counter = field(default_factory=Counter)  # submission -> receipt messages read


@dataclass
class ReceiptResult:
    submissions: int = 0  # distinct submissions with a manifest
    receipted: int = 0  # of them, with exactly one receipt that is the hub's
    receipts_sent_again: int = 0  # receipt messages beyond one per submission (the same bytes again)
    counts_differ: int = 0  # receipts whose counts or status are not the truth
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def expected_counts(events: Iterable[SentEvent], valid_ids: frozenset[str]) -> dict[Submission, Counter]:
    """Per submission, how many of its distinct events the hub should accept, reject and find duplicate."""
    first_in: dict[str, Submission] = {}
    outcome: dict[Submission, dict[str, str]] = defaultdict(dict)
    for e in sorted(events, key=lambda e: (e.party, e.partition, e.offset)):
        if e.submission is None:
            continue
        submission = (e.party, e.submission)
        if e.event_id in outcome[submission]:
            continue  # sent again in the same submission (an adapter restarted): one event of it
        if e.event_id not in valid_ids:
            outcome[submission][e.event_id] = provenance.REJECTED
        elif first_in.setdefault(e.event_id, submission) == submission:
            outcome[submission][e.event_id] = provenance.ACCEPTED
        else:
            outcome[submission][e.event_id] = provenance.DUPLICATE
    return {s: Counter(outcomes.values()) for s, outcomes in outcome.items()}


def check_receipts(sent: Sent, valid_ids: frozenset[str], hub_public: sm2.PublicKey) -> ReceiptResult:
    result = ReceiptResult(submissions=len(sent.manifests),
                           receipts_sent_again=sum(n - 1 for n in sent.receipt_messages.values() if n > 1))
    truth = expected_counts(sent.events, valid_ids)
    for submission in sorted(set(sent.receipts) - set(sent.manifests)):
        result.problems.append(f"submission {_name(submission)}: a receipt for a submission no manifest closed")
    for submission in sorted(sent.manifests):
        receipts = sent.receipts.get(submission, set())
        if len(sent.manifests[submission]) != 1:
            result.problems.append(f"submission {_name(submission)}: {len(sent.manifests[submission])} different "
                                   f"manifests")
        if not receipts:
            result.problems.append(f"submission {_name(submission)}: no receipt")
            continue
        if len(receipts) != 1:
            result.problems.append(f"submission {_name(submission)}: {len(receipts)} different receipts")
            continue
        try:
            receipt = provenance.parse_receipt(next(iter(receipts)))
        except ProvenanceError as exc:
            result.problems.append(f"submission {_name(submission)}: its receipt is unreadable: {exc}")
            continue
        if not provenance.signature_valid(receipt, hub_public):
            result.problems.append(f"submission {_name(submission)}: its receipt is not signed by the hub")
            continue
        result.receipted += 1
        want = truth.get(submission, Counter())
        got = {o: receipt[o] for o in (provenance.ACCEPTED, provenance.REJECTED, provenance.DUPLICATE)}
        if receipt["status"] != "accepted" or got != {o: want[o] for o in got} \
                or receipt["expected"] != sum(want.values()):
            result.counts_differ += 1
            result.problems.append(
                f"submission {_name(submission)}: receipt {receipt['status']} with {_counts(got)} of "
                f"{receipt['expected']}, the events sent say {_counts(want)} of {sum(want.values())}"
                + (f" ({'; '.join(receipt['findings'])})" if receipt["findings"] else ""))
    return result


def read_submissions(settings: Settings, give_up_seconds: float = 300.0) -> Sent:
    """The events, manifests and receipts of every province, read from the beginning to the end."""
    from schemas.codec import EventCodec
    from schemas.errors import DecodeError
    from schemas.kafka import read_topics
    from schemas.registry import make_registry

    names = settings.topics
    party_of = {}
    for p in settings.provinces:
        party_of.update({names.province_changes(p): ("changes", p), names.province_manifests(p): ("manifests", p),
                         names.province_receipts(p): ("receipts", p)})
    codec = EventCodec(make_registry(settings.schema_registry_url or None))
    sent = Sent()
    for messages in read_topics(settings.kafka_conf(), f"{names.sink_group}-chaos-receipts", party_of,
                                error=DeployError, what="read the events, manifests and receipts to their end",
                                total_seconds=give_up_seconds, require_all=True):
        for m in messages:
            kind, party = party_of[m.topic()]
            if kind == "changes":
                try:
                    event = codec.decode(m.value())[1]
                except DecodeError:
                    continue  # never tallied: no submission is known for it
                sent.events.append(SentEvent(party, event["source"].get("submission"), str(event["event_id"]),
                                             m.partition(), m.offset()))
            else:
                submission = (party, _submission_of(m.value(), m.key()))
                (sent.manifests if kind == "manifests" else sent.receipts)[submission].add(m.value())
                if kind == "receipts":
                    sent.receipt_messages[submission] += 1
    return sent


def hub_public_key(settings: Settings) -> sm2.PublicKey:
    return sm2.load_public(settings.hub_keys().hub_public_pem(), "the hub's public key")


def _submission_of(value: bytes, key: bytes | None) -> str:
    try:
        document: Any = json.loads(value)
        return str(document["submission_id"])
    except (ValueError, KeyError, TypeError):
        return (key or b"").decode("utf-8", "replace")


def _name(submission: Submission) -> str:
    return f"{submission[1]} of {submission[0]}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(o, 0)} {o}" for o in (provenance.ACCEPTED, provenance.REJECTED, provenance.DUPLICATE))
