"""The submission book in a spool: a manifest waits for its events' acknowledgement, a resend
spools the same events and manifest again, a receipt settles it; the receipt check (no broker)."""

from __future__ import annotations

import datetime as dt

import pytest

from producers.receipts import IGNORED, RECEIVED, REFUSED, ReceiptDesk, check_receipt
from producers.spool import Spool
from producers.submissions import HELD, MISSING, RECEIPTED, SENT, SubmissionBook
from schemas import provenance, sm2

CHANGES, MANIFESTS = "prov.44.changes", "prov.44.manifests"
SID = "44/file/operator/abc"
NOW = dt.datetime(2024, 6, 1, 8, tzinfo=dt.timezone.utc)
PARTY_KEY, HUB_KEY = sm2.generate(), sm2.generate()


def events(n: int) -> list[tuple[str, bytes, bytes]]:
    return [(CHANGES, f"operator:{i}".encode(), f"event {i}".encode()) for i in range(n)]


def manifest_of(entries, submission: str = SID) -> dict:
    pairs = [(i + 1, provenance.event_digest(value)) for i, (_t, _k, value) in enumerate(entries)]
    return provenance.sign_manifest(party="44", key_id="44-0000abcd", private=PARTY_KEY, submission_id=submission,
                                    seqs_and_digests=pairs, created=NOW)


def receipt_for(manifest: dict, **changes) -> dict:
    decision = provenance.Decision("accepted", manifest["count"], manifest["count"], 0, 0, manifest["root"])
    receipt = provenance.sign_receipt(party="44", submission_id=manifest["submission_id"], manifest=manifest,
                                      decision=decision, at=NOW, hub_key_id="hub-1", hub_private=HUB_KEY)
    return {**receipt, **changes}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spool(tmp_path):
    with Spool(tmp_path / "files.44.operator.db") as opened:
        yield opened


def spooled(spool: Spool, book: SubmissionBook, entries) -> dict:
    manifest = manifest_of(entries)
    pairs = [(i + 1, provenance.event_digest(v)) for i, (_t, _k, v) in enumerate(entries)]
    spool.append(entries, statements=[book.part(SID, 0, pairs, entries), book.close(manifest, "/drop/a.csv")])
    return manifest


def test_a_manifest_is_released_only_once_every_event_before_it_is_acknowledged(spool):
    book = SubmissionBook(spool, "44", MANIFESTS, keep_events=True)
    manifest = spooled(spool, book, events(3))
    ids = [e.id for e in spool.pending(10)]
    assert book.release_ready() == 0 and book.get(SID).state == HELD
    spool.mark_acked(ids[:2])
    assert book.release_ready() == 0
    spool.mark_acked(ids[2:])
    assert book.release_ready() == 1
    (entry,) = spool.pending(10)
    assert (entry.topic, entry.key, entry.value) == (MANIFESTS, SID.encode(), provenance.document_bytes(manifest))
    assert book.get(SID).state == SENT and not book.manifest_acknowledged(SID)
    spool.mark_acked([entry.id])
    assert book.manifest_acknowledged(SID)
    assert book.seqs_and_digests(SID) == [(i + 1, provenance.event_digest(v)) for i, (_t, _k, v) in
                                          enumerate(events(3))]


def test_a_book_reopened_after_a_crash_still_holds_and_releases_its_manifest(tmp_path):
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spooled(spool, SubmissionBook(spool, "44", MANIFESTS), events(2))
    with Spool(path) as spool:
        book = SubmissionBook(spool, "44", MANIFESTS)
        spool.mark_acked([e.id for e in spool.pending(10)])
        assert book.release_ready() == 1 and spool.pending(10)[0].topic == MANIFESTS


def test_a_resend_spools_the_same_events_and_holds_the_same_manifest_again(spool):
    book = SubmissionBook(spool, "44", MANIFESTS, keep_events=True)
    manifest = spooled(spool, book, events(4))
    spool.mark_acked([e.id for e in spool.pending(10)])
    book.release_ready()
    spool.mark_acked([e.id for e in spool.pending(10)])
    assert book.resend(SID) == 4
    assert [(e.topic, e.key, e.value) for e in spool.pending(10)] == events(4)
    again = book.get(SID)
    assert (again.state, again.attempts, again.manifest) == (HELD, 1, manifest)
    spool.mark_acked([e.id for e in spool.pending(10)])
    assert book.release_ready() == 1 and spool.pending(10)[0].value == provenance.document_bytes(manifest)


def test_a_receipt_settles_the_submission_and_frees_its_kept_events(spool):
    book = SubmissionBook(spool, "44", MANIFESTS, keep_events=True)
    manifest = spooled(spool, book, events(2))
    book.receipted(SID, receipt_for(manifest))
    assert book.get(SID).state == RECEIPTED and book.get(SID).status == "accepted"
    assert provenance.parse_receipt(book.receipt(SID))["submission_id"] == SID
    assert book.seqs_and_digests(SID) == [] and book.waiting() == []
    assert book.counts() == {"held": 0, "sent": 0, "receipted": 1, "missing": 0}


def test_the_hubs_receipt_is_received_and_an_altered_one_refused():
    manifest = manifest_of(events(2))
    waiting, public = {SID: manifest}, HUB_KEY.public_key()
    genuine = receipt_for(manifest)
    verdict = check_receipt(provenance.document_bytes(genuine), "44", waiting, public)
    assert (verdict.outcome, verdict.receipt) == (RECEIVED, genuine)
    altered = {**genuine, "accepted": 1}
    assert check_receipt(provenance.document_bytes(altered), "44", waiting, public).reason.startswith("bad_signature")
    other_key = check_receipt(provenance.document_bytes(genuine), "44", waiting, PARTY_KEY.public_key())
    assert other_key.outcome == REFUSED


def test_receipts_for_others_or_other_manifests_or_malformed_are_not_taken():
    manifest = manifest_of(events(2))
    public = HUB_KEY.public_key()
    genuine = provenance.document_bytes(receipt_for(manifest))
    assert check_receipt(genuine, "44", {}, public).outcome == IGNORED  # not this adapter's, or settled
    assert check_receipt(genuine, "11", {SID: manifest}, public).reason.startswith("other_party")
    other = manifest_of(events(3))
    assert check_receipt(genuine, "44", {SID: other}, public).reason.startswith("other_manifest")
    assert check_receipt(b"{not json", "44", {SID: manifest}, public).reason.startswith("malformed_receipt")


def test_without_a_receipt_a_submission_is_resent_once_then_reported_missing(spool):
    clock = Clock()
    book = SubmissionBook(spool, "44", MANIFESTS, keep_events=True, clock=clock)
    spooled(spool, book, events(2))
    desk = ReceiptDesk({}, "xprov.44.receipts", "g", "44", HUB_KEY.public_key, book, "files", wait_s=30, clock=clock)
    desk._read = lambda timeout: []  # the hub stays silent

    def acknowledge_all() -> None:
        spool.mark_acked([e.id for e in spool.pending(10)])
        book.release_ready()
        spool.mark_acked([e.id for e in spool.pending(10)])

    acknowledge_all()
    clock.now += 29
    assert desk.check() == []
    clock.now += 2
    (resent,) = desk.check()
    assert (resent.outcome, resent.place) == ("resent", "/drop/a.csv") and len(spool.pending(10)) == 2
    acknowledge_all()
    clock.now += 20
    assert desk.check() == []
    clock.now += 11
    (missing,) = desk.check()
    assert missing.outcome == MISSING and "2 times" in missing.reason
    assert book.get(SID).state == MISSING and desk.check() == []
