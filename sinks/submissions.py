"""The hub's submission check, as pure functions: a manifest and the events tallied for its
submission in, the receipt to sign and the evidence to log out.

For each manifest message the sink stored (``prov.<P>.manifests``, ``P`` the topic's party):

- ``check_manifest`` — does it parse, name the party of its topic, name a key the hub has
  registered for that party and usable now, and carry that key's signature? A failure is a
  refusal with its rule: ``malformed_manifest``, ``wrong_party``, ``unknown_key``,
  ``other_party_key``, ``revoked_key``, ``expired_key`` or ``bad_signature``. The checker hands
  it ``VerifiedSignatures``, which does the SM2 arithmetic of each manifest once however many
  checks it waits through (the key's standing is asked each time).
- ``answer`` — what to do now: ``repeat`` (the same manifest again, for a submission already
  receipted: send the stored receipt again, byte for byte), ``receipt`` (decide and sign one:
  a refusal at once; a different manifest for a submission already receipted is refused
  ``submission_reused``; a trusted manifest once every event it names was tallied, or once
  the wait has passed) or ``wait``.
- ``unannounced_due`` — events tallied for a submission that no manifest named, once the wait
  has passed: an ``unannounced`` receipt.

``evidence_entries`` chains what an answer logs after the log's head: the manifest (when it
parsed and named its topic's party) and then the receipt. ``findings_of`` names every
refusal and mismatch by rule, for the store's findings and the metrics.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import evidence, provenance, sm2
from schemas.errors import ProvenanceError
from schemas.provenance import Decision, TalliedEvent

REPEATED = "manifest_repeated"
REUSED = "submission_reused"
WRONG_PARTY = "wrong_party"
MALFORMED = "malformed_manifest"
UNANNOUNCED = "no_manifest"
RECEIPT, REPEAT, WAIT = "receipt", "repeat", "wait"

PublicKey = Callable[[str, str, dt.datetime], Any]  # (party, key id, at) -> SM2 public key, or ProvenanceError


@dataclass(frozen=True)
class ManifestMessage:
    """One message of ``prov.<party>.manifests`` as the store holds it."""

    party: str  # the party of the topic it came in on
    key: str  # the message key: the submission id it claims
    document: str  # the manifest's bytes as text
    origin: str  # <topic>:<partition>:<offset>
    received: dt.datetime  # when the sink stored it


@dataclass(frozen=True)
class Checked:
    """A manifest message checked: the manifest (None when it does not parse), the submission it
    is for, and the refusal (``"<rule>: <why>"``, empty when it can be trusted)."""

    manifest: dict[str, Any] | None
    submission_id: str
    refusal: str = ""

    @property
    def digest(self) -> str:
        return provenance.digest_of(self.manifest) if self.manifest is not None else ""

    @property
    def loggable(self) -> bool:
        """Whether the evidence log holds it as a manifest: it parsed and names its topic's party."""
        return self.manifest is not None and not self.refusal.startswith(WRONG_PARTY + ":")


@dataclass(frozen=True)
class Receipted:
    """The receipt a submission got first, as logged."""

    text: str
    manifest_digest: str
    status: str


@dataclass(frozen=True)
class Answer:
    action: str  # RECEIPT | REPEAT | WAIT
    party: str
    submission_id: str
    checked: Checked | None = None  # None: an unannounced submission
    decision: Decision | None = None  # RECEIPT: what the receipt says
    resend: str = ""  # REPEAT: the stored receipt to send again
    findings: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (rule, detail)


def unnamed(origin: str) -> str:
    """The submission id given to a manifest that names none usable: where it came from."""
    return "unnamed-" + origin.rpartition(":")[0].rpartition(":")[2] + "-" + origin.rpartition(":")[2]


SignatureValid = Callable[[Mapping[str, Any], Any], bool]  # (document, SM2 public key) -> signed by it?


class VerifiedSignatures:
    """``provenance.signature_valid`` that checks each (signed bytes, signature, public key) once.

    A manifest waits for its submission's events through many checks (one a second, while the
    stream worker catches up), and an SM2 verification costs about 0.3 ms: without this, the
    checks of an initial load's thousands of waiting manifests would cost seconds each. The
    ``limit`` most recent answers are kept."""

    def __init__(self, verify: SignatureValid = provenance.signature_valid, limit: int = 100_000) -> None:
        self._verify, self._limit = verify, limit
        self._known: dict[tuple[bytes, str, bytes], bool] = {}

    def __call__(self, document: Mapping[str, Any], public: Any) -> bool:
        key = (provenance.canonical(document), str(document.get("signature", "")), sm2.public_pem(public))
        known = self._known.pop(key, None)  # popped and put back: the most recent last
        if known is None:
            known = self._verify(document, public)
            if len(self._known) >= self._limit:
                del self._known[next(iter(self._known))]
        self._known[key] = known
        return known


def check_manifest(message: ManifestMessage, public_key: PublicKey, now: dt.datetime,
                   signature_valid: SignatureValid = provenance.signature_valid) -> Checked:
    """The manifest of ``message``, the submission it is for, and why it is refused (if it is)."""
    try:
        manifest = provenance.parse_manifest(message.document.encode("utf-8"))
    except ProvenanceError as exc:
        key = message.key if provenance.SUBMISSION_ID.fullmatch(message.key) else unnamed(message.origin)
        return Checked(None, key, f"{MALFORMED}: {exc}")
    submission = manifest["submission_id"]
    if manifest["party"] != message.party:
        return Checked(manifest, submission, f"{WRONG_PARTY}: the manifest names party {manifest['party']!r} "
                                             f"but came in on party {message.party}'s topic")
    try:
        public = public_key(message.party, manifest["key_id"], now)
    except ProvenanceError as exc:
        return Checked(manifest, submission, f"{exc.rule}: {exc}")
    if not signature_valid(manifest, public):
        return Checked(manifest, submission, f"bad_signature: the manifest is not signed with key {manifest['key_id']}")
    return Checked(manifest, submission)


def answer(message: ManifestMessage, checked: Checked, receipted: Receipted | None,
           events: Sequence[TalliedEvent], now: dt.datetime, wait_seconds: float) -> Answer:
    """What the hub does now with one manifest message (see the module docstring)."""
    party, submission = message.party, checked.submission_id
    if receipted is not None and checked.manifest is not None and receipted.manifest_digest == checked.digest:
        return Answer(REPEAT, party, submission, checked, resend=receipted.text,
                      findings=((REPEATED, f"manifest {checked.digest[:16]}… of {party}/{submission} came again "
                                           f"({message.origin}): its receipt ({receipted.status}) is sent again"),))
    if not decides_now(message, checked, receipted, len(provenance.first_outcomes(events)), now, wait_seconds):
        return Answer(WAIT, party, submission, checked)
    refusal = checked.refusal
    if not refusal and receipted is not None:
        refusal = (f"{REUSED}: submission {submission} was receipted already ({receipted.status}) for another "
                   f"manifest" + (f" {receipted.manifest_digest[:16]}…" if receipted.manifest_digest else ""))
    manifest = checked.manifest if checked.manifest is not None and checked.loggable else None
    decision = provenance.decide(manifest, events, refusal=refusal)
    return Answer(RECEIPT, party, submission, checked, decision, findings=findings_of(decision))


def decides_now(message: ManifestMessage, checked: Checked, receipted: Receipted | None, tallied: int,
                now: dt.datetime, wait_seconds: float) -> bool:
    """Whether ``answer`` decides a manifest now rather than waits: it is refused, its submission
    was receipted already, ``tallied`` (the distinct events tallied for its submission) reaches
    the count it names, or the wait has passed since it was stored. The check reads a
    submission's tallied events only when one of its manifests is decided."""
    if checked.refusal or receipted is not None or checked.manifest is None:
        return True
    return tallied >= int(checked.manifest["count"]) or waited_out(message.received, now, wait_seconds)


def unannounced_due(first_tallied: dt.datetime, now: dt.datetime, wait_seconds: float) -> bool:
    """Whether events no manifest named have waited long enough for an ``unannounced`` receipt."""
    return waited_out(first_tallied, now, wait_seconds)


def waited_out(since: dt.datetime, now: dt.datetime, wait_seconds: float) -> bool:
    return (now - since).total_seconds() >= wait_seconds


def unannounced(party: str, submission: str, events: Sequence[TalliedEvent]) -> Answer:
    decision = provenance.decide(None, events)
    return Answer(RECEIPT, party, submission, None, decision, findings=findings_of(decision))


def findings_of(decision: Decision) -> tuple[tuple[str, str], ...]:
    """(rule, detail) of each finding of a receipt; an accepted submission has none."""
    found = []
    for text in decision.findings:
        rule, _sep, detail = text.partition(": ")
        found.append((rule, detail or text))
    return tuple(found)


def sign(answer_: Answer, now: dt.datetime, hub_key_id: str, hub_private: Any) -> str:
    """The receipt of a ``RECEIPT`` answer, signed by the hub, as it travels (compact JSON)."""
    if answer_.decision is None:
        raise ValueError(f"no decision to sign for {answer_.party}/{answer_.submission_id}")
    manifest = answer_.checked.manifest if answer_.checked is not None else None
    receipt = provenance.sign_receipt(party=answer_.party, submission_id=answer_.submission_id, manifest=manifest,
                                      decision=answer_.decision, at=now, hub_key_id=hub_key_id,
                                      hub_private=hub_private)
    return provenance.document_bytes(receipt).decode("utf-8")


def evidence_entries(head: Mapping[str, Any] | None, answer_: Answer, receipt_text: str,
                     now: dt.datetime) -> list[dict[str, Any]]:
    """The entries an answered submission adds after ``head``: its manifest (when loggable), then its receipt."""
    at = provenance.now_text(now)
    entries: list[dict[str, Any]] = []
    checked = answer_.checked
    if checked is not None and checked.manifest is not None and checked.loggable:
        text = provenance.document_bytes(checked.manifest).decode("utf-8")
        entries.append(evidence.append(head, "manifest", answer_.party, answer_.submission_id, at, text))
        head = entries[-1]
    entries.append(evidence.append(head, "receipt", answer_.party, answer_.submission_id, at, receipt_text))
    return entries


def receipted_from(texts: Iterable[str]) -> Receipted | None:
    """The first of a submission's logged receipts (in log order), else None."""
    for text in texts:
        document = json.loads(text)
        return Receipted(text, str(document.get("manifest_digest", "")), str(document.get("status", "")))
    return None


def tallied_events(event_ids: Sequence[str], seqs: Sequence[int], digests: Sequence[str],
                   outcomes: Sequence[str]) -> list[TalliedEvent]:
    """The events of one stored tally (digests in hex)."""
    return [TalliedEvent(str(e), int(s), bytes.fromhex(d), str(o)) for e, s, d, o in zip(event_ids, seqs, digests, outcomes)]


def entry_value(entry: Mapping[str, Any]) -> bytes:
    """An evidence entry as it travels on ``national.evidence``: compact JSON of its fields."""
    return json.dumps({name: entry[name] for name in evidence.ENTRY_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
