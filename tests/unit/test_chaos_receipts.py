"""The chaos run's check of the hub's receipts: one true receipt per submission, from the events sent."""

from __future__ import annotations

import datetime as dt

from deploy.chaos.receipts import Sent, SentEvent, check_receipts, expected_counts
from schemas import provenance, sm2

HUB = sm2.generate()
NOW = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)


def receipt(submission: str, accepted: int, rejected: int = 0, duplicate: int = 0, status: str = "accepted",
            key: sm2.PrivateKey = HUB) -> bytes:
    decision = provenance.Decision(status, accepted + rejected + duplicate, accepted, rejected, duplicate, "0" * 64)
    return provenance.document_bytes(provenance.sign_receipt(
        party="44", submission_id=submission, manifest=None, decision=decision, at=NOW, hub_key_id="hub-1",
        hub_private=key))


def sent(*events: SentEvent, receipts: dict[str, list[bytes]]) -> Sent:
    book = Sent(events=list(events))
    for e in events:
        book.manifests[("44", e.submission)].add(f"manifest of {e.submission}".encode())
    for submission, documents in receipts.items():
        for document in documents:
            book.receipts[("44", submission)].add(document)
            book.receipt_messages[("44", submission)] += 1
    return book


EVENTS = (SentEvent("44", "s1", "a", 0, 1), SentEvent("44", "s1", "b", 0, 2), SentEvent("44", "s1", "a", 0, 3),
          SentEvent("44", "s2", "a", 0, 4), SentEvent("44", "s2", "x", 1, 1))
VALID = frozenset({"a", "b"})


def test_an_event_first_sent_in_a_submission_is_accepted_there_and_a_duplicate_after():
    counts = expected_counts(EVENTS, VALID)
    assert counts[("44", "s1")] == {"accepted": 2}  # "a" resent in the same submission is one event
    assert counts[("44", "s2")] == {"duplicate": 1, "rejected": 1}


def test_true_receipts_pass_and_the_same_receipt_sent_twice_is_one():
    first = receipt("s1", 2)
    result = check_receipts(sent(*EVENTS, receipts={"s1": [first, first], "s2": [receipt("s2", 0, 1, 1)]}),
                            VALID, HUB.public_key())
    assert result.ok, result.problems
    assert (result.submissions, result.receipted, result.receipts_sent_again) == (2, 2, 1)


def test_a_missing_receipt_two_receipts_a_forged_one_and_wrong_counts_are_each_named():
    forger = sm2.generate()
    result = check_receipts(sent(*EVENTS, receipts={"s1": [receipt("s1", 2), receipt("s1", 1, duplicate=1)]}),
                            VALID, HUB.public_key())
    assert result.problems == ["submission s1 of 44: 2 different receipts", "submission s2 of 44: no receipt"]
    result = check_receipts(sent(*EVENTS, receipts={"s1": [receipt("s1", 2, key=forger)],
                                                    "s2": [receipt("s2", 1, 1)]}), VALID, HUB.public_key())
    assert result.problems[0] == "submission s1 of 44: its receipt is not signed by the hub"
    assert result.counts_differ == 1 and "the events sent say 0 accepted, 1 rejected, 1 duplicate" in result.problems[1]
