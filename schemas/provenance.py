"""Signed submissions and receipts: what a party sent, and what the hub says it received.

A **submission** is a batch a party's adapter sends: a file, or a bounded run of a database
stream. Each of its events names it (``source.submission`` in the envelope). It is closed by
a **manifest**, signed by the party with its SM2 key: party, key id, submission id, the range
of source sequence numbers, how many events, the SM3 Merkle root of the events' digests and
when. An event's digest is the SM3 of its framed, signed bytes as sent (``event_digest``);
the root is taken over the digests in source-sequence order (``merkle_root``, RFC 6962's tree
with SM3: leaves ``SM3(0x00 ‖ digest)``, nodes ``SM3(0x01 ‖ left ‖ right)``).

For each manifest the hub returns a **receipt**, signed with its own SM2 key: how many of the
submission's events it accepted, rejected and found duplicate, the root it computed itself,
its status and findings, and when (``decide`` is the pure decision). Status ``accepted``: the
events are exactly those the manifest names. ``mismatch``: events missing, extra or altered
(the findings say which). ``refused``: the manifest itself could not be trusted (bad
signature, unknown, revoked or expired key, another party's). ``unannounced``: events that
named a submission for which no manifest came in time.

Both are JSON documents: the signed bytes are the document without its ``signature``, with
sorted keys and no spaces (``canonical``), so anyone can re-check them with the public key.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import sm2
from .errors import ProvenanceError

MANIFEST_FIELDS = ("party", "key_id", "submission_id", "seq_first", "seq_last", "count", "root", "created")
RECEIPT_FIELDS = ("receipt_id", "party", "submission_id", "manifest_digest", "status", "expected", "accepted",
                  "rejected", "duplicate", "root", "findings", "at", "hub_key_id")
SUBMISSION_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:/-]{0,127}")
_ROOT = re.compile(r"[0-9a-f]{64}")
ACCEPTED, REJECTED, DUPLICATE = "accepted", "rejected", "duplicate"  # an event's outcome at the hub
OUTCOME_OF_LETTER = {"a": ACCEPTED, "r": REJECTED, "d": DUPLICATE}  # a tally's outcomes column, a letter an event
LETTER_OF_OUTCOME = {outcome: letter for letter, outcome in OUTCOME_OF_LETTER.items()}
OUTCOME_LETTERS = "".join(OUTCOME_OF_LETTER)
SM3_BYTES = 32
STATUSES = ("accepted", "mismatch", "refused", "unannounced")
EMPTY_ROOT = sm2.sm3(b"").hex()


# The digest a manifest's root is built from: SM3 of the event's framed bytes as sent. The same
# function as sm2.sm3, named for what it is here (the stream worker takes one per event).
event_digest = sm2.sm3


def merkle_root(digests: Sequence[bytes]) -> bytes:
    """The SM3 Merkle tree hash of ``digests`` in order (RFC 6962 §2.1's shape)."""
    if not digests:
        return sm2.sm3(b"")
    level = [sm2.sm3(b"\x00" + digest) for digest in digests]
    while len(level) > 1:
        paired = [sm2.sm3(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # an odd node is carried up unchanged
        level = paired
    return level[0]


def canonical(document: Mapping[str, Any]) -> bytes:
    """The signed bytes of a document: every field but ``signature``, sorted, compact UTF-8 JSON."""
    return json.dumps({k: v for k, v in document.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """A signed document as it travels and is logged: compact JSON with its signature."""
    return json.dumps(dict(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest_of(document: Mapping[str, Any]) -> str:
    """SM3 (hex) of a signed document as it travels: what a receipt names its manifest by."""
    return sm2.sm3(document_bytes(document)).hex()


def _signed(document: dict[str, Any], key: sm2.PrivateKey) -> dict[str, Any]:
    return {**document, "signature": base64.b64encode(sm2.sign(key, canonical(document))).decode("ascii")}


def signature_valid(document: Mapping[str, Any], public: sm2.PublicKey) -> bool:
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except ValueError:
        return False
    return sm2.verify(public, signature, canonical(document))


def now_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


# -- manifests ---------------------------------------------------------------------------
def sign_manifest(*, party: str, key_id: str, private: sm2.PrivateKey, submission_id: str,
                  seqs_and_digests: Iterable[tuple[int, bytes]], created: dt.datetime) -> dict[str, Any]:
    """The signed manifest of a submission whose events have these (source seq, digest)."""
    events = sorted(seqs_and_digests, key=lambda item: item[0])
    if not SUBMISSION_ID.fullmatch(submission_id):
        raise ProvenanceError("bad_submission_id", f"{submission_id!r} is not a submission id")
    if not events:
        raise ProvenanceError("empty_submission", f"submission {submission_id} holds no events")
    document = {"party": party, "key_id": key_id, "submission_id": submission_id,
                "seq_first": events[0][0], "seq_last": events[-1][0], "count": len(events),
                "root": merkle_root([digest for _, digest in events]).hex(), "created": now_text(created)}
    return _signed(document, private)


def parse_manifest(data: bytes) -> dict[str, Any]:
    """A manifest from its bytes, every field checked; ``ProvenanceError`` (``malformed_manifest``) names the first wrong."""
    document = _signed_document(data, MANIFEST_FIELDS, "malformed_manifest")
    checks = (("party", lambda v: isinstance(v, str) and 0 < len(v) <= 32),
              ("key_id", lambda v: isinstance(v, str) and 0 < len(v) <= 64),
              ("submission_id", lambda v: isinstance(v, str) and SUBMISSION_ID.fullmatch(v)),
              ("seq_first", lambda v: type(v) is int), ("seq_last", lambda v: type(v) is int),
              ("count", lambda v: type(v) is int and v > 0), ("root", lambda v: isinstance(v, str) and _ROOT.fullmatch(v)),
              ("created", _is_time), ("signature", lambda v: isinstance(v, str) and 0 < len(v) <= 200))
    for name, good in checks:
        if not good(document[name]):
            raise ProvenanceError("malformed_manifest", f"field {name} = {document[name]!r} is not well formed")
    if document["seq_last"] < document["seq_first"]:
        raise ProvenanceError("malformed_manifest", "seq_last is before seq_first")
    return document


def _is_time(value: Any) -> bool:
    try:
        return isinstance(value, str) and dt.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


# -- the hub's decision and its receipt ----------------------------------------------------
@dataclass(frozen=True)
class TalliedEvent:
    """One event of a submission as the hub's stream worker saw it."""

    event_id: str
    seq: int
    digest: bytes
    outcome: str  # ACCEPTED | REJECTED | DUPLICATE


@dataclass(frozen=True)
class Decision:
    status: str
    expected: int
    accepted: int
    rejected: int
    duplicate: int
    root: str
    findings: tuple[str, ...] = field(default_factory=tuple)


def tallied(tally: Mapping[str, Any]) -> list[TalliedEvent]:
    """The events of a ``roadx.SubmissionTally`` (its columns), in the order the worker saw them."""
    digests = tally["digests"]
    return [TalliedEvent(str(event_id), int(seq), bytes(digests[i * SM3_BYTES:(i + 1) * SM3_BYTES]),
                         OUTCOME_OF_LETTER[letter])
            for i, (event_id, seq, letter) in enumerate(zip(tally["event_ids"], tally["seqs"], tally["outcomes"]))]


def first_outcomes(events: Iterable[TalliedEvent]) -> list[TalliedEvent]:
    """One entry per event id, in source-sequence order: its first outcome other than duplicate
    when it had one (a tally read twice, or a resend, adds nothing)."""
    chosen: dict[str, TalliedEvent] = {}
    for event in events:
        held = chosen.get(event.event_id)
        if held is None or (held.outcome == DUPLICATE and event.outcome != DUPLICATE):
            chosen[event.event_id] = event
    return sorted(chosen.values(), key=lambda e: (e.seq, e.event_id))


def decide(manifest: Mapping[str, Any] | None, events: Iterable[TalliedEvent], refusal: str = "") -> Decision:
    """The hub's answer to a submission: ``manifest`` (None when none came), the events the
    stream worker tallied for it, and why the manifest was refused, if it was."""
    distinct = first_outcomes(events)
    counts = {outcome: sum(1 for e in distinct if e.outcome == outcome) for outcome in (ACCEPTED, REJECTED, DUPLICATE)}
    root = merkle_root([e.digest for e in distinct]).hex()
    expected = int(manifest["count"]) if manifest else 0
    found: list[str] = []
    if refusal:
        status = "refused"
        found.append(refusal)
    elif manifest is None:
        status = "unannounced"
        found.append(f"no_manifest: {len(distinct)} events named this submission and no manifest came")
    else:
        outside = [e.seq for e in distinct if not manifest["seq_first"] <= e.seq <= manifest["seq_last"]]
        if len(distinct) < expected:
            found.append(f"events_missing: {expected - len(distinct)} of {expected} never came")
        if len(distinct) > expected:
            found.append(f"extra_events: {len(distinct) - expected} more than the {expected} the manifest names")
        if outside:
            found.append(f"seq_out_of_range: {len(outside)} events outside {manifest['seq_first']}..{manifest['seq_last']}"
                         f" (first: {outside[0]})")
        if root != manifest["root"] and len(distinct) == expected:
            found.append("root_mismatch: the events received are not the events the manifest names (altered)")
        status = "mismatch" if found else "accepted"
    return Decision(status, expected, counts[ACCEPTED], counts[REJECTED], counts[DUPLICATE], root, tuple(found))


def complete(manifest: Mapping[str, Any], events: Iterable[TalliedEvent]) -> bool:
    """True when every event the manifest names has been tallied (the receipt need not wait)."""
    return len(first_outcomes(events)) >= int(manifest["count"])


def sign_receipt(*, party: str, submission_id: str, manifest: Mapping[str, Any] | None, decision: Decision,
                 at: dt.datetime, hub_key_id: str, hub_private: sm2.PrivateKey) -> dict[str, Any]:
    document = {"receipt_id": f"{party}/{submission_id}/receipt", "party": party, "submission_id": submission_id,
                "manifest_digest": digest_of(manifest) if manifest else "", "status": decision.status,
                "expected": decision.expected, "accepted": decision.accepted, "rejected": decision.rejected,
                "duplicate": decision.duplicate, "root": decision.root, "findings": list(decision.findings),
                "at": now_text(at), "hub_key_id": hub_key_id}
    return _signed(document, hub_private)


def parse_receipt(data: bytes) -> dict[str, Any]:
    """A receipt from its bytes; ``ProvenanceError`` (``malformed_receipt``) when it is not one."""
    document = _signed_document(data, RECEIPT_FIELDS, "malformed_receipt")
    if document["status"] not in STATUSES:
        raise ProvenanceError("malformed_receipt", f"status {document['status']!r} is none of {', '.join(STATUSES)}")
    return document


def _signed_document(data: bytes, fields: Sequence[str], rule: str) -> dict[str, Any]:
    """A JSON object holding exactly ``fields`` and ``signature``; else ``ProvenanceError`` (``rule``)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProvenanceError(rule, f"does not parse as JSON: {exc}") from None
    if not isinstance(document, dict) or set(document) != {*fields, "signature"}:
        raise ProvenanceError(rule, f"expected the fields {', '.join(fields)}, signature")
    return document
